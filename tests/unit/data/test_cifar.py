"""CIFAR-10/100 pickle reader: exact byte layout, labels, folder lookup and errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from chase.data import DataConfig, build_data, read_cifar
from chase.errors import DataError
from datafiles import CIFAR10_TEST, CIFAR10_TRAIN_PER_BATCH, write_cifar_pickle


def _load(path: Path) -> dict:
    with path.open("rb") as f:
        return pickle.load(f, encoding="bytes")


def test_cifar10_layout_and_labels(cifar10_root: Path) -> None:
    data = read_cifar(cifar10_root, 10)
    assert data.train_images.shape == (5 * CIFAR10_TRAIN_PER_BATCH, 3, 32, 32)
    assert data.test_images.shape == (CIFAR10_TEST, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    folder = cifar10_root / "cifar-10-batches-py"
    second = _load(folder / "data_batch_2")
    row = second[b"data"][3]  # image 3 of batch 2: planes R, G, B, each row-major 32x32
    image = data.train_images[CIFAR10_TRAIN_PER_BATCH + 3]
    for c, h, w in [(0, 0, 0), (0, 0, 31), (1, 5, 7), (2, 31, 31), (2, 1, 0)]:
        assert image[c, h, w].item() == row[c * 1024 + h * 32 + w]
    assert data.train_labels[CIFAR10_TRAIN_PER_BATCH + 3].item() == second[b"labels"][3]
    test = _load(folder / "test_batch")
    assert data.test_labels.tolist() == test[b"labels"]
    assert data.classes[0] == "airplane" and len(data.classes) == 10


def test_accepts_folder_itself_or_parent(cifar10_root: Path) -> None:
    a = read_cifar(cifar10_root, 10)
    b = read_cifar(cifar10_root / "cifar-10-batches-py", 10)
    assert torch.equal(a.train_images, b.train_images)


def test_cifar100_fine_labels(cifar100_root: Path) -> None:
    data = read_cifar(cifar100_root / "cifar-100-python", 100)
    raw = _load(cifar100_root / "cifar-100-python" / "train")
    assert data.train_labels.tolist() == raw[b"fine_labels"]
    assert data.train_images.shape == (40, 3, 32, 32) and len(data.classes) == 100
    bundle = build_data(
        DataConfig(name="cifar100", dir=str(cifar100_root), batch_size=8, augment=False)
    )
    assert bundle.num_classes == 100 and bundle.image_size == (32, 32)


def test_str_keys_are_accepted_too(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [1, 2]}
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f)
    assert read_cifar(folder, 10).train_labels.tolist() == [1, 2] * 5


def test_missing_folder_names_path_and_expectation(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-py") as info:
        read_cifar(tmp_path / "nowhere", 10)
    assert str(tmp_path / "nowhere") in str(info.value)
    with pytest.raises(DataError, match="--data-dir"):
        build_data(DataConfig(name="cifar10", dir=None, batch_size=4))


def test_missing_batch_file(cifar10_root: Path) -> None:
    (cifar10_root / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4"):
        read_cifar(cifar10_root, 10)


def test_wrong_format(cifar10_root: Path) -> None:
    path = cifar10_root / "cifar-10-batches-py" / "data_batch_1"
    write_cifar_pickle(path, {b"data": np.zeros((2, 100), dtype=np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataError, match=r"uint8 \(N, 3072\)"):
        read_cifar(cifar10_root, 10)
    write_cifar_pickle(path, {b"images": np.zeros((2, 3072), dtype=np.uint8)})
    with pytest.raises(DataError, match="expected keys"):
        read_cifar(cifar10_root, 10)
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="not a readable CIFAR"):
        read_cifar(cifar10_root, 10)


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_pickle_globals_are_restricted(cifar10_root: Path) -> None:
    path = cifar10_root / "cifar-10-batches-py" / "data_batch_1"
    with path.open("wb") as f:
        pickle.dump({b"data": _Exploit(), b"labels": []}, f, protocol=2)
    with pytest.raises(DataError, match="is not allowed"):
        read_cifar(cifar10_root, 10)
