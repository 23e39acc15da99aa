"""Whole-batch augmentation and normalisation as tensor ops (no per-image Python).

Random crops with zero padding and horizontal flips are one ``gather`` over the padded batch:
each example gets its own offsets and flip from a generator the caller seeds per batch, so a
resumed epoch reproduces its augmented batches exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def random_crop_flip(
    images: torch.Tensor, padding: int, flip: bool, gen: torch.Generator
) -> torch.Tensor:
    """Pad by ``padding`` zeros, crop back to the input size at a random offset, maybe flip.

    ``images`` is a (B, C, H, W) batch of any dtype; the result has the same shape and dtype.
    Offsets are drawn per example in ``[0, 2 * padding]``; flips with probability 1/2.
    """
    batch, channels, height, width = images.shape
    offset_y = torch.randint(0, 2 * padding + 1, (batch,), generator=gen)
    offset_x = torch.randint(0, 2 * padding + 1, (batch,), generator=gen)
    flipped = torch.rand(batch, generator=gen) < 0.5
    if padding > 0:
        images = F.pad(images, (padding, padding, padding, padding))
    padded_width = width + 2 * padding
    rows = offset_y[:, None] + torch.arange(height)
    cols = offset_x[:, None] + torch.arange(width)
    if flip:
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    index = (rows[:, :, None] * padded_width + cols[:, None, :]).reshape(batch, 1, -1)
    flat = images.reshape(batch, channels, -1)
    out = torch.gather(flat, 2, index.expand(batch, channels, height * width))
    return out.reshape(batch, channels, height, width)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (B, C, H, W) in [0, 255] to float32 ``(x / 255 - mean) / std`` per channel."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0
    inv_std = 1.0 / (torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)
    return (images.to(torch.float32) - mean_t) * inv_std
