"""IDX reader (MNIST, Fashion-MNIST): header parsing, gzip, validation, real files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from chase.data import DataConfig, build_data, read_idx, read_idx_dataset
from chase.errors import DataError
from datafiles import IDX_TEST, IDX_TRAIN, idx_bytes, write_idx

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = tmp_path / "a-idx3-ubyte"
    write_idx(path, array, gz)
    assert np.array_equal(read_idx(path), array)


def test_read_idx_big_endian_int32(tmp_path: Path) -> None:
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + values.tobytes())
    assert read_idx(path).tolist() == [1, -2, 70000]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x00\x08\x01" + (2).to_bytes(4, "big") + b"ab", "bad magic"),
        (b"\x00\x00\x42\x01" + (2).to_bytes(4, "big") + b"ab", "bad magic"),
        (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big"), "truncated"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"ab", "holds 2"),
        (b"\x00", "bad magic"),
    ],
)
def test_read_idx_rejects_bad_headers(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_dataset_from_folder_or_parent(idx_dir: Path) -> None:
    data = read_idx_dataset(idx_dir, "fashion-mnist")
    assert data.train_images.shape == (IDX_TRAIN, 1, 28, 28)
    assert data.test_images.shape == (IDX_TEST, 1, 28, 28)
    assert data.train_labels.tolist() == [i % 10 for i in range(IDX_TRAIN)]
    raw = read_idx(idx_dir / "t10k-images-idx3-ubyte")
    assert torch.equal(data.test_images[:, 0], torch.from_numpy(raw.copy()))
    from_parent = read_idx_dataset(idx_dir.parent, "fashion-mnist")
    assert torch.equal(from_parent.train_images, data.train_images)


def test_mismatched_counts(idx_dir: Path) -> None:
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8), gz=False)
    with pytest.raises(DataError, match=f"expected {IDX_TEST} uint8 labels"):
        read_idx_dataset(idx_dir, "fashion-mnist")


def test_images_must_be_3d(idx_dir: Path) -> None:
    (idx_dir / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((4, 5), np.uint8)))
    with pytest.raises(DataError, match=r"\(N, H, W\)"):
        read_idx_dataset(idx_dir, "fashion-mnist")


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        build_data(DataConfig(name="fashion-mnist", dir=str(tmp_path / "absent"), batch_size=4))
    message = str(info.value)
    assert str(tmp_path / "absent") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte[.gz]" in message
    assert "--data-dir" in message


def test_partial_folder_is_reported(idx_dir: Path) -> None:
    (idx_dir / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks some of them"):
        read_idx_dataset(idx_dir, "fashion-mnist")


@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist() -> None:
    bundle = build_data(DataConfig(name="fmnist", dir=None, batch_size=1000, augment=False))
    assert bundle.train.num_examples == 60000 and bundle.test.num_examples == 10000
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (10, 1, (28, 28))
    data = read_idx_dataset(None, "fashion-mnist")
    assert data.train_images.shape == (60000, 1, 28, 28)
    assert data.train_labels.min() == 0 and data.train_labels.max() == 9
    assert torch.bincount(data.test_labels).tolist() == [1000] * 10
    x, _ = next(iter(bundle.test))
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1
