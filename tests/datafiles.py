"""Writers for tiny datasets in the exact on-disk formats the data readers accept."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_TRAIN_PER_BATCH = 12
CIFAR10_TEST = 20
IDX_TRAIN = 50
IDX_TEST = 16
JPEG_CLASSES = ("n01", "n02", "n03")
JPEG_TRAIN_PER_CLASS = 4
JPEG_VAL_PER_CLASS = 2


def write_cifar_pickle(path: Path, payload: dict) -> None:
    """Pickle like the CIFAR distribution: a dict with bytes keys, protocol 2."""
    with path.open("wb") as f:
        pickle.dump(payload, f, protocol=2)


def cifar_batch(rng: np.random.Generator, n: int, label_key: bytes, classes: int) -> dict:
    """One CIFAR batch dict: uint8 ``data`` (n, 3072), labels, names."""
    return {
        b"batch_label": b"fixture batch",
        label_key: [int(v) for v in rng.integers(0, classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX: 0, 0, type 0x08, ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """Write ``array`` as an IDX file, gzipped if ``gz``."""
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
