"""``build_data``: one entry point from a dataset name to train/val/test loaders.

Order of selection: ``subset`` keeps the first N training examples, then ``val_split`` carves a
seeded hold-out from what remains; the test set is only ever evaluated, never used to select.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from chase.data.arrays import TensorData
from chase.data.cifar import read_cifar
from chase.data.config import DataConfig
from chase.data.idx import read_idx_dataset
from chase.data.imagenet import (
    FolderLoader,
    ImageFolderDataset,
    find_imagenet_dir,
    round_robin_order,
    scan_split,
)
from chase.data.loaders import Loader, TensorLoader
from chase.data.sharding import check_rank, split_indices
from chase.data.specs import SPECS, SYNTHETIC, DatasetSpec, spec_and_size
from chase.data.synthetic import make_synthetic
from chase.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DEFAULT_SYNTHETIC_SIZE = 1024  # training examples; the test split gets a quarter of that


@dataclass(frozen=True)
class DataBundle:
    """Loaders plus what a model needs to know: classes, channels, (H, W), normalisation."""

    name: str
    train: Loader
    val: Loader | None
    test: Loader
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class _Options:
    """The loader settings shared by every split (batch sizes per rank)."""

    batch_size: int
    eval_batch_size: int
    subset: int | None
    test_subset: int | None
    val_split: float | int
    seed: int
    augment: bool
    rank: int
    world_size: int
    workers: int


Splits = tuple[Loader, Loader | None, Loader]


def _val_count(val_split: float | int, n: int) -> int:
    """Examples to hold out: a float is a fraction in (0, 1) (at least one), an int a count."""
    count = (
        max(1, round(val_split * n))
        if isinstance(val_split, float) and val_split
        else int(val_split)
    )
    if not 0 <= count < n:
        raise ConfigError(
            f"data.val_split = {val_split!r} is not allowed: it must leave some of the {n} "
            "training examples"
        )
    return count


def _train_val_indices(
    n: int, opts: _Options, order: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training and validation indices: the first ``subset`` (of ``order``), then the hold-out."""
    base = torch.arange(n) if order is None else order
    if opts.subset is not None:
        if opts.subset > n:
            raise ConfigError(
                f"data.subset = {opts.subset} is not allowed: at most {n}, the training set size"
            )
        base = base[: opts.subset]
    count = _val_count(opts.val_split, len(base))
    if count == 0:
        return base, None
    kept, held = split_indices(len(base), count, opts.seed)
    return base[kept], base[held]


def _test_indices(labels: torch.Tensor, opts: _Options) -> torch.Tensor:
    """The whole test set in file order, or its first ``test_subset`` examples in class
    round-robin order (every class covered)."""
    if opts.test_subset is None:
        return torch.arange(len(labels))
    if opts.test_subset < opts.world_size:
        raise ConfigError(
            f"data.test_subset = {opts.test_subset} is not allowed with {opts.world_size} "
            "processes: every process needs at least one test example"
        )
    if opts.test_subset > len(labels):
        raise ConfigError(
            f"data.test_subset = {opts.test_subset} is not allowed: at most {len(labels)}, "
            "the test set size"
        )
    return round_robin_order(labels)[: opts.test_subset]


