"""He et al. (2016) CIFAR ResNets: depth 6n+2, three stages of 16/32/64 channels.

Shortcuts that change shape use a 1x1 conv + BN projection (option B) rather than zero-padding,
so every residual stream is made of ordinary convs whose channel coupling tracing can see.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from chase.models.registry import register_model
from chase.models.resnet import BasicBlock
from chase.models.weight_init import init_weights


class CifarResNet(nn.Module):
    """CIFAR ResNet with ``blocks_per_stage`` BasicBlocks in each of three stages."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = 16
        self.layer1 = self._make_stage(16, blocks_per_stage, stride=1)
        self.layer2 = self._make_stage(32, blocks_per_stage, stride=2)
        self.layer3 = self._make_stage(64, blocks_per_stage, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        init_weights(self)

    def _make_stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(self.inplanes, planes, stride)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model("cifar_resnet20", aliases=("cifar_resnet_20",))
def cifar_resnet20(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> CifarResNet:
    """ResNet-20 for CIFAR (0.27M parameters)."""
    return CifarResNet(3, num_classes, in_channels, **kwargs)


@register_model("cifar_resnet32", aliases=("cifar_resnet_32",))
def cifar_resnet32(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> CifarResNet:
    """ResNet-32 for CIFAR (0.46M parameters)."""
    return CifarResNet(5, num_classes, in_channels, **kwargs)


@register_model("cifar_resnet56")
def cifar_resnet56(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> CifarResNet:
    """ResNet-56 for CIFAR (0.85M parameters)."""
    return CifarResNet(9, num_classes, in_channels, **kwargs)
