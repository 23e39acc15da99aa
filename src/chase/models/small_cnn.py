"""A small CNN for 28x28 single-channel images (Fashion-MNIST, MNIST).

Four conv3x3-BN-ReLU layers of 32/64/128/256 channels (times ``width``), 2x2 max-pools after
the first two, global average pooling and one Linear: about 44 MFLOPs per 28x28 image at width
1. The demo trains it 90% sparse and removes half its channels, so the widths leave room for
that while an epoch of Fashion-MNIST stays within a minute or two on two CPU cores.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from chase.models.registry import register_model
from chase.models.weight_init import init_weights

BASE_WIDTHS: tuple[int, int, int, int] = (32, 64, 128, 256)
POOL_AFTER: frozenset[int] = frozenset({0, 1})


class SmallCNN(nn.Module):
    """conv-BN-ReLU x4 with two max-pools as ``features``, then pool and ``classifier``."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: float = 1.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        layers: list[nn.Module] = []
        cin = in_channels
        for i, base in enumerate(BASE_WIDTHS):
            cout = max(1, round(base * width))
            layers += [
                nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=not batch_norm),
                nn.BatchNorm2d(cout) if batch_norm else nn.Identity(),
                nn.ReLU(inplace=True),
            ]
            if i in POOL_AFTER:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("small_cnn", input_size=(1, 28, 28))
def small_cnn(num_classes: int = 10, in_channels: int = 1, **kwargs: Any) -> SmallCNN:
    """Small CNN for 28x28 grey images; ``width`` scales every layer; ``batch_norm=False``
    uses conv biases instead (a model whose result does not depend on how a batch is split
    across processes, which the multi-process tests compare against one process)."""
    return SmallCNN(num_classes, in_channels, **kwargs)
