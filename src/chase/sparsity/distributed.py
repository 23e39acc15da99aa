"""Keeping masks identical on every rank (DESIGN §8).

Every rank computes the same masks from the same seeded generator and the same all-reduced
gradients; after every topology or channel event rank 0 broadcasts them anyway, so no drift
is possible, and :func:`mismatched` compares checksums across ranks for ``engine.check()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


def _comm_device(tensors: Sequence[torch.Tensor]) -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return tensors[0].device if tensors else torch.device("cpu")


def broadcast_bool(tensors: Sequence[torch.Tensor], src: int = 0) -> None:
    """Overwrite bool tensors on every rank with rank ``src``'s values, in place."""
    if world_size() == 1 or not tensors:
        return
    device = _comm_device(tensors)
    flat = torch.cat([t.reshape(-1).to(device, torch.uint8) for t in tensors])
    dist.broadcast(flat, src=src)
    start = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[start : start + n].view(t.shape).to(t.device, torch.bool))
        start += n


def broadcast_tensors(tensors: Sequence[torch.Tensor], src: int = 0) -> None:
    """Overwrite floating tensors (e.g. parameters) on every rank with rank ``src``'s values."""
    if world_size() == 1:
        return
    device = _comm_device(tensors)
    with torch.no_grad():
        for t in tensors:
            buf = t.detach().to(device)
            dist.broadcast(buf, src=src)
            t.detach().copy_(buf)


def checksum(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Order-sensitive int64 fingerprint of bool tensors (count and weighted index sums)."""
    parts = []
    for t in tensors:
        idx = t.reshape(-1).nonzero().squeeze(1).to(torch.int64).cpu()
        parts.append(
            torch.stack(
                [
                    idx.numel() * torch.ones((), dtype=torch.int64),
                    idx.sum(),
                    ((idx * 2654435761) % 1000003).sum(),
                ]
            )
        )
    return torch.stack(parts) if parts else torch.zeros(0, 3, dtype=torch.int64)


def mismatched(tensors: Sequence[torch.Tensor]) -> bool:
    """True when the tensors differ between ranks (always False without distributed)."""
    if world_size() == 1:
        return False
    local = checksum(tensors)
    device = _comm_device(tensors)
    high = local.to(device)
    low = high.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return not torch.equal(high, low)
