"""ImageNet-style folder trees: scanning, PIL transforms, worker-independent batches."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from PIL import Image

from chase.data import DataConfig, build_data
from chase.data.imagenet import round_robin_order, scan_split
from chase.data.transforms import RATIO, _crop_box, eval_transform, train_transform
from chase.errors import DataError
from datafiles import JPEG_CLASSES, JPEG_TRAIN_PER_CLASS, JPEG_VAL_PER_CLASS

N_TRAIN = len(JPEG_CLASSES) * JPEG_TRAIN_PER_CLASS
N_VAL = len(JPEG_CLASSES) * JPEG_VAL_PER_CLASS


def _build(root: Path, rank: int = 0, world_size: int = 1, **kwargs: object) -> object:
    """Per-rank batch 4 (unless given), 32-pixel crops, no worker processes."""
    options: dict = {"batch_size": 4, "image_size": 32, "workers": 0} | kwargs
    options["batch_size"] *= world_size
    config = DataConfig(name="imagenet", dir=str(root), **options)
    return build_data(config, seed=0, rank=rank, world_size=world_size)


def test_scan_sorted_classes_and_labels(jpeg_root: Path) -> None:
    paths, labels = scan_split(jpeg_root / "train")
    assert len(paths) == N_TRAIN  # notes.txt is ignored
    assert labels == sorted(labels) and set(labels) == {0, 1, 2}
    assert all(Path(p).parent.name == JPEG_CLASSES[y] for p, y in zip(paths, labels))


def test_bundle_shapes_and_eval_coverage(jpeg_root: Path) -> None:
    bundle = _build(jpeg_root)
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (3, 3, (32, 32))
    x, y = next(bundle.train.epoch(0))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(bundle.train) == N_TRAIN // 4
    labels = torch.cat([y for _, y in bundle.test])
    assert labels.tolist() == [c for c in range(3) for _ in range(JPEG_VAL_PER_CLASS)]
    # Class colour survives decoding: class c images are about 80 * c + 30 grey levels.
    x, y = next(iter(bundle.test))
    mean = torch.tensor(bundle.mean).view(1, 3, 1, 1)
    std = torch.tensor(bundle.std).view(1, 3, 1, 1)
    pixels = (x * std + mean) * 255
    assert torch.allclose(pixels.mean((1, 2, 3)), 80 * y.float() + 30, atol=8)


def test_batches_do_not_depend_on_workers_and_resume(jpeg_root: Path) -> None:
    serial = list(_build(jpeg_root).train.epoch(1))
    parallel = list(_build(jpeg_root, workers=2).train.epoch(1))
    assert len(serial) == len(parallel) == N_TRAIN // 4
    for (xa, ya), (xb, yb) in zip(serial, parallel):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    tail = list(_build(jpeg_root).train.epoch(1, start=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(tail, serial[1:]))
    other = list(_build(jpeg_root).train.epoch(2))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(other, serial))


def test_rank_shards_and_subset(jpeg_root: Path) -> None:
    shards = [
        set(_build(jpeg_root, rank=r, world_size=2).train.positions(0).tolist()) for r in (0, 1)
    ]
    assert not shards[0] & shards[1] and len(shards[0]) == len(shards[1]) == 4
    subset = _build(jpeg_root, subset=3, batch_size=1, augment=False)
    _, labels = scan_split(jpeg_root / "train")
    assert sorted(labels[i] for i in subset.train.indices.tolist()) == [0, 1, 2]
    split = _build(jpeg_root, val_split=3)
    assert split.val is not None and split.val.num_examples == 3
    assert not set(split.val.indices.tolist()) & set(split.train.indices.tolist())


def test_round_robin_order() -> None:
    order = round_robin_order(torch.tensor([0, 0, 0, 1, 2, 2]))
    assert order.tolist() == [0, 3, 4, 1, 5, 2]


def test_train_transform_deterministic_and_sized() -> None:
    image = Image.new("RGB", (50, 30), (10, 200, 30))
    a = train_transform(image, 24, random.Random(5))
    b = train_transform(image, 24, random.Random(5))
    assert a.shape == (3, 24, 24) and a.dtype == torch.uint8 and torch.equal(a, b)


@pytest.mark.parametrize("size", [(100, 100), (400, 60), (60, 400), (7, 9), (1, 1)])
def test_crop_box_within_limits(size: tuple[int, int]) -> None:
    width, height = size
    rng = random.Random(0)
    for _ in range(200):
        left, top, right, bottom = _crop_box(width, height, rng)
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        w, h = right - left, bottom - top
        if min(w, h) >= 10:  # rounding dominates the aspect of tiny crops
            assert RATIO[0] * 0.8 <= w / h <= RATIO[1] * 1.25


@pytest.mark.parametrize("size", [(64, 48), (48, 64), (300, 32)])
def test_eval_transform_resizes_short_side_then_center_crops(size: tuple[int, int]) -> None:
    image = Image.new("RGB", size, (0, 0, 0))
    image.paste(
        (255, 255, 255), (size[0] // 2 - 2, size[1] // 2 - 2, size[0] // 2 + 2, size[1] // 2 + 2)
    )
    out = eval_transform(image, 32)
    assert out.shape == (3, 32, 32)
    assert out[:, 16, 16].min() > 100 and out[:, 0, 0].max() < 20  # centre kept, corner dark


def test_missing_or_broken_tree(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train/<class>") as info:
        _build(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(DataError, match="--data-dir"):
        build_data(DataConfig(name="imagenet", dir=None, batch_size=2))
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "val" / "zzz").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "a" / "x.JPEG")
    with pytest.raises(DataError, match="not among the train classes"):
        _build(tmp_path)
    (tmp_path / "val" / "zzz").rmdir()
    (tmp_path / "val" / "a").mkdir()
    (tmp_path / "val" / "a" / "bad.JPEG").write_bytes(b"not a jpeg")
    for workers in (0, 1):
        bundle = _build(tmp_path, batch_size=1, workers=workers)
        with pytest.raises(DataError, match="cannot decode") as info:
            next(iter(bundle.test))
        assert str(info.value).startswith(str(tmp_path / "val" / "a" / "bad.JPEG"))
        assert "\n" not in str(info.value)
