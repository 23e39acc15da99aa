"""Whole-batch crop/flip augmentation and normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from chase.data.augment import normalize, random_crop_flip


def _batch(n: int = 16, c: int = 3, size: int = 12) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randint(1, 256, (n, c, size, size), dtype=torch.uint8, generator=gen)


def _reference(images: torch.Tensor, padding: int, flip: bool, seed: int) -> torch.Tensor:
    """Per-image loop with the same random draws, as an independent oracle."""
    gen = torch.Generator().manual_seed(seed)
    n, _, h, w = images.shape
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    flipped = torch.rand(n, generator=gen) < 0.5
    padded = F.pad(images, (padding,) * 4)
    out = []
    for i in range(n):
        crop = padded[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w]
        out.append(crop.flip(-1) if flip and flipped[i] else crop)
    return torch.stack(out)


def test_matches_per_image_reference() -> None:
    images = _batch()
    for padding, flip in [(4, True), (2, False), (0, True)]:
        got = random_crop_flip(images, padding, flip, torch.Generator().manual_seed(7))
        assert got.shape == images.shape and got.dtype == torch.uint8
        assert torch.equal(got, _reference(images, padding, flip, 7))


def test_deterministic_under_seed_and_changes_images() -> None:
    images = _batch(n=64)
    a = random_crop_flip(images, 4, True, torch.Generator().manual_seed(3))
    b = random_crop_flip(images, 4, True, torch.Generator().manual_seed(3))
    c = random_crop_flip(images, 4, True, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    changed = (a != images).flatten(1).any(1)
    assert changed.float().mean() > 0.9  # only the (0, 0) offset without flip is unchanged
    assert (a == 0).any()  # zero padding shows up at the borders


def test_identity_without_padding_or_flip() -> None:
    images = _batch()
    assert torch.equal(random_crop_flip(images, 0, False, torch.Generator()), images)


def test_normalize_range_and_values() -> None:
    images = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 1, 3)
    out = normalize(images, (0.2,), (0.5,))
    assert out.dtype == torch.float32
    assert torch.allclose(out.flatten(), torch.tensor([-0.4, 1.6, 0.0]), atol=1e-6)
