"""``DataConfig``: where a run's data comes from and how it is batched — the ``data`` section
of a run configuration, and what ``build_data`` takes whole."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from chase.checks import check, check_bool, check_int, is_integer
from chase.data.specs import SYNTHETIC, resolve_dataset, spec_and_size


def _check_dataset(key: str, value: Any, real: bool = False) -> None:
    """A dataset name or alias (``real``: not ``synthetic``), as ``build_data`` accepts it."""
    check(isinstance(value, str) and value.strip() != "", key, value, "a dataset name")
    if resolve_dataset(value, key) == SYNTHETIC and real:
        check(False, key, value, "a real dataset for synthetic data to imitate")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is batched.

    name: dataset name or alias (``chase.data.known_datasets``); dir: its folder (None for
    synthetic data and for Fashion-MNIST/MNIST installed system-wide).
    batch_size: the **global** training batch (split evenly across processes).
    eval_batch_size: global batch of evaluation (None: ``batch_size``).
    subset: train on the first N training examples; val_split: a fraction in (0, 1) or a count
    of training examples held out for validation (0: none), carved after ``subset``.
    test_subset: evaluate on N test examples only (every class in turn, so all are covered;
    None: the whole test set) — for quick runs: reports then speak of those N examples.
    augment: train-time augmentation (see ``chase.data.specs``); workers: ImageNet decoding
    processes. synthetic_like / synthetic_size: the real dataset synthetic data imitates, and
    its number of training examples. image_size: side of ImageNet crops and synthetic images.
    """

    name: str = "synthetic"
    dir: str | None = None
    batch_size: int = 128
    eval_batch_size: int | None = None
    subset: int | None = None
    test_subset: int | None = None
    val_split: float = 0.0
    augment: bool = True
    workers: int = 4
    synthetic_like: str = "cifar10"
    synthetic_size: int | None = None
    image_size: int | None = None

    def __post_init__(self) -> None:
        _check_dataset("data.name", self.name)
        if isinstance(self.dir, os.PathLike):
            object.__setattr__(self, "dir", os.fspath(self.dir))
        check(
            self.dir is None or (isinstance(self.dir, str) and self.dir != ""),
            "data.dir",
            self.dir,
            "a folder path or null",
        )
        check_int("data.batch_size", self.batch_size, 1)
        check_int("data.eval_batch_size", self.eval_batch_size, 1, optional=True)
        check_int("data.subset", self.subset, 1, optional=True)
        check_int("data.test_subset", self.test_subset, 1, optional=True)
        check(
            (is_integer(self.val_split) and self.val_split >= 0)
            or (isinstance(self.val_split, float) and 0 <= self.val_split < 1),
            "data.val_split",
            self.val_split,
            "a fraction in [0, 1) or a count of examples (an integer >= 0)",
        )
        check_bool("data.augment", self.augment)
        check_int("data.workers", self.workers, 0)
        _check_dataset("data.synthetic_like", self.synthetic_like, real=True)
        check_int("data.synthetic_size", self.synthetic_size, 1, optional=True)
        check_int("data.image_size", self.image_size, 1, optional=True)
        spec_and_size(self.canonical, self.synthetic_like, self.image_size)

    @property
    def canonical(self) -> str:
        """The dataset's canonical name (aliases resolved)."""
        return resolve_dataset(self.name, "data.name")
