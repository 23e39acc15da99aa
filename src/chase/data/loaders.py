"""The loader contract and the in-memory loader for CIFAR, IDX and synthetic data.

Contract (the trainer relies on it for exact resume and DDP): ``len(loader)`` is the number of
batches per epoch on this rank, and ``loader.epoch(e, start=k)`` yields batches ``k, k+1, ...``
of epoch ``e`` as (float32 images, int64 labels). Batches are a pure function of (seed, epoch,
batch index, rank, world_size); see ``sharding`` for how ranks split an epoch. Train loaders
shuffle per epoch and drop the last incomplete batch; eval loaders keep order and every example.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import torch

from chase.data.augment import normalize, random_crop_flip
from chase.data.sharding import check_rank, epoch_permutation, eval_shard, generator, train_shard
from chase.errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]


@runtime_checkable
class Loader(Protocol):
    """What every loader provides; see the module docstring for the guarantees."""

    batch_size: int
    num_examples: int

    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]: ...


def check_start(start: int, length: int) -> None:
    """Raise ``ConfigError`` unless ``0 <= start <= length``."""
    if not 0 <= start <= length:
        raise ConfigError(f"start: batch index must be in [0, {length}], got {start}")


def rank_positions(
    n: int, *, train: bool, batch_size: int, seed: int, epoch: int, rank: int, world_size: int
) -> torch.Tensor:
    """Positions (into a split of ``n`` examples) this rank visits in ``epoch``, in order.

    Train: seeded shuffle, strided rank shard, cut to whole batches. Eval: contiguous shard.
    """
    if not train:
        return eval_shard(n, rank, world_size)
    shard = train_shard(epoch_permutation(n, seed, epoch), rank, world_size)
    return shard[: len(shard) // batch_size * batch_size]


class ShardedLoader:
    """What both loaders share: the batch order of each epoch on this rank, its length, and
    iteration for eval. Subclasses turn the order into batches in ``epoch``."""

    def __init__(
        self,
        indices: torch.Tensor,
        *,
        batch_size: int,
        train: bool,
        seed: int,
        rank: int,
        world_size: int,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
        check_rank(rank, world_size)
        self.indices, self.batch_size, self.train = indices, batch_size, train
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.num_examples = len(self.positions(0))

    def positions(self, epoch: int) -> torch.Tensor:
        """Example indices this rank visits in ``epoch``, in batch order."""
        pos = rank_positions(
            len(self.indices),
            train=self.train,
            batch_size=self.batch_size,
            seed=self.seed,
            epoch=epoch,
            rank=self.rank,
            world_size=self.world_size,
        )
        return self.indices[pos]

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Batch]:
        """Eval convenience: ``for x, y in loader``; train loaders need an explicit epoch."""
        if self.train:
            raise TypeError("iterate a train loader with loader.epoch(epoch)")
        return self.epoch(0)


class TensorLoader(ShardedLoader):
    """Batches from uint8 images held in memory, augmented and normalised per whole batch.

    ``indices`` selects the examples of this split (e.g. a subset or a validation carve-out)
    from ``images``/``labels`` without copying them.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        indices: torch.Tensor,
        *,
        batch_size: int,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int = 0,
        flip: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(
            indices, batch_size=batch_size, train=train, seed=seed, rank=rank, world_size=world_size
        )
        self.images, self.labels = images, labels
        self.mean, self.std = tuple(mean), tuple(std)
        self.crop_padding, self.flip = crop_padding, flip

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """Yield batches ``start, start+1, ...`` of ``epoch`` as (float images, labels)."""
        check_start(start, len(self))
        order = self.positions(epoch)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self._make_batch(idx, epoch, b)

    def _make_batch(self, idx: torch.Tensor, epoch: int, batch: int) -> Batch:
        images = self.images[idx]
        if self.train and (self.crop_padding > 0 or self.flip):
            gen = generator(self.seed, "augment", epoch, batch, self.rank, self.world_size)
            images = random_crop_flip(images, self.crop_padding, self.flip, gen)
        return normalize(images, self.mean, self.std), self.labels[idx]