def _read_tensors(
    name: str,
    data_dir: str | None,
    like: DatasetSpec,
    size: int | None,
    image_size: tuple[int, int],
    seed: int,
) -> TensorData:
    """Read (or generate, for ``synthetic``) an in-memory dataset."""
    if name == SYNTHETIC:
        num_train = DEFAULT_SYNTHETIC_SIZE if size is None else size
        return make_synthetic(like, num_train, max(1, num_train // 4), seed, image_size)
    if name in ("cifar10", "cifar100"):
        if data_dir is None:
            folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
            raise DataError(
                f"{name} needs a data folder: pass --data-dir pointing at the "
                f"extracted {folder} folder or its parent."
            )
        return read_cifar(data_dir, SPECS[name].num_classes)
    return read_idx_dataset(data_dir, name)


def _tensor_loaders(data: TensorData, spec: DatasetSpec, opts: _Options) -> Splits:
    """Train/val/test ``TensorLoader``s over in-memory uint8 tensors."""
    train_idx, val_idx = _train_val_indices(len(data.train_labels), opts)
    make = functools.partial(
        TensorLoader,
        mean=spec.mean,
        std=spec.std,
        seed=opts.seed,
        rank=opts.rank,
        world_size=opts.world_size,
    )
    train = make(
        data.train_images,
        data.train_labels,
        train_idx,
        train=True,
        batch_size=opts.batch_size,
        crop_padding=spec.crop_padding if opts.augment else 0,
        flip=spec.flip and opts.augment,
    )
    evaluate = functools.partial(make, train=False, batch_size=opts.eval_batch_size)
    val = None if val_idx is None else evaluate(data.train_images, data.train_labels, val_idx)
    test = evaluate(data.test_images, data.test_labels, _test_indices(data.test_labels, opts))
    return train, val, test


def _folder_loaders(root: Path, spec: DatasetSpec, size: int, opts: _Options) -> tuple[Splits, int]:
    """Train/val/test ``FolderLoader``s over an ImageNet-style tree, and the class count."""
    train_paths, train_labels = scan_split(root / "train")
    classes = sorted({Path(p).parent.name for p in train_paths})
    test_paths, test_labels = scan_split(root / "val", classes)
    labels = torch.tensor(train_labels)
    order = round_robin_order(labels) if opts.subset is not None else None
    train_idx, val_idx = _train_val_indices(len(train_paths), opts, order)

    def loader(paths: list[str], targets: list[int], idx: torch.Tensor, train: bool) -> Loader:
        dataset = ImageFolderDataset(
            paths, targets, augment=train and opts.augment, size=size, seed=opts.seed
        )
        return FolderLoader(
            dataset,
            idx,
            batch_size=opts.batch_size if train else opts.eval_batch_size,
            train=train,
            mean=spec.mean,
            std=spec.std,
            seed=opts.seed,
            rank=opts.rank,
            world_size=opts.world_size,
            workers=opts.workers,
        )

    train = loader(train_paths, train_labels, train_idx, True)
    val = None if val_idx is None else loader(train_paths, train_labels, val_idx, False)
    test = loader(test_paths, test_labels, _test_indices(torch.tensor(test_labels), opts), False)
    return (train, val, test), len(classes)


def _options(config: DataConfig, seed: int, rank: int, world_size: int) -> _Options:
    """Per-rank loader settings; the global batch must divide evenly among the processes."""
    check_rank(rank, world_size)
    if config.batch_size % world_size:
        raise ConfigError(
            f"data.batch_size = {config.batch_size} is not allowed with {world_size} processes: "
            "the global batch must divide evenly among them"
        )
    eval_batch = config.eval_batch_size or config.batch_size
    return _Options(
        config.batch_size // world_size, max(1, eval_batch // world_size), config.subset,
        config.test_subset, config.val_split, seed, config.augment, rank, world_size,
        config.workers,
    )  # fmt: skip


def build_data(
    config: DataConfig, *, seed: int = 0, rank: int = 0, world_size: int = 1
) -> DataBundle:
    """Train/val/test loaders of ``config`` for process ``rank`` of ``world_size``.

    ``config.batch_size`` is the global batch: each rank takes ``batch_size / world_size``.
    ``seed`` seeds the shuffles, augmentation, validation split and synthetic data. What only
    the data can tell (a ``subset`` larger than the dataset, a ``val_split`` leaving nothing
    to train on, missing files) raises ``ConfigError``/``DataError`` here.
    """
    canonical = config.canonical
    opts = _options(config, seed, rank, world_size)
    spec, size = spec_and_size(canonical, config.synthetic_like, config.image_size)
    num_classes = spec.num_classes
    if canonical == "imagenet":
        if config.dir is None:
            raise DataError(
                "imagenet needs a data folder: pass --data-dir pointing at a folder with "
                "train/<class>/ and val/<class>/ subfolders."
            )
        root = find_imagenet_dir(config.dir)
        (train, val, test), num_classes = _folder_loaders(root, spec, size[0], opts)
    else:
        data = _read_tensors(canonical, config.dir, spec, config.synthetic_size, size, seed)
        train, val, test = _tensor_loaders(data, spec, opts)
    if len(train) == 0:
        raise ConfigError(
            f"data.batch_size = {config.batch_size} is not allowed: it is more than the "
            f"{train.num_examples} training examples available; lower it or raise data.subset"
        )
    log.info(
        "%s: %d train / %d val / %d test examples on rank %d of %d",
        canonical,
        train.num_examples,
        val.num_examples if val else 0,
        test.num_examples,
        rank,
        world_size,
    )
    return DataBundle(
        canonical, train, val, test, num_classes, spec.in_channels, size, spec.mean, spec.std
    )
