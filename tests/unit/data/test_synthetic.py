"""Synthetic data: shapes of the imitated dataset, seeded determinism, learnable labels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chase.data import DataConfig, build_data


@pytest.mark.parametrize(
    ("like", "classes", "channels", "size"),
    [
        ("cifar10", 10, 3, 32),
        ("cifar100", 100, 3, 32),
        ("fashion-mnist", 10, 1, 28),
        ("mnist", 10, 1, 28),
        ("imagenet", 1000, 3, 224),
    ],
)
def test_shaped_like(like: str, classes: int, channels: int, size: int) -> None:
    bundle = build_data(
        DataConfig(
            name="synthetic",
            dir=None,
            batch_size=8,
            synthetic_like=like,
            synthetic_size=32,
            augment=True,
        )
    )
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (
        classes,
        channels,
        (size, size),
    )
    x, y = next(bundle.train.epoch(0))
    assert x.shape == (8, channels, size, size) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.min() >= 0 and y.max() < classes
    assert bundle.train.num_examples == 32 and bundle.test.num_examples == 8


def test_image_size_override_and_seed() -> None:
    a = build_data(
        DataConfig(name="synthetic", dir=None, batch_size=4, synthetic_size=8, image_size=16),
        seed=1,
    )
    b = build_data(
        DataConfig(name="synthetic", dir=None, batch_size=4, synthetic_size=8, image_size=16),
        seed=1,
    )
    c = build_data(
        DataConfig(name="synthetic", dir=None, batch_size=4, synthetic_size=8, image_size=16),
        seed=2,
    )
    assert a.image_size == (16, 16)
    xa, _ = next(iter(a.test))
    xb, _ = next(iter(b.test))
    xc, _ = next(iter(c.test))
    assert xa.shape == (2, 3, 16, 16)
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)


def test_does_not_touch_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    bundle = build_data(DataConfig(name="synthetic", dir=None, batch_size=16, synthetic_size=64))
    list(bundle.train.epoch(0))
    assert torch.equal(torch.get_rng_state(), before)


def test_labels_are_learnable() -> None:
    bundle = build_data(
        DataConfig(name="synthetic", dir=None, batch_size=64, synthetic_size=512), seed=0
    )
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(192, 10))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.01, generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for epoch in range(4):
        for x, y in bundle.train.epoch(epoch):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4
