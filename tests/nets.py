"""Small networks the engine tests train: an MLP, a VGG-style and a ResNet-style CNN."""

from __future__ import annotations

import itertools

import torch
from torch import nn


def mlp(widths: tuple[int, ...] = (20, 32, 24, 10)) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def vgg_style(widths: tuple[int, ...] = (8, 16, 16, 32), classes: int = 10) -> nn.Module:
    layers: list[nn.Module] = []
    c = 3
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNetStyle(nn.Module):
    """7×7 stem, two bottleneck stages (1×1 and 3×3 convs), Linear head."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(
            Bottleneck(width, width, 4 * width), Bottleneck(4 * width, width, 4 * width)
        )
        self.layer2 = nn.Sequential(Bottleneck(4 * width, 2 * width, 8 * width, stride=2))
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
