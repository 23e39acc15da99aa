"""Synthetic data shaped like a known dataset, with labels a network can learn.

Each class owns a fixed smooth pattern (random values on a 4x4 grid, upsampled to the image
size); an example is half its class pattern, half uniform noise, stored as uint8 like real
images. Smooth patterns survive crops and flips, so a smoke test sees the loss go down with
augmentation on. Everything comes from generators seeded by ``seed``, never the global RNG.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from chase.data.arrays import TensorData
from chase.data.sharding import generator
from chase.data.specs import DatasetSpec

PATTERN_GRID = 4
_CHUNK = 256


def _examples(
    patterns: torch.Tensor, n: int, size: tuple[int, int], gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uint8 images (pattern of a random class + noise) and their int64 labels."""
    num_classes, channels = patterns.shape[:2]
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    images = torch.empty(n, channels, *size, dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        y = labels[start : start + _CHUNK]
        signal = F.interpolate(patterns[y], size=size, mode="bilinear", align_corners=False)
        noise = torch.rand(len(y), channels, *size, generator=gen)
        images[start : start + _CHUNK] = ((signal + noise) * 127.5).round().to(torch.uint8)
    return images, labels


def make_synthetic(
    like: DatasetSpec,
    num_train: int,
    num_test: int,
    seed: int,
    image_size: tuple[int, int] | None = None,
) -> TensorData:
    """Train/test splits with ``like``'s classes, channels and (unless given) image size."""
    size = like.image_size if image_size is None else image_size
    pattern_gen = generator(seed, "synthetic-patterns", like.name)
    grid = (like.num_classes, like.in_channels, PATTERN_GRID, PATTERN_GRID)
    patterns = torch.rand(grid, generator=pattern_gen)
    train_x, train_y = _examples(patterns, num_train, size, generator(seed, "synthetic-train"))
    test_x, test_y = _examples(patterns, num_test, size, generator(seed, "synthetic-test"))
    classes = tuple(f"class_{i}" for i in range(like.num_classes))
    return TensorData(train_x, train_y, test_x, test_y, classes)


def example_batch(input_shape: tuple[int, ...] | list[int], batch: int = 1) -> torch.Tensor:
    """A fixed random float batch of ``input_shape`` examples (standard normal, seed 0): what
    tracing, FLOPs counting and speed measurement feed a model, the same on every call."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, *input_shape, generator=gen)
