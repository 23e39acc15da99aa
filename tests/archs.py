"""Compact test-local architectures for the structure tests (no model zoo import).

Each builder returns an ``nn.Module`` whose channel coupling exercises one case of discovery or
slimming: plain chains (VGG), residual streams (ResNets), depthwise ties and projection streams
(MobileNetV2), concatenation, a flatten→Linear head, channel-permuting ops and grouped convs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class VGG(nn.Module):
    """CIFAR VGG with BatchNorm; ``cfg`` lists widths, 'M' is a 2×2 max-pool."""

    def __init__(self, cfg: Sequence[int | str], num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                assert isinstance(v, int)
                layers += [*conv_bn(cin, v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"]
VGG19 += [512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, planes, 3, stride)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3)
        self.downsample = _shortcut(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, planes, 1)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3, stride)
        self.conv3, self.bn3 = conv_bn(planes, planes * 4, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, planes * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(*conv_bn(cin, cout, 1, stride))


class ResNet(nn.Module):
    """torchvision-style ResNet; ``stem='cifar'`` is a 3×3 conv, ``'imagenet'`` 7×7/2 + pool."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        widths: Sequence[int],
        stem: str = "cifar",
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        w0 = widths[0]
        if stem == "cifar":
            self.conv1, self.bn1 = conv_bn(3, w0, 3)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, w0, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(w0)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.relu = nn.ReLU(inplace=True)
        cin = w0
        for i, (n, w) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cifar_resnet(depth: int) -> ResNet:
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n, n, n], [16, 32, 64], "cifar")


def resnet18(stem: str = "cifar", width: int = 64) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], [width * 2**i for i in range(4)], stem)


def resnet50(stem: str = "cifar", width: int = 64) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], [width * 2**i for i in range(4)], stem)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [*conv_bn(cin, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += conv_bn(hidden, cout, 1)
        self.conv = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (CIFAR strides): depthwise convs and linear-bottleneck residual streams."""

    SETTING = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2))
    SETTING += ((6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        cin = int(32 * width)
        layers: list[nn.Module] = [*conv_bn(3, cin, 3), nn.ReLU6(inplace=True)]
        for t, c, n, s in self.SETTING:
            cout = int(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers += [*conv_bn(cin, 1280, 1), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class ConcatNet(nn.Module):
    """Two branches concatenated on the channel axis (both orders), then consumed by convs."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 8), nn.ReLU())
        self.a = nn.Sequential(*conv_bn(8, 6), nn.ReLU())
        self.b = nn.Sequential(*conv_bn(8, 10), nn.ReLU())
        self.mix = nn.Sequential(*conv_bn(16, 12), nn.ReLU())
        self.mix2 = nn.Sequential(*conv_bn(28, 12), nn.ReLU())
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        a, b = self.a(s), self.b(s)
        y = self.mix(torch.cat([a, b], dim=1))
        y = self.mix2(torch.cat([b, y, a], dim=1))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class FlattenHead(nn.Module):
    """A conv net whose head flattens a C×H×W map into a Linear (one channel = H·W features)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn(3, 8), nn.ReLU(), nn.MaxPool2d(2), *conv_bn(8, 16), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.bn = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).view(x.shape[0], -1)
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


PERMUTES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "roll": lambda x: torch.roll(x, 1, dims=1),
    "flip": lambda x: torch.flip(x, dims=[1]),
    "index_select": lambda x: x.index_select(1, torch.arange(x.shape[1] - 1, -1, -1)),
    "shuffle": lambda x: channel_shuffle(x, 2),
}


class PermuteNet(nn.Module):
    """A channel-permuting op after ``conv1`` and a non-depthwise grouped ``conv3``."""

    def __init__(self, op: str = "roll", num_classes: int = 10) -> None:
        super().__init__()
        self.op = PERMUTES[op]
        self.conv1, self.bn1 = conv_bn(3, 8)
        self.conv2, self.bn2 = conv_bn(8, 8)
        self.conv3, self.bn3 = conv_bn(8, 16, groups=2)
        self.conv4, self.bn4 = conv_bn(16, 16)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.op(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.bn4(self.conv4(x)))
        return self.fc(x.mean((2, 3)))


class SqueezeExcite(nn.Module):
    """A squeeze-excitation gate (multiplicative coupling) plus spatial-only ops: upsample,
    spatial pad and slice, max pooling. The gate's ``fc2`` and ``conv`` produce the same
    channels, so by the "more than one producer" rule that group counts as residual."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.conv, self.bn = conv_bn(3, 16)
        self.fc1 = nn.Conv2d(16, 4, 1)
        self.fc2 = nn.Conv2d(4, 16, 1)
        self.conv2, self.bn2 = conv_bn(16, 8)
        self.up = nn.Upsample(scale_factor=2)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.hardswish(self.bn(self.conv(x)))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(h, 1)))))
        h = self.up(F.silu(self.bn2(self.conv2(h * gate))))
        h = F.pad(h, (1, 1, 1, 1))[:, :, 1:-1, 1:-1]
        return self.head(torch.flatten(F.adaptive_max_pool2d(h, 1), 1))


class Case:
    """A test architecture: how to build it and the input shape to trace it with."""

    def __init__(self, build: Callable[[], nn.Module], shape: tuple[int, ...], residual: int):
        self.build, self.shape, self.residual = build, shape, residual

    def inputs(self, seed: int = 1) -> torch.Tensor:
        return torch.randn(*self.shape, generator=torch.Generator().manual_seed(seed))


#: name → Case; ``residual`` is the number of residual channel groups discovery must report.
CASES = {
    "vgg19": Case(lambda: VGG(VGG19), (2, 3, 32, 32), 0),
    "resnet20": Case(lambda: cifar_resnet(20), (2, 3, 32, 32), 3),
    "resnet56": Case(lambda: cifar_resnet(56), (2, 3, 32, 32), 3),
    "resnet18_cifar": Case(lambda: resnet18("cifar"), (2, 3, 32, 32), 4),
    "resnet18_imagenet": Case(lambda: resnet18("imagenet"), (2, 3, 64, 64), 4),
    "resnet50_cifar": Case(lambda: resnet50("cifar"), (2, 3, 32, 32), 4),
    "resnet50_imagenet": Case(lambda: resnet50("imagenet"), (2, 3, 64, 64), 4),
    "mobilenetv2": Case(MobileNetV2, (2, 3, 32, 32), 5),
    "concat": Case(ConcatNet, (2, 3, 16, 16), 0),
    "flatten_head": Case(FlattenHead, (2, 3, 16, 16), 0),
    "squeeze_excite": Case(SqueezeExcite, (2, 3, 8, 8), 1),
    **{f"permute_{op}": Case(lambda op=op: PermuteNet(op), (2, 3, 16, 16), 0) for op in PERMUTES},
}
#: Small, fast architectures for the costlier round trips (export, checkpoints).
SMALL = ("resnet20", "mobilenetv2", "concat", "flatten_head", "permute_roll")
