"""ResNet-18/34/50 (He et al. 2016) with an ImageNet stem or a CIFAR stem.

The ImageNet stem is a 7x7 stride-2 conv, BN, ReLU and a 3x3 stride-2 max-pool; the CIFAR stem
(``*_cifar``, and the reference code's ``ResNet34``/``ResNet50``) is one 3x3 stride-1 conv with
no pool, so 32x32 inputs keep enough resolution. Bottleneck blocks put the stride on the 3x3 conv
("ResNet v1.5"), and every shape-changing shortcut is a 1x1 conv + BN.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from chase.models.registry import register_model
from chase.models.weight_init import init_weights

Stem = Literal["imagenet", "cifar"]


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Sequential | None:
    """1x1 conv + BN projection shortcut, or None when the shapes already match."""
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(
        nn.Conv2d(inplanes, outplanes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(outplanes),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), with a residual connection."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, outplanes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Four-stage ResNet (64/128/256/512 planes) with a selectable stem."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: Stem = "imagenet",
    ) -> None:
        super().__init__()
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        elif stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = 64
        self.layer1 = self._make_stage(block, 64, layers[0], stride=1)
        self.layer2 = self._make_stage(block, 128, layers[1], stride=2)
        self.layer3 = self._make_stage(block, 256, layers[2], stride=2)
        self.layer4 = self._make_stage(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self)

    def _make_stage(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        layers = [block(self.inplanes, planes, stride)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model("resnet18", input_size=(3, 224, 224))
def resnet18(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18, ImageNet stem."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, stem="imagenet", **kwargs)


@register_model("resnet34", input_size=(3, 224, 224))
def resnet34(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34, ImageNet stem."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels, stem="imagenet", **kwargs)


@register_model("resnet50", input_size=(3, 224, 224))
def resnet50(num_classes: int = 1000, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50, ImageNet stem: 25.6M parameters, 8.2 GFLOPs at 224x224 for 1000 classes."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, stem="imagenet", **kwargs)


@register_model("resnet18_cifar")
def resnet18_cifar(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18, CIFAR stem (3x3 stride-1 conv, no max-pool)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, stem="cifar", **kwargs)


@register_model("resnet34_cifar", aliases=("ResNet34",))
def resnet34_cifar(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34, CIFAR stem (3x3 stride-1 conv, no max-pool)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels, stem="cifar", **kwargs)


@register_model("resnet50_cifar", aliases=("ResNet50",))
def resnet50_cifar(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50, CIFAR stem: the paper's CIFAR ResNet-50 (23.5M parameters)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, stem="cifar", **kwargs)
