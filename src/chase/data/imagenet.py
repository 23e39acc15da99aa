"""ImageNet-style folder trees (``train/<class>/*.JPEG``, ``val/<class>/*.JPEG``) and their loader.

Class names are the sorted subfolder names of ``train/``; ``val/`` must use the same names.
Images are decoded with PIL in ``DataLoader`` worker processes. The loader keeps the contract of
``loaders.Loader``: the batch order comes from the same seeded permutation and rank shards as
the in-memory loader, and each image's augmentation from a generator seeded by (seed, epoch,
example index), so batches do not depend on the number of workers.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from chase.data.augment import normalize
from chase.data.loaders import Batch, ShardedLoader, check_start
from chase.data.sharding import mix_seed
from chase.data.transforms import eval_transform, train_transform
from chase.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp"})
Key = tuple[int, int]  # (example index, epoch)


def find_imagenet_dir(data_dir: str | Path) -> Path:
    """``data_dir`` if it holds ``train/`` and ``val/`` class folders, else ``DataError``."""
    root = Path(data_dir).expanduser()
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise DataError(
            f"ImageNet folder not found: {root} must contain train/<class>/*.JPEG and "
            "val/<class>/*.JPEG (one subfolder per class in each)."
        )
    return root


def scan_split(folder: Path, classes: Sequence[str] | None = None) -> tuple[list[str], list[int]]:
    """Sorted image paths under ``folder/<class>/`` and their labels (index in ``classes``)."""
    found = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    classes = found if classes is None else classes
    lookup = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(found) - set(lookup))
    if unknown:
        raise DataError(f"{folder}: class folders {unknown[:5]} are not among the train classes")
    paths: list[str] = []
    labels: list[int] = []
    for name in found:
        files = sorted(
            e.path
            for e in os.scandir(folder / name)
            if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        )
        paths += files
        labels += [lookup[name]] * len(files)
    if not paths:
        raise DataError(f"{folder}: no images found (expected <class>/*.JPEG subfolders)")
    return paths, labels


def round_robin_order(labels: torch.Tensor) -> torch.Tensor:
    """Indices ordered first example of every class, then second of every class, and so on.

    ``subset=N`` takes the first N in this order so a small subset still covers all classes.
    """
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    counts = torch.bincount(sorted_labels)
    starts = torch.cumsum(counts, 0) - counts
    within = torch.arange(len(labels)) - starts[sorted_labels]
    key = within * (int(labels.max()) + 1) + sorted_labels
    return order[torch.argsort(key, stable=True)]


class ImageFolderDataset(Dataset[tuple[torch.Tensor, int]]):
    """Decodes one image per key (example index, epoch) into a uint8 (3, size, size) tensor.

    ``augment=True`` applies the random train transform, otherwise the deterministic eval one.
    """

    def __init__(
        self, paths: Sequence[str], labels: Sequence[int], *, augment: bool, size: int, seed: int
    ) -> None:
        self.paths, self.labels = list(paths), list(labels)
        self.augment, self.size, self.seed = augment, size, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, int]:
        index, epoch = key
        path = self.paths[index]
        try:
            with Image.open(path) as raw:
                image = raw.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{path}: cannot decode image ({exc})") from exc
        if self.augment:
            rng = random.Random(mix_seed(self.seed, "image-augment", epoch, index))
            return train_transform(image, self.size, rng), self.labels[index]
        return eval_transform(image, self.size), self.labels[index]


class _Collate:
    """Stack uint8 images and normalise them in the worker (picklable for worker processes)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, items: list[tuple[torch.Tensor, int]]) -> Batch:
        images = torch.stack([image for image, _ in items])
        labels = torch.tensor([label for _, label in items], dtype=torch.int64)
        return normalize(images, self.mean, self.std), labels


class _BatchKeys:
    """Lazy batch sampler: lists of (example index, epoch) for batches ``start, ...``."""

    def __init__(self, order: torch.Tensor, epoch: int, batch_size: int, start: int) -> None:
        self.order, self.epoch, self.batch_size, self.start = order, epoch, batch_size, start

    def __len__(self) -> int:
        return max(0, -(-len(self.order) // self.batch_size) - self.start)

    def __iter__(self) -> Iterator[list[Key]]:
        for b in range(self.start, self.start + len(self)):
            chunk = self.order[b * self.batch_size : (b + 1) * self.batch_size].tolist()
            yield [(i, self.epoch) for i in chunk]


class FolderLoader(ShardedLoader):
    """Loader over an ``ImageFolderDataset`` with the same contract as ``TensorLoader``."""

    def __init__(
        self,
        dataset: ImageFolderDataset,
        indices: torch.Tensor,
        *,
        batch_size: int,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 4,
    ) -> None:
        if workers < 0:
            raise ConfigError(f"workers: must be >= 0, got {workers}")
        super().__init__(
            indices, batch_size=batch_size, train=train, seed=seed, rank=rank, world_size=world_size
        )
        self.dataset, self.workers = dataset, workers
        self.collate = _Collate(mean, std)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Yield batches ``start, start+1, ...`` of ``epoch``, decoded by worker processes."""
        check_start(start, len(self))
        sampler = _BatchKeys(self.positions(epoch), epoch, self.batch_size, start)
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.workers,
            collate_fn=self.collate,
            pin_memory=torch.cuda.is_available(),
        )
        try:
            yield from loader
        except DataError as exc:  # re-raised from a worker with its traceback in the message
            last = str(exc).strip().splitlines()[-1]
            raise DataError(last.split("DataError: ", 1)[-1]) from None
