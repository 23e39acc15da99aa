"""Properties of the pure sharding functions behind the loader contract."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chase.data.loaders import rank_positions
from chase.data.sharding import mix_seed, split_indices


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    world_size=st.integers(1, 5),
    batch_size=st.integers(1, 40),
    seed=st.integers(0, 2**40),
    epoch=st.integers(0, 1000),
)
def test_train_shards_are_disjoint_equal_whole_batches(
    n: int, world_size: int, batch_size: int, seed: int, epoch: int
) -> None:
    shards = [
        rank_positions(
            n,
            train=True,
            batch_size=batch_size,
            seed=seed,
            epoch=epoch,
            rank=r,
            world_size=world_size,
        )
        for r in range(world_size)
    ]
    sizes = {len(s) for s in shards}
    assert sizes == {(n // world_size) // batch_size * batch_size}
    union = torch.cat(shards)
    assert len(set(union.tolist())) == len(union)
    assert all(0 <= i < n for i in union.tolist())


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), world_size=st.integers(1, 7))
def test_eval_shards_partition_in_order(n: int, world_size: int) -> None:
    shards = [
        rank_positions(n, train=False, batch_size=1, seed=0, epoch=0, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    assert torch.cat(shards).tolist() == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 200), seed=st.integers(0, 100), data=st.data())
def test_split_indices_partition(n: int, seed: int, data: st.DataObject) -> None:
    holdout = data.draw(st.integers(0, n - 1))
    kept, held = split_indices(n, holdout, seed)
    assert len(held) == holdout
    assert sorted(kept.tolist() + held.tolist()) == list(range(n))


def test_mix_seed_is_stable_and_separates_parts() -> None:
    assert mix_seed(1, "a", 2) == mix_seed(1, "a", 2)
    assert mix_seed(1, "a", 2) != mix_seed(1, "a", 3)
    assert mix_seed(12, 3) != mix_seed(1, 23)
    # Pinned: changing the derivation would silently change every saved run's batches.
    assert mix_seed(7, "epoch-permutation", 3) == 8703979499215601757
