"""Reader for the IDX files of MNIST and Fashion-MNIST, gzipped or not.

IDX header: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, then one big-endian uint32 per dimension;
the values follow, big-endian, row-major. Gzip is recognised by its magic bytes, not the name.
"""

from __future__ import annotations

import gzip
import logging
import struct
from pathlib import Path

import numpy as np
import torch

from chase.data.arrays import TensorData
from chase.errors import DataError

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_DIR = "/usr/share/datasets/mnist"

_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_SUBFOLDERS = {
    "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw"),
    "mnist": ("mnist", "MNIST/raw"),
}
_HOW_TO_GET = {
    "fashion-mnist": (
        "Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download "
        "the four IDX .gz files from the Fashion-MNIST project page "
        "(https://github.com/zalandoresearch/fashion-mnist) and pass --data-dir."
    ),
    "mnist": "Download the four IDX files from the MNIST database page and pass --data-dir.",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain or gzipped) into a numpy array of its declared shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: IDX header declares {ndim} dimensions but is truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header declares shape {shape} ({expected} bytes of data) "
            f"but the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find_file(folder: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")  # some mirrors name files train-images.idx3-ubyte
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_idx_dir(data_dir: str | Path, dataset: str) -> Path:
    """The folder holding the four IDX files: ``data_dir`` itself or a known subfolder of it."""
    root = Path(data_dir).expanduser()
    for candidate in (root, *(root / sub for sub in _SUBFOLDERS[dataset])):
        if all(_find_file(candidate, stem) for stem in _STEMS.values()):
            return candidate
    names = ", ".join(f"{stem}[.gz]" for stem in _STEMS.values())
    state = "is not a folder" if not root.is_dir() else "lacks some of them"
    raise DataError(
        f"{dataset} files not found: {root} {state} (expected {names}). {_HOW_TO_GET[dataset]}"
    )


def _read_pair(folder: Path, images_stem: str, labels_stem: str) -> tuple[torch.Tensor, ...]:
    images_path, labels_path = _find_file(folder, images_stem), _find_file(folder, labels_stem)
    assert images_path is not None and labels_path is not None
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{images_path}: expected uint8 images (N, H, W), got {images.shape}")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise DataError(f"{labels_path}: expected {len(images)} uint8 labels, got {labels.shape}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: labels must be in [0, 9], found {labels.max()}")
    image_tensor = torch.from_numpy(images.copy()).unsqueeze(1)
    return image_tensor, torch.from_numpy(labels.astype(np.int64))


def read_idx_dataset(data_dir: str | Path | None, dataset: str) -> TensorData:
    """Read ``fashion-mnist`` or ``mnist`` (default folder: the Debian dataset location)."""
    if data_dir is None:
        data_dir = FASHION_MNIST_DIR if dataset == "fashion-mnist" else MNIST_DIR
    folder = find_idx_dir(data_dir, dataset)
    train_x, train_y = _read_pair(folder, _STEMS["train_images"], _STEMS["train_labels"])
    test_x, test_y = _read_pair(folder, _STEMS["test_images"], _STEMS["test_labels"])
    log.info("read %s from %s: %d train, %d test", dataset, folder, len(train_y), len(test_y))
    return TensorData(train_x, train_y, test_x, test_y)
