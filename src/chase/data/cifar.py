"""Reader for the CIFAR-10 and CIFAR-100 python-pickle folders.

Layout read (the files distributed by the CIFAR authors):
``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` with keys ``data``
(uint8 (N, 3072): 1024 red, 1024 green, 1024 blue values, each plane row-major) and ``labels``;
``cifar-100-python/{train, test, meta}`` with ``data`` and ``fine_labels``.
The pickles are opened with an unpickler that only allows numpy array reconstruction, so a
tampered file cannot run code.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chase.data.arrays import TensorData
from chase.errors import DataError

log = logging.getLogger(__name__)

_LAYOUTS: dict[int, dict[str, Any]] = {
    10: {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": "labels",
        "names_key": "label_names",
    },
    100: {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": "fine_labels",
        "names_key": "fine_label_names",
    },
}
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),  # Python 3 protocol-2 pickles store bytes through it
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy globals an array pickle needs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict[str, Any]:
    """Load one CIFAR pickle; keys are returned as ``str`` whatever Python wrote them."""
    try:
        with path.open("rb") as f:
            raw = _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: not a readable CIFAR python pickle ({exc})") from exc
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(raw).__name__}")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in raw.items()}


def find_cifar_dir(data_dir: str | Path, num_classes: int) -> Path:
    """The CIFAR folder: ``data_dir`` itself or its ``cifar-10-batches-py``/``cifar-100-python``."""
    layout = _LAYOUTS[num_classes]
    root = Path(data_dir).expanduser()
    for candidate in (root / layout["folder"], root):
        if candidate.is_dir() and (candidate / layout["test"][0]).exists():
            return candidate
    expected = ", ".join(layout["train"] + layout["test"])
    raise DataError(
        f"CIFAR-{num_classes} not found in {root}: expected a {layout['folder']} folder "
        f"(or that folder itself) containing {expected}."
    )


def _read_split(folder: Path, files: list[str], label_key: str) -> tuple[torch.Tensor, ...]:
    images, labels = [], []
    for name in files:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: missing CIFAR file (expected {', '.join(files)})")
        batch = _load_pickle(path)
        if "data" not in batch or label_key not in batch:
            raise DataError(
                f"{path}: expected keys 'data' and {label_key!r}, found {sorted(batch)}"
            )
        data = np.asarray(batch["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(
                f"{path}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}"
            )
        label = np.asarray(batch[label_key], dtype=np.int64)
        if label.shape != (data.shape[0],):
            raise DataError(f"{path}: {len(label)} labels for {data.shape[0]} images")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.from_numpy(label))
    return torch.cat(images), torch.cat(labels)


def _class_names(folder: Path, layout: dict[str, Any]) -> tuple[str, ...]:
    path = folder / layout["meta"]
    if not path.is_file():
        return ()
    names = _load_pickle(path).get(layout["names_key"], [])
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def read_cifar(data_dir: str | Path, num_classes: int) -> TensorData:
    """Read CIFAR-10 (``num_classes=10``) or CIFAR-100 (``100``) into uint8 tensors."""
    if num_classes not in _LAYOUTS:
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes}")
    layout = _LAYOUTS[num_classes]
    folder = find_cifar_dir(data_dir, num_classes)
    train_x, train_y = _read_split(folder, layout["train"], layout["label_key"])
    test_x, test_y = _read_split(folder, layout["test"], layout["label_key"])
    for path_hint, labels in (("train", train_y), ("test", test_y)):
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"{folder}: {path_hint} labels outside [0, {num_classes})")
    log.info(
        "read CIFAR-%d from %s: %d train, %d test", num_classes, folder, len(train_y), len(test_y)
    )
    return TensorData(train_x, train_y, test_x, test_y, _class_names(folder, layout))
