"""MobileNetV2 (Sandler et al. 2018): inverted residuals with depthwise 3x3 convs and ReLU6.

``mobilenetv2`` uses the ImageNet strides (stride-2 stem, 32x downsampling). The CIFAR variant
``mobilenetv2_cifar`` uses a stride-1 stem and stride 1 in the second stage, so a 32x32 input
ends at 4x4 instead of 1x1. Depthwise convs tie their input and output channels, which is the
coupling case channel pruning must handle.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from chase.models.registry import register_model
from chase.models.weight_init import init_weights

# (expansion t, output channels c, repeats n, first stride s) per stage.
IMAGENET_SETTING: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of ``divisor``, never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU6(nn.Sequential):
    """Conv (optionally depthwise), BN, ReLU6 as one block: ``.0`` conv, ``.1`` BN."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """1x1 expand, depthwise 3x3, linear 1x1 project; residual when stride 1 and cin == cout."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = cin * expand_ratio
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 with ``features`` (stem, blocks, 1x1 head conv) and ``classifier``."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        stem_stride: int = 2,
        setting: list[tuple[int, int, int, int]] | None = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        setting = IMAGENET_SETTING if setting is None else setting
        cin = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU6(in_channels, cin, stride=stem_stride)]
        for t, c, n, s in setting:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU6(cin, last, kernel=1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("mobilenetv2", input_size=(3, 224, 224))
def mobilenetv2(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2 with ImageNet strides (3.5M parameters at width 1, 1000 classes)."""
    return MobileNetV2(num_classes, in_channels, **kwargs)


@register_model("mobilenetv2_cifar")
def mobilenetv2_cifar(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2 for 32x32 inputs: stride-1 stem and stride 1 in the second stage."""
    setting = list(IMAGENET_SETTING)
    t, c, n, _ = setting[1]
    setting[1] = (t, c, n, 1)
    return MobileNetV2(num_classes, in_channels, stem_stride=1, setting=setting, **kwargs)
