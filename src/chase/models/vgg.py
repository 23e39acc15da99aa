"""CIFAR VGG with BatchNorm, as used by the sparse-training literature.

Stacks of conv3x3-BN-ReLU separated by 2x2 max-pools, the configurations of Simonyan &
Zisserman with the final max-pool dropped (the "network slimming" CIFAR variant that the Chase
reference code trains), then global average pooling and one Linear. Four pools make any input
of 16 pixels or more work: 32x32 CIFAR (2x2 before pooling) and 28x28 Fashion-MNIST alike.
``width`` multiplies every conv width (rounded, at least 1): ``vgg11(width=0.5)`` costs a
quarter of VGG-11's FLOPs, small enough for CPU studies; the default 1.0 is the paper's model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from chase.models.registry import register_model
from chase.models.weight_init import init_weights

# Numbers are conv widths, "M" a 2x2 max-pool.
CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", *[256] * 4, "M", *[512] * 4, "M", *[512] * 4],
}


def make_features(cfg: list[int | str], in_channels: int) -> nn.Sequential:
    """Build the conv trunk ``features`` from a configuration list."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        width = int(item)
        layers += [
            nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        channels = width
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG trunk ``features``, global average pool, Linear ``classifier``."""

    def __init__(
        self,
        cfg: list[int | str],
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        cfg = [c if c == "M" else max(1, round(int(c) * width)) for c in cfg]
        self.features = make_features(cfg, in_channels)
        last = [c for c in cfg if c != "M"][-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(int(last), num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("vgg11")
def vgg11(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> VGG:
    """CIFAR VGG-11 with BatchNorm."""
    return VGG(CFGS["vgg11"], num_classes, in_channels, **kwargs)


@register_model("vgg13")
def vgg13(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> VGG:
    """CIFAR VGG-13 with BatchNorm."""
    return VGG(CFGS["vgg13"], num_classes, in_channels, **kwargs)


@register_model("vgg16")
def vgg16(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> VGG:
    """CIFAR VGG-16 with BatchNorm."""
    return VGG(CFGS["vgg16"], num_classes, in_channels, **kwargs)


@register_model("vgg19")
def vgg19(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> VGG:
    """CIFAR VGG-19 with BatchNorm: the paper's CIFAR VGG-19 (about 20M parameters)."""
    return VGG(CFGS["vgg19"], num_classes, in_channels, **kwargs)
