"""Seeds, per-epoch permutations and rank shards: the pure functions behind the loader contract.

Every batch is a function of (seed, epoch, batch index, rank, world_size) alone, so a run resumed
mid-epoch sees the same batches as an uninterrupted one, and DDP ranks never overlap.

Sharding rules (the same as ``DistributedSampler`` with ``drop_last=True`` for training):

- train: the epoch permutation is cut to ``world_size * (n // world_size)`` entries (the random
  tail is dropped, never padded, so no example is seen twice in an epoch) and rank ``r`` takes
  positions ``r, r + world_size, ...``; every rank therefore gets the same count.
- eval: no shuffling and no padding. Rank ``r`` takes the contiguous block
  ``[r * n // world_size, (r + 1) * n // world_size)``, so every example is evaluated exactly
  once across ranks; counts differ by at most one, so the trainer sums correct/total counts
  over ranks (an all-reduce after the loop) rather than averaging per-rank accuracies.
"""

from __future__ import annotations

import hashlib
import struct

import torch

from chase.errors import ConfigError


def mix_seed(*parts: int | str) -> int:
    """Hash integers and tags into a 63-bit seed, stable across platforms and processes."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        data = part.encode() if isinstance(part, str) else struct.pack("<q", int(part))
        digest.update(struct.pack("<I", len(data)) + data)
    return int.from_bytes(digest.digest(), "little") >> 1


def generator(*parts: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``mix_seed(*parts)``; never the global RNG."""
    return torch.Generator().manual_seed(mix_seed(*parts))


def check_rank(rank: int, world_size: int) -> None:
    """Raise ``ConfigError`` unless ``0 <= rank < world_size``."""
    if world_size < 1:
        raise ConfigError(f"world_size: must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank: must be in [0, {world_size}), got {rank}")


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of ``n`` examples for ``epoch`` (int64), identical on every rank."""
    return torch.randperm(n, generator=generator(seed, "epoch-permutation", epoch))


def train_shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s strided share of ``order``; the tail beyond an even split is dropped."""
    usable = (len(order) // world_size) * world_size
    return order[rank:usable:world_size]


def eval_shard(n: int, rank: int, world_size: int) -> torch.Tensor:
    """Positions ``[rank * n // world_size, (rank + 1) * n // world_size)``: contiguous, no pad."""
    return torch.arange(rank * n // world_size, (rank + 1) * n // world_size)


def split_indices(n: int, holdout: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into (kept, held out) with a seeded permutation; both sorted."""
    order = torch.randperm(n, generator=generator(seed, "validation-split"))
    held, kept = order[:holdout], order[holdout:]
    return kept.sort().values, held.sort().values
