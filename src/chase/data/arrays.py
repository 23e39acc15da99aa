"""The in-memory form every small dataset is read into: uint8 images and int64 labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TensorData:
    """Train and test splits held as uint8 (N, C, H, W) images and int64 (N,) labels."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for images, labels in (
            (self.train_images, self.train_labels),
            (self.test_images, self.test_labels),
        ):
            assert images.dtype == torch.uint8 and images.dim() == 4, images.shape
            assert labels.dtype == torch.int64 and labels.shape == images.shape[:1]
