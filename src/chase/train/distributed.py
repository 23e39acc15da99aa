"""Multi-process training under ``torchrun``: process group, devices, reductions."""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from chase.errors import ConfigError
from chase.train.config import check_device


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 without ``torchrun``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, key: str = "device", local_rank: int = 0) -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` (this process's local rank)
    or ``cuda:N`` as a device that exists here; else ``ConfigError`` naming ``key`` (a config
    key, or a flag such as ``--device``)."""
    check_device(name, key)
    shown = f"{key} {name!r}" if key.startswith("--") else f"{key} = {name!r}"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{shown} is not allowed: CUDA is not available here")
    dev = torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
    count = torch.cuda.device_count() if dev.type == "cuda" else 0
    if dev.type == "cuda" and dev.index is not None and dev.index >= count:
        raise ConfigError(
            f"{shown} is not allowed: this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}"
        )
    return dev


def setup(device: str) -> tuple[Dist, torch.device]:
    """Join the process group ``torchrun`` describes (if any) and pick this rank's device
    (``device`` as in ``resolve_device``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, "device", local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local), dev


def teardown(together: bool = True) -> None:
    """Leave the process group. Objects that still hold it (a DDP wrapper caught in a reference
    cycle) are collected first: freeing them after the group is gone aborts the process. With
    ``together`` the ranks also wait for each other, so none leaves while another still talks
    to it; an error path passes False, as the other ranks may be gone already."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        if together:
            with contextlib.suppress(RuntimeError):  # a rank that failed is gone: leave anyway
                dist.barrier()
        dist.destroy_process_group()


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity without distributed)."""
    if dist.is_available() and dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values)
    return values


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
