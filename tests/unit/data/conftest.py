"""Fixtures: tiny CIFAR, IDX and JPEG-tree datasets written in their exact on-disk formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datafiles import (
    CIFAR10_TEST,
    CIFAR10_TRAIN_PER_BATCH,
    IDX_TEST,
    IDX_TRAIN,
    JPEG_CLASSES,
    JPEG_TRAIN_PER_CLASS,
    JPEG_VAL_PER_CLASS,
    cifar_batch,
    write_cifar_pickle,
    write_idx,
)


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    """``tmp_path/cifar-10-batches-py`` with five train batches, a test batch and meta."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(10)
    for i in range(1, 6):
        batch = cifar_batch(rng, CIFAR10_TRAIN_PER_BATCH, b"labels", 10)
        write_cifar_pickle(folder / f"data_batch_{i}", batch)
    write_cifar_pickle(folder / "test_batch", cifar_batch(rng, CIFAR10_TEST, b"labels", 10))
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog")]
    names += [n.encode() for n in ("frog", "horse", "ship", "truck")]
    meta = {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072}
    write_cifar_pickle(folder / "batches.meta", meta)
    return tmp_path


@pytest.fixture
def cifar100_root(tmp_path: Path) -> Path:
    """``tmp_path/cifar-100-python`` with train, test and meta files."""
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(100)
    for name, n in (("train", 40), ("test", 10)):
        batch = cifar_batch(rng, n, b"fine_labels", 100)
        batch[b"coarse_labels"] = [v // 5 for v in batch[b"fine_labels"]]
        write_cifar_pickle(folder / name, batch)
    meta = {b"fine_label_names": [f"c{i}".encode() for i in range(100)]}
    meta[b"coarse_label_names"] = [f"s{i}".encode() for i in range(20)]
    write_cifar_pickle(folder / "meta", meta)
    return tmp_path


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """A Fashion-MNIST-style folder: train files gzipped, test files plain."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(28)
    for prefix, n, gz in (("train", IDX_TRAIN, True), ("t10k", IDX_TEST, False)):
        suffix = ".gz" if gz else ""
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
    return folder


@pytest.fixture(scope="session")
def jpeg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG`` with images of varied sizes."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(224)
    sizes = [(48, 40), (40, 56), (64, 64), (37, 45)]
    for split, per_class in (("train", JPEG_TRAIN_PER_CLASS), ("val", JPEG_VAL_PER_CLASS)):
        for label, wnid in enumerate(JPEG_CLASSES):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                w, h = sizes[i % len(sizes)]
                base = np.zeros((h, w, 3), dtype=np.int16) + 80 * label
                noisy = base + rng.integers(0, 60, (h, w, 3))
                image = Image.fromarray(noisy.clip(0, 255).astype(np.uint8))
                image.save(folder / f"{wnid}_{i}.JPEG", quality=90)
    (root / "train" / "n01" / "notes.txt").write_text("not an image")
    return root
