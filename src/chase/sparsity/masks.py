"""Weight masks and channel keep-vectors, and their application to weights and optimizer state.

``MaskSet`` owns one ``bool`` mask per maskable weight (1 byte per weight) and, once channels
are removed, a keep-vector per (tensor, axis) touched by a removed channel. Applying it zeroes
masked weights, removed biases and norm parameters, and every optimizer-state tensor shaped
like its parameter (SGD momentum, Adam's moments, ...), with one fused call per kind.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch
from torch import nn

Layout = dict[str, dict[int, torch.Tensor]]
#: Tensors at least this large are zeroed by ``masked_fill_`` instead of the fused multiply.
FILL_FROM = 1 << 20


class MaskSet(Mapping[str, torch.Tensor]):
    """Masks keyed by parameter FQN (a read-only mapping), applied after every optimizer step.

    ``params`` holds every parameter of the model by FQN (channel removal also zeroes biases
    and norm parameters); only the maskable weights have a mask. ``original_shapes`` are the
    parameters' shapes when the set was made; after a shrink (``shrunk``) the parameters are
    smaller and ``layout`` maps each cut tensor axis to the original positions still present,
    so callers that speak of original channel indices (the channel pruner) can find them.
    """

    def __init__(self, params: Mapping[str, nn.Parameter], masks: Mapping[str, torch.Tensor]):
        self.params = dict(params)
        self.original_shapes = {n: tuple(p.shape) for n, p in self.params.items()}
        self.names = list(masks)
        self._masks: dict[str, torch.Tensor] = {}
        for name in self.names:
            self.set(name, masks[name])
        self._axis_keep: dict[str, dict[int, torch.Tensor]] = {}
        self._param_keep: dict[str, torch.Tensor] = {}
        self.layout: Layout = {}

    def set(self, name: str, mask: torch.Tensor) -> None:
        param = self.params[name]
        if mask.shape != param.shape or mask.dtype != torch.bool:
            raise ValueError(f"mask for {name} must be bool of shape {tuple(param.shape)}")
        self._masks[name] = mask.to(param.device)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    # -- coordinates ------------------------------------------------------------------------
    def to_current(self, name: str, axis: int, positions: torch.Tensor) -> torch.Tensor:
        """Original positions along ``axis`` of ``name`` in the current (shrunk) tensor, with
        -1 for positions a shrink removed (any shape; int64)."""
        kept = self.layout.get(name, {}).get(axis)
        if kept is None:
            return positions
        if kept.numel() == 0:
            return torch.full_like(positions, -1)
        current = torch.searchsorted(kept, positions)
        present = kept[current.clamp_max(kept.numel() - 1)] == positions
        return torch.where(present, current, -1)

    def shrunk(self, masks: Mapping[str, torch.Tensor], layout: Layout) -> None:
        """Take the masks cut to the shrunk parameters and the new ``layout``; the removed
        channels are physically gone, so no channel restriction is left."""
        self.clear_channels()
        self.layout = {t: {a: i.cpu() for a, i in axes.items()} for t, axes in layout.items()}
        for name in self.names:
            self.set(name, masks[name])

    # -- channels --------------------------------------------------------------------------
    def region(self, name: str) -> torch.Tensor | None:
        """Bool tensor broadcastable to ``name``'s shape: positions inside live channels."""
        keeps = self._axis_keep.get(name)
        if not keeps:
            return None
        ndim = self.params[name].dim()
        region: torch.Tensor | None = None
        for axis, keep in keeps.items():
            shape = [1] * ndim
            shape[axis] = keep.numel()
            part = keep.view(shape)
            region = part if region is None else region & part
        return region

    def clear_channels(self) -> None:
        """Forget every channel restriction (the weight masks stay as they are); the channel
        pruner re-applies its live state after this (``ChannelPruner.resync``)."""
        self._axis_keep.clear()
        self._param_keep.clear()

    def restrict(self, name: str, axis: int, keep: torch.Tensor) -> None:
        """AND a keep-vector into ``name``'s ``axis``; removed positions never come back."""
        param = self.params[name]
        keeps = self._axis_keep.setdefault(name, {})
        current = keeps.get(axis)
        keep = keep.to(param.device)
        keeps[axis] = keep if current is None else current & keep
        region = self.region(name)
        assert region is not None
        if name in self._masks:
            self._masks[name] = self._masks[name] & region
        else:
            self._param_keep[name] = region.expand_as(param).clone()

    def capacity(self, name: str) -> int:
        """Number of positions of ``name`` inside live channels."""
        shape = list(self.params[name].shape)
        for axis, keep in self._axis_keep.get(name, {}).items():
            shape[axis] = int(keep.sum())
        return math.prod(shape)

    def live_shape(self, name: str) -> tuple[int, ...]:
        shape = list(self.params[name].shape)
        for axis, keep in self._axis_keep.get(name, {}).items():
            shape[axis] = int(keep.sum())
        return tuple(shape)

    def check(self) -> list[str]:
        """Broken invariants of every mask, one sentence each (empty: all hold): a mask that is
        not a bool tensor of its weight's shape, masked weights that are not zero, active
        weights inside removed channels."""
        problems = []
        for name in self.names:
            mask, weight = self._masks[name], self.params[name].detach()
            if mask.dtype != torch.bool or mask.shape != weight.shape:
                problems.append(f"{name}: mask is not a bool tensor of the weight's shape")
                continue
            if bool((weight[~mask] != 0).any()):
                problems.append(f"{name}: masked weights are not zero")
            region = self.region(name)
            if region is not None and bool((mask & ~region).any()):
                problems.append(f"{name}: active weights inside removed channels")
        return problems

    # -- application ---------------------------------------------------------------------
    def counts(self) -> list[int]:
        """Active weights per maskable layer, in ``names`` order (one device sync)."""
        if not self.names:
            return []
        sums = torch.stack([torch.count_nonzero(self._masks[n]).cpu() for n in self.names])
        return [int(c) for c in sums.tolist()]

    @torch.no_grad()
    def apply(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zero masked weights, removed channel parameters and their optimizer state.

        Small tensors go through one fused multiply per device and dtype. A large tensor
        (at least ``FILL_FROM`` elements, e.g. VGG's 100M-weight classifier) is zeroed with
        ``masked_fill_`` through one inverted mask shared by the weight and every state tensor
        shaped like it: a float-by-bool multiply takes PyTorch's slow casting path, about twice
        the time, and the weight dominated the step. The inverted mask is a transient buffer of
        one layer's size.
        """
        pairs: list[tuple[torch.Tensor, torch.Tensor]] = [
            (self.params[n], self._masks[n]) for n in self.names
        ]
        pairs += [(self.params[n], k) for n, k in self._param_keep.items()]
        state = optimizer.state if optimizer is not None else {}
        by_device: dict[tuple[torch.device, torch.dtype], list[tuple[torch.Tensor, ...]]] = {}
        for param, keep in pairs:
            targets = [param, *shaped_state(state.get(param), param).values()]
            if param.numel() >= FILL_FROM:
                drop = ~keep
                for t in targets:
                    t.masked_fill_(drop, 0)
                continue
            for t in targets:
                by_device.setdefault((t.device, t.dtype), []).append((t, keep))
        for group in by_device.values():
            tensors, keeps = zip(*group)
            torch._foreach_mul_(list(tensors), list(keeps))


def shaped_state(
    state: Mapping[str, object] | None, param: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The per-parameter optimizer-state tensors shaped like ``param`` (SGD momentum, Adam's
    moments, ...), by key: what masking zeroes and shrinking cuts. Scalar state (``step``) and
    factored state of other shapes are not included."""
    if not state:
        return {}
    return {
        k: v
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and v.shape == param.shape and v.is_floating_point()
    }
