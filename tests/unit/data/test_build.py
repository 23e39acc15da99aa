"""``build_data``: dataset names, aliases and argument validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chase.data import DataConfig, build_data, known_datasets, resolve_dataset
from chase.errors import ConfigError


def test_unknown_name_lists_known_and_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        build_data(DataConfig(name="cifar11", dir=None, batch_size=4))
    message = str(info.value)
    assert "'cifar11'" in message and "did you mean" in message
    for name in known_datasets():
        assert name in message


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("fashion_mnist", "fashion-mnist"), ("fmnist", "fashion-mnist"), ("CIFAR-10", "cifar10")],
)
def test_aliases(alias: str, canonical: str) -> None:
    assert resolve_dataset(alias) == canonical


def test_bundle_reports_canonical_name(idx_dir: Path) -> None:
    bundle = build_data(DataConfig(name="fmnist", dir=str(idx_dir), batch_size=4))
    assert bundle.name == "fashion-mnist"
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (10, 1, (28, 28))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"val_split": 1.5}, "val_split"),
        ({"val_split": 2.0}, "val_split"),
        ({"val_split": -3}, "val_split"),
        ({"val_split": 16}, "val_split"),
        ({"val_split": True}, "val_split"),
        ({"subset": 17}, "subset"),
        ({"subset": 0}, "subset"),
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"world_size": 0}, "world_size"),
        ({"workers": -1}, "workers"),
        ({"batch_size": 9, "world_size": 2}, "batch_size"),
        ({"synthetic_like": "svhn"}, "synthetic_like"),
        ({"synthetic_like": "synthetic"}, "synthetic_like"),
        ({"synthetic_size": 0}, "synthetic_size"),
        ({"image_size": 0}, "image_size"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    options = {"batch_size": 4, "synthetic_size": 16} | kwargs
    where = {k: options.pop(k) for k in ("rank", "world_size") if k in options}
    with pytest.raises(ConfigError, match=field):
        build_data(DataConfig(name="synthetic", dir=None, **options), **where)


def test_image_size_only_for_resizable_datasets(idx_dir: Path) -> None:
    with pytest.raises(ConfigError, match="image_size"):
        build_data(DataConfig(name="fmnist", dir=str(idx_dir), batch_size=4, image_size=32))
    assert build_data(
        DataConfig(name="fmnist", dir=str(idx_dir), batch_size=4, image_size=28)
    ).image_size == (28, 28)


def test_augment_flag_changes_images_not_order(cifar10_root: Path) -> None:
    plain = build_data(
        DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=16, augment=False), seed=4
    )
    augmented = build_data(
        DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=16, augment=True), seed=4
    )
    (xa, ya), (xb, yb) = next(plain.train.epoch(0)), next(augmented.train.epoch(0))
    assert torch.equal(ya, yb) and xa.shape == xb.shape
    assert not torch.equal(xa, xb)
    lo = (0 - torch.tensor(plain.mean)) / torch.tensor(plain.std)
    assert torch.isclose(xb.amin((0, 2, 3)), lo, atol=1e-5).all()  # zero padding visible


def test_test_subset_takes_every_class_in_turn_and_is_checked() -> None:
    data = build_data(DataConfig(name="synthetic", synthetic_size=400, test_subset=20))
    labels = torch.cat([y for _, y in data.test.epoch(0)])
    assert data.test.num_examples == 20 and len(labels) == 20
    assert torch.bincount(labels, minlength=10).tolist() == [2] * 10  # 10 classes, twice each
    with pytest.raises(ConfigError, match=r"^data.test_subset = 1 is not allowed with 2 processes"):
        build_data(DataConfig(name="synthetic", test_subset=1, batch_size=2), world_size=2)
    with pytest.raises(ConfigError, match=r"^data.test_subset = 999 is not allowed: at most 100,"):
        build_data(DataConfig(name="synthetic", synthetic_size=400, test_subset=999))
