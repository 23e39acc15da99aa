"""The test model zoo: the project's own models plus the few architectures only tests need.

``CASES`` names every architecture the structure tests trace and slim. Wherever the project
zoo (``chase.models``) has the model, the case builds it with ``create_model``, so the tests
exercise the models users train: VGG-19, the CIFAR ResNets, ResNet-18/50 with both stems and
MobileNetV2. The rest are test-only networks that each exercise one case of coupling:
concatenation, a flatten→Linear head, channel-permuting ops and a grouped conv, a
squeeze-excitation gate. The engine tests train tiny networks (``mlp``, ``vgg_style``,
``ResNetStyle``) on seeded random batches (``batch``, ``train_steps``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from chase.models import create_model
from chase.models.resnet import Bottleneck
from chase.models.vgg import make_features

# --- tiny networks for the engine tests ---------------------------------------------------


def mlp(widths: tuple[int, ...] = (20, 32, 24, 10)) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def vgg_style(widths: tuple[int, ...] = (8, 16, 16, 32), classes: int = 10) -> nn.Module:
    """conv-BN-ReLU per width, a 2×2 max-pool after every second one, pool, Linear."""
    cfg: list[int | str] = []
    for i, w in enumerate(widths):
        cfg += [w, "M"] if i % 2 == 1 else [w]
    pool_flatten = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*make_features(cfg, 3), *pool_flatten, nn.Linear(widths[-1], classes))


class ResNetStyle(nn.Module):
    """7×7 stem, two bottleneck stages of the zoo's ``Bottleneck`` (1×1 and 3×3 convs), Linear."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(Bottleneck(width, width), Bottleneck(4 * width, width))
        self.layer2 = nn.Sequential(Bottleneck(4 * width, 2 * width, stride=2))
        self.fc = nn.Linear(8 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def input_for(model: nn.Module, batch: int = 4) -> torch.Tensor:
    if isinstance(model, nn.Sequential) and isinstance(model[0], nn.Flatten):
        return torch.randn(batch, model[1].in_features)
    return torch.randn(batch, 3, 16, 16)


def batch(model: nn.Module, step: int, seed: int = 0, classes: int = 10, size: int = 4):
    """The seeded random batch number ``step``: the same for every run and resume."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    shape = input_for(model, size).shape
    return torch.randn(shape, generator=g), torch.randint(0, classes, (shape[0],), generator=g)


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    steps: int,
    seed: int = 0,
    after=None,
    start: int = 0,
) -> None:
    """Optimizer steps ``start+1 .. start+steps`` on seeded random batches.

    ``after(step)`` is called after each step.
    """
    for i in range(start, start + steps):
        x, y = batch(model, i, seed)
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if after is not None:
            after(i + 1)


# --- test-only architectures for the structure tests --------------------------------------


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


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
    channels, but a gate multiplies into them: the group is not residual (only a sum is)."""

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


# --- issue 12's layer families in one small model


class BatchNormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d in miniature: the norm, then an activation, in one forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(super().forward(x))


class BadNormAct(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x.flip(1), self.running_mean, self.running_var, self.weight,
                            self.bias, False)  # fmt: skip


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.rand(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.dw(x).permute(0, 2, 3, 1))
        h = self.fc2(F.gelu(self.fc1(h))).permute(0, 3, 1, 2)
        return x + self.gamma * h


class FamiliesNet(nn.Module):
    """stem → BN+act subclass → SE gate → (chunk →) two convs → cat → grouped conv + GroupNorm
    → ConvNeXt block → head."""

    def __init__(self, norm: type[nn.BatchNorm2d] = BatchNormAct, chunk: bool = False) -> None:
        super().__init__()
        self.chunk = chunk
        self.stem, self.bn = nn.Conv2d(3, 16, 3, padding=1), norm(16)
        self.se1, self.se2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        width = 8 if chunk else 16
        self.a, self.b = nn.Conv2d(width, 8, 3, padding=1), nn.Conv2d(width, 8, 3, padding=1)
        self.mix = nn.Conv2d(16, 16, 1)  # a grouped conv's conv groups must read one group
        self.grouped, self.gn = nn.Conv2d(16, 24, 3, padding=1, groups=4), nn.GroupNorm(8, 24)
        self.proj = nn.Conv2d(24, 12, 1)
        self.block = ConvNeXtBlock(12)
        self.head = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.stem(x))
        h = h * torch.sigmoid(self.se2(F.relu(self.se1(h.mean((2, 3), keepdim=True)))))
        left, right = h.chunk(2, dim=1) if self.chunk else (h, F.relu(h))
        h = torch.cat([F.relu(self.a(left)), F.relu(self.b(right))], 1)
        h = self.proj(F.relu(self.gn(self.grouped(self.mix(h)))))
        return self.head(self.block(h).mean((2, 3)))


# --- the cases ------------------------------------------------------------------------------


class Case:
    """A test architecture: how to build it and the input shape to trace it with."""

    def __init__(self, build: Callable[[], nn.Module], shape: tuple[int, ...], residual: int):
        self.build, self.shape, self.residual = build, shape, residual

    def inputs(self, seed: int = 1) -> torch.Tensor:
        return torch.randn(*self.shape, generator=torch.Generator().manual_seed(seed))


def zoo(name: str, shape: tuple[int, ...], residual: int, **kwargs: Any) -> Case:
    """A case built by the project zoo: ``create_model(name, **kwargs)`` (10 classes)."""
    return Case(lambda: create_model(name, **kwargs), shape, residual)


#: name → Case; ``residual`` is the number of residual channel groups discovery must report.
#: The ImageNet-stem ResNets are traced at 64×64 (not their 224×224) to keep the tests quick.
CASES = {
    "vgg19": zoo("vgg19", (2, 3, 32, 32), 0),
    "resnet20": zoo("cifar_resnet20", (2, 3, 32, 32), 3),
    "resnet56": zoo("cifar_resnet56", (2, 3, 32, 32), 3),
    "resnet18_cifar": zoo("resnet18_cifar", (2, 3, 32, 32), 4),
    "resnet18_imagenet": zoo("resnet18", (2, 3, 64, 64), 4),
    "resnet50_cifar": zoo("resnet50_cifar", (2, 3, 32, 32), 4),
    "resnet50_imagenet": zoo("resnet50", (2, 3, 64, 64), 4),
    "mobilenetv2": zoo("mobilenetv2_cifar", (2, 3, 32, 32), 5),
    "concat": Case(ConcatNet, (2, 3, 16, 16), 0),
    "flatten_head": Case(FlattenHead, (2, 3, 16, 16), 0),
    "squeeze_excite": Case(SqueezeExcite, (2, 3, 8, 8), 0),
    **{f"permute_{op}": Case(lambda op=op: PermuteNet(op), (2, 3, 16, 16), 0) for op in PERMUTES},
}
#: Small, fast architectures for the costlier round trips (export, checkpoints).
SMALL = ("resnet20", "mobilenetv2", "concat", "flatten_head", "permute_roll")
