"""Dataset readers and fast loaders: ``build_data(DataConfig(name=..., batch_size=...))``.

Every loader follows one contract (see ``chase.data.loaders``): ``len(loader)`` batches per
epoch on this rank and ``loader.epoch(epoch, start=0)``, a pure function of (seed, epoch, batch
index, rank, world_size), which is what exact resume and DDP need.
"""

from __future__ import annotations

from chase.data.build import DataBundle, build_data
from chase.data.cifar import read_cifar
from chase.data.config import DataConfig
from chase.data.idx import read_idx, read_idx_dataset
from chase.data.loaders import Loader, TensorLoader
from chase.data.specs import DatasetSpec, known_datasets, resolve_dataset

__all__ = [
    "DataBundle",
    "DataConfig",
    "DatasetSpec",
    "Loader",
    "TensorLoader",
    "build_data",
    "known_datasets",
    "read_cifar",
    "read_idx",
    "read_idx_dataset",
    "resolve_dataset",
]
