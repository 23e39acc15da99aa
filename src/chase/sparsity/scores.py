"""Channel scores (DESIGN §5): UMM and its ablations, vectorised over every channel at once.

A channel's producer slices are the output slices of the Conv/Linear weights that create it.
For each channel we gather, over those slices, the sum of |W ⊙ M|, the number of active
weights and the original number of weights (masked zeros included), then:

- ``umm``       = Σ|W ⊙ M| / original size  (unmasked mean magnitude, the paper's score)
- ``mask_mean`` = Σ|W ⊙ M| / active count   (0 for a channel without active weights)
- ``density``   = active count / original size
- ``random``    = uniform noise from the engine's generator

A score is a function ``(stats, generator) -> tensor`` registered in :data:`SCORES`; lower
scores are removed first. ``ChannelStats`` computes UMM and density once for the scores and
for the channel report (``report.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from chase.registry import Registry
from chase.sparsity.groups import ChannelGroup
from chase.sparsity.masks import MaskSet


@dataclass(frozen=True)
class Slot:
    """One producer slice family: channels ``offset .. offset + C`` of the flat channel axis
    occupy positions ``index`` (C, k) along ``axis`` of weight ``tensor``.

    ``index`` is in the tensor's current coordinates; -1 marks a position a shrink removed
    physically. ``size`` is the number of weights of one channel's slices in the original
    model (masked and removed positions included), the denominator of UMM and density; None
    reads it off the tensor's current shape.
    """

    tensor: str
    axis: int
    index: torch.Tensor
    offset: int
    size: int | None = None


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel Σ|W⊙M|, active count and original size (float64 vectors)."""

    abs_sum: torch.Tensor
    active: torch.Tensor
    original: torch.Tensor

    def umm(self) -> torch.Tensor:
        """Unmasked mean magnitude: Σ|W⊙M| over the original size (masked zeros count)."""
        return self.abs_sum / self.original.clamp_min(1.0)

    def mask_mean(self) -> torch.Tensor:
        """Mean magnitude of the active weights (0 for a channel without any)."""
        return self.abs_sum / self.active.clamp_min(1.0)

    def density(self) -> torch.Tensor:
        """Fraction of the original positions that are active."""
        return self.active / self.original.clamp_min(1.0)


def producer_slots(groups: Sequence[ChannelGroup], masks: MaskSet) -> tuple[list[Slot], int]:
    """The producer slots of ``groups`` laid end to end on one flat channel axis, and its
    length; producers that are not among the mask set's parameters are left out. Indices are
    mapped to the current (possibly shrunk) coordinates of ``masks``; sizes are original."""
    slots, offset = [], 0
    for g in groups:
        for m in g.by_role("producer"):
            if m.tensor in masks.params:
                shape = masks.original_shapes[m.tensor]
                per_row = math.prod(shape) // shape[m.axis]
                index = masks.to_current(m.tensor, m.axis, m.index)
                slots.append(Slot(m.tensor, m.axis, index, offset, per_row * m.index.shape[1]))
        offset += g.size
    return slots, offset


def channel_stats(
    slots: Sequence[Slot],
    params: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    total: int,
) -> ChannelStats:
    """Per-channel Σ|W⊙M|, active count and original size over the producer slices (float64).

    Positions a shrink removed (index -1) hold no weight: they add nothing but their original
    size.
    """
    abs_sum = torch.zeros(total, dtype=torch.float64)
    active = torch.zeros(total, dtype=torch.float64)
    original = torch.zeros(total, dtype=torch.float64)
    with torch.no_grad():
        for slot in slots:
            w = params[slot.tensor].detach()
            m = masks.get(slot.tensor)
            n = w.shape[slot.axis]
            rows_w = w.movedim(slot.axis, 0).reshape(n, -1)
            per_pos = rows_w.shape[1]
            if m is None:
                mag = rows_w.abs().sum(1, dtype=torch.float64)
                cnt = torch.full((n,), float(per_pos), dtype=torch.float64, device=w.device)
            else:
                rows_m = m.movedim(slot.axis, 0).reshape(n, -1)
                mag = (rows_w.abs() * rows_m).sum(1, dtype=torch.float64)
                cnt = rows_m.sum(1, dtype=torch.float64)
            idx = slot.index.to(w.device)
            present = idx >= 0
            idx = idx.clamp_min(0)
            c = idx.shape[0]
            span = slice(slot.offset, slot.offset + c)
            abs_sum[span] += (mag[idx] * present).sum(1).cpu()
            active[span] += (cnt[idx] * present).sum(1).cpu()
            original[span] += float(slot.size if slot.size is not None else per_pos * idx.shape[1])
    return ChannelStats(abs_sum, active, original)


ScoreFn = Callable[[ChannelStats, torch.Generator], torch.Tensor]

#: Channel scores by name; lower scores are removed first.
SCORES: Registry[ScoreFn] = Registry("channel score")


@SCORES.register("umm")
def _umm(stats: ChannelStats, generator: torch.Generator) -> torch.Tensor:
    return stats.umm()


@SCORES.register("mask_mean")
def _mask_mean(stats: ChannelStats, generator: torch.Generator) -> torch.Tensor:
    return stats.mask_mean()


@SCORES.register("density")
def _density(stats: ChannelStats, generator: torch.Generator) -> torch.Tensor:
    return stats.density()


@SCORES.register("random")
def _random(stats: ChannelStats, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(stats.abs_sum.shape, generator=generator, dtype=torch.float64)
