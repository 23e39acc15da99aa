"""The loader contract: lengths, determinism, resume, rank sharding, subset and val split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chase.data import DataConfig, Loader, build_data, read_cifar
from datafiles import CIFAR10_TEST, CIFAR10_TRAIN_PER_BATCH, IDX_TRAIN

N_CIFAR = 5 * CIFAR10_TRAIN_PER_BATCH


def _batches(loader: Loader, epoch: int, start: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return list(loader.epoch(epoch, start))


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b)
    )


def test_lengths_and_shapes(cifar10_root: Path) -> None:
    bundle = build_data(
        DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=7, eval_batch_size=6)
    )
    assert isinstance(bundle.train, Loader) and isinstance(bundle.test, Loader)
    assert len(bundle.train) == N_CIFAR // 7  # last incomplete batch dropped
    assert bundle.train.num_examples == N_CIFAR // 7 * 7
    batches = _batches(bundle.train, 0)
    assert len(batches) == len(bundle.train)
    assert all(x.shape == (7, 3, 32, 32) and y.shape == (7,) for x, y in batches)
    test = _batches(bundle.test, 0)
    assert len(test) == len(bundle.test) == -(-CIFAR10_TEST // 6)
    assert sum(len(y) for _, y in test) == CIFAR10_TEST
    assert bundle.val is None


def test_eval_batches_are_normalised_in_order(cifar10_root: Path) -> None:
    bundle = build_data(
        DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=4, eval_batch_size=8)
    )
    data = read_cifar(cifar10_root, 10)
    x = torch.cat([b[0] for b in _batches(bundle.test, 0)])
    y = torch.cat([b[1] for b in _batches(bundle.test, 0)])
    mean = torch.tensor(bundle.mean).view(1, 3, 1, 1)
    std = torch.tensor(bundle.std).view(1, 3, 1, 1)
    assert torch.allclose(x * std + mean, data.test_images.float() / 255, atol=1e-5)
    assert torch.equal(y, data.test_labels)
    assert x.min() >= (-mean / std).min() - 1e-5 and x.max() <= ((1 - mean) / std).max() + 1e-5


def test_train_without_augment_is_a_shuffle(cifar10_root: Path) -> None:
    bundle = build_data(
        DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=5, augment=False), seed=3
    )
    data = read_cifar(cifar10_root, 10)
    order = bundle.train.positions(2)
    x, y = next(bundle.train.epoch(2))
    mean = torch.tensor(bundle.mean).view(1, 3, 1, 1)
    std = torch.tensor(bundle.std).view(1, 3, 1, 1)
    assert torch.allclose(x * std + mean, data.train_images[order[:5]].float() / 255, atol=1e-5)
    assert torch.equal(y, data.train_labels[order[:5]])
    assert sorted(order.tolist()) != order.tolist()


def test_deterministic_and_epoch_dependent(cifar10_root: Path) -> None:
    a = build_data(DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=8), seed=5)
    b = build_data(DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=8), seed=5)
    c = build_data(DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=8), seed=6)
    assert _same(_batches(a.train, 1), _batches(b.train, 1))
    assert not _same(_batches(a.train, 1), _batches(a.train, 2))
    assert not _same(_batches(a.train, 1), _batches(c.train, 1))


@pytest.mark.parametrize("start", [0, 1, 3, 7])
def test_resume_mid_epoch_matches_tail(cifar10_root: Path, start: int) -> None:
    bundle = build_data(DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=8), seed=1)
    full = _batches(bundle.train, 4)
    assert _same(_batches(bundle.train, 4, start), full[start:])


def test_start_out_of_range(cifar10_root: Path) -> None:
    bundle = build_data(DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=8))
    with pytest.raises(ValueError, match="start"):
        next(bundle.train.epoch(0, start=len(bundle.train) + 1))


@pytest.mark.parametrize("world_size", [2, 3])
def test_train_ranks_partition_the_epoch(cifar10_root: Path, world_size: int) -> None:
    ranks = [
        build_data(
            DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=4 * world_size),
            rank=r,
            world_size=world_size,
        )
        for r in range(world_size)
    ]
    lengths = {len(b.train) for b in ranks}
    assert lengths == {N_CIFAR // world_size // 4}
    seen = [set(b.train.positions(3).tolist()) for b in ranks]
    for i in range(world_size):
        for j in range(i + 1, world_size):
            assert not seen[i] & seen[j]
    assert sum(len(s) for s in seen) == world_size * len(ranks[0].train) * 4
    # Ranks draw from one permutation: rank r takes positions r, r + world_size, ...
    single = build_data(DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=4))
    order = single.train.positions(3)
    assert ranks[1].train.positions(3).tolist() == order[1::world_size][: len(seen[1])].tolist()


def test_eval_ranks_cover_every_example_once(cifar10_root: Path) -> None:
    labels = []
    counts = []
    for rank in range(3):
        bundle = build_data(
            DataConfig(name="cifar10", dir=str(cifar10_root), batch_size=4 * 3),
            rank=rank,
            world_size=3,
        )
        ys = [y for _, y in bundle.test]
        counts.append(bundle.test.num_examples)
        labels.append(torch.cat(ys))
    assert sum(counts) == CIFAR10_TEST and max(counts) - min(counts) <= 1
    assert torch.equal(torch.cat(labels), read_cifar(cifar10_root, 10).test_labels)


def test_subset_and_val_split(idx_dir: Path) -> None:
    def build(seed: int, val_split: float | int) -> object:
        return build_data(
            DataConfig(
                name="fashion_mnist", dir=str(idx_dir), batch_size=4, subset=40, val_split=val_split
            ),
            seed=seed,
        )

    bundle = build(0, 0.25)
    assert bundle.val is not None
    train = set(bundle.train.indices.tolist())
    val = set(bundle.val.indices.tolist())
    assert len(val) == 10 and len(train) == 30
    assert not train & val and train | val == set(range(40))
    assert bundle.val.num_examples == 10 and len(bundle.val) == 3
    again = build(0, 10)
    assert again.val.indices.tolist() == bundle.val.indices.tolist()
    assert build(1, 10).val.indices.tolist() != bundle.val.indices.tolist()
    assert bundle.test.num_examples == 16  # the test set is untouched by subset and split
    full = build_data(DataConfig(name="fmnist", dir=str(idx_dir), batch_size=4))
    assert full.train.num_examples == IDX_TRAIN // 4 * 4


def test_val_loader_is_unshuffled_and_unaugmented(idx_dir: Path) -> None:
    bundle = build_data(
        DataConfig(name="fmnist", dir=str(idx_dir), batch_size=4, val_split=8), seed=2
    )
    assert bundle.val is not None
    first = _batches(bundle.val, 0)
    assert _same(first, _batches(bundle.val, 5))
    assert bundle.val.indices.tolist() == sorted(bundle.val.indices.tolist())


def test_train_loader_needs_an_explicit_epoch(idx_dir: Path) -> None:
    bundle = build_data(DataConfig(name="fmnist", dir=str(idx_dir), batch_size=4))
    with pytest.raises(TypeError, match="epoch"):
        iter(bundle.train)
