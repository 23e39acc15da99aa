"""What the engine does to a model, emulated independently of ``chase.structure.slim``.

``masked_copy`` zeroes removed channels the way channel masks do (producer rows, biases and
norm affine parameters, consumer input columns); ``predicted_params`` counts the parameters a
slim model must have from the live channels alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from chase.sparsity.groups import ChannelGroup


def warm_bn(model: nn.Module, shape: Sequence[int], steps: int = 3, seed: int = 0) -> None:
    """Give BatchNorm layers non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
        model.train()
        for _ in range(steps):
            model(torch.randn(*shape, generator=gen) * 2 + 0.5)
    model.eval()


def random_keep(
    groups: Sequence[ChannelGroup], seed: int = 0, frac: float = 0.4
) -> dict[str, torch.Tensor]:
    """Remove about ``frac`` of the channels of every prunable group, keeping at least one."""
    gen = torch.Generator().manual_seed(seed)
    keep = {}
    for g in groups:
        if not g.prunable or g.shrink_only:  # exact only for a model that shrinks (LayerNorm)
            continue
        vec = torch.rand(g.size, generator=gen) >= frac
        vec[torch.randint(g.size, (1,), generator=gen)] = True
        keep[g.name] = vec
    return keep


def masked_copy(
    model: nn.Module, groups: Sequence[ChannelGroup], keep: dict[str, torch.Tensor]
) -> nn.Module:
    """A copy with removed channels zeroed (buffers are left alone, as the engine does)."""
    masked = copy.deepcopy(model)
    state = masked.state_dict(keep_vars=True)
    with torch.no_grad():
        for g in groups:
            if g.name not in keep:
                continue
            gone = ~keep[g.name]
            for m in g.members:
                if m.role == "buffer":
                    continue
                positions = m.index[gone].reshape(-1)
                state[m.tensor].index_fill_(m.axis, positions, 0.0)
    return masked


def removed_positions(
    groups: Sequence[ChannelGroup], keep: dict[str, torch.Tensor]
) -> dict[tuple[str, int], torch.Tensor]:
    """(tensor, axis) → positions removed from it."""
    out: dict[tuple[str, int], list[torch.Tensor]] = {}
    for g in groups:
        if g.name in keep:
            for m in g.members:
                out.setdefault((m.tensor, m.axis), []).append(m.index[~keep[g.name]].reshape(-1))
    return {k: torch.cat(v) for k, v in out.items()}


def predicted_params(
    model: nn.Module, groups: Sequence[ChannelGroup], keep: dict[str, torch.Tensor]
) -> int:
    shapes = {n: list(p.shape) for n, p in model.named_parameters()}
    for (tensor, axis), positions in removed_positions(groups, keep).items():
        if tensor in shapes:
            shapes[tensor][axis] -= positions.numel()
    return sum(math.prod(s) for s in shapes.values())


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
