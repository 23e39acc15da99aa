"""Topology updaters (DESIGN §4): each is a count plan plus drop scores and grow scores.

One shared routine, :func:`rewire`, keeps the highest drop scores among active weights and
then grows the highest grow scores among the inactive positions inside live channels. An
updater only says how many to keep and grow (per layer or globally) and how to score.
Register a new one with :func:`register_updater`; the contract tests pick it up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from chase.sparsity.allocation import apportion
from chase.sparsity.config import SparsityConfig
from chase.sparsity.schedules import drop_fraction, mest_density, mest_phase_end
from chase.sparsity.selection import top_k


@dataclass
class Layer:
    """What an updater sees of one maskable weight at an update."""

    name: str
    weight: torch.Tensor
    mask: torch.Tensor
    region: torch.Tensor | None
    active: int
    capacity: int
    target: int
    pinned: bool


@dataclass
class Context:
    step: int
    total: int  # N, maskable weights of the original model
    budget_free: int  # budget minus the active weights of pinned (keep_dense) layers
    pinned: int  # active weights of pinned layers
    generator: torch.Generator


@dataclass
class Plan:
    """How many active weights to keep and grow, globally (int) or per free layer (list)."""

    keep: int | list[int]
    grow: int | list[int]


class TopologyUpdater:
    """Base updater: magnitude drop; subclasses choose grow scores and, if needed, counts."""

    name: ClassVar[str] = "static"
    #: when the dense gradient of the weights is read: "never", at "update" steps, or "every" step
    dense_grad: ClassVar[str] = "never"

    def __init__(self, config: SparsityConfig):
        self.config = config

    def plan(self, ctx: Context, layers: Sequence[Layer]) -> Plan:
        """Drop ζ(t) of the active weights, then grow back up to the budget (RigL/SET)."""
        zeta = drop_fraction(self.config, ctx.step)
        if self.config.scope == "global":
            active = sum(lay.active for lay in layers)
            keep = min(active - round(zeta * active), ctx.budget_free)
            return Plan(keep, ctx.budget_free - keep)
        keeps = [min(lay.active - round(zeta * lay.active), lay.target) for lay in layers]
        return Plan(keeps, [lay.target - k for lay, k in zip(layers, keeps)])

    def drop_score(self, layer: Layer) -> torch.Tensor:
        return layer.weight.detach().abs().float()

    def grow_score(self, layer: Layer, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def observe(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Called after every optimizer step (only updaters with dense_grad == 'every')."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


UPDATERS: dict[str, type[TopologyUpdater]] = {}


def register_updater(cls: type[TopologyUpdater]) -> type[TopologyUpdater]:
    UPDATERS[cls.name] = cls
    return cls


def create_updater(config: SparsityConfig) -> TopologyUpdater:
    return UPDATERS[config.updater](config)


def _grad_magnitude(layer: Layer) -> torch.Tensor:
    grad = layer.weight.grad
    if grad is None:
        return torch.zeros(layer.weight.shape, device=layer.weight.device)
    return grad.detach().abs().float()


register_updater(TopologyUpdater)


@register_updater
class SET(TopologyUpdater):
    """SET: magnitude drop, uniformly random growth (Mocanu et al. 2018)."""

    name = "set"

    def grow_score(self, layer: Layer, generator: torch.Generator) -> torch.Tensor:
        noise = torch.rand(layer.weight.shape, generator=generator)
        return noise.to(layer.weight.device)


@register_updater
class RigL(TopologyUpdater):
    """RigL: magnitude drop, growth by dense gradient magnitude (Evci et al. 2020)."""

    name = "rigl"
    dense_grad = "update"

    def grow_score(self, layer: Layer, generator: torch.Generator) -> torch.Tensor:
        return _grad_magnitude(layer)


@register_updater
class SNFS(TopologyUpdater):
    """SNFS: magnitude drop, growth by momentum of the dense gradient, redistributed across
    layers by their mean momentum magnitude under ``scope: global`` (Dettmers & Zettlemoyer).

    The momentum is the updater's own exponential moving average of the dense gradient
    (``snfs_momentum``), updated every step: optimizer momentum of inactive weights is zero.
    """

    name = "snfs"
    dense_grad = "every"

    def __init__(self, config: SparsityConfig):
        super().__init__(config)
        self.ema: dict[str, torch.Tensor] = {}

    def observe(self, weights: Mapping[str, torch.Tensor]) -> None:
        emas, grads = [], []
        for name, w in weights.items():
            if w.grad is None:
                continue
            ema = self.ema.get(name)
            if ema is None:
                ema = self.ema[name] = torch.zeros_like(w, dtype=torch.float32)
            emas.append(ema)
            grads.append(w.grad.detach().float())
        if emas:
            torch._foreach_lerp_(emas, grads, 1.0 - self.config.snfs_momentum)

    def _momentum(self, layer: Layer) -> torch.Tensor:
        ema = self.ema.get(layer.name)
        if ema is None:
            return torch.zeros(layer.weight.shape, device=layer.weight.device)
        return ema.abs()

    def grow_score(self, layer: Layer, generator: torch.Generator) -> torch.Tensor:
        return self._momentum(layer)

    def plan(self, ctx: Context, layers: Sequence[Layer]) -> Plan:
        zeta = drop_fraction(self.config, ctx.step)
        keeps = [min(lay.active - round(zeta * lay.active), lay.target) for lay in layers]
        if self.config.scope == "layer":
            return Plan(keeps, [lay.target - k for lay, k in zip(layers, keeps)])
        means = torch.stack(
            [(self._momentum(lay) * lay.mask).sum().cpu() / max(lay.active, 1) for lay in layers]
        ).tolist()
        room = [lay.capacity - k for lay, k in zip(layers, keeps)]
        grows = apportion(ctx.budget_free - sum(keeps), means, room)
        return Plan(keeps, grows)

    def state_dict(self) -> dict[str, Any]:
        return {"ema": dict(self.ema)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema = {n: t.clone() for n, t in state.get("ema", {}).items()}


@register_updater
class MEST(RigL):
    """MEST with a soft memory bound: for t < T_A prune by magnitude back to the budget, then
    grow by gradient up to round(D(t)·N); afterwards plain RigL updates (DESIGN §4)."""

    name = "mest"

    def plan(self, ctx: Context, layers: Sequence[Layer]) -> Plan:
        if ctx.step >= mest_phase_end(self.config):
            return super().plan(ctx, layers)
        bound = round(mest_density(self.config, ctx.step) * ctx.total)
        bound_free = max(bound - ctx.pinned, ctx.budget_free)  # keep_dense counts in N and B
        if self.config.scope == "global":
            keep = min(sum(lay.active for lay in layers), ctx.budget_free)
            return Plan(keep, bound_free - keep)
        targets = apportion(
            bound_free, [float(lay.target) for lay in layers], [lay.capacity for lay in layers]
        )
        keeps = [min(lay.active, lay.target) for lay in layers]
        return Plan(keeps, [t - k for t, k in zip(targets, keeps)])


def rewire(
    layers: Sequence[Layer], plan: Plan, updater: TopologyUpdater, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """New masks of the free layers: keep by drop score among active, grow among the rest."""
    if isinstance(plan.keep, int):
        kept = _top_global(
            layers, plan.keep, lambda lay: _masked(updater.drop_score(lay), lay.mask)
        )
        room_total = sum(lay.capacity for lay in layers) - plan.keep
    else:
        kept = {}
        for lay, k in zip(layers, plan.keep):
            if k >= lay.active:  # nothing dropped: no ranking needed
                kept[lay.name] = lay.mask.clone()
            else:
                kept[lay.name] = _top_layer(lay, k, _masked(updater.drop_score(lay), lay.mask))
        room = [lay.capacity - min(k, lay.active) for lay, k in zip(layers, plan.keep)]
        room_total = sum(room)
    candidates = {lay.name: _candidates(lay, kept[lay.name]) for lay in layers}

    def grow_score(lay: Layer) -> torch.Tensor:
        return _masked(updater.grow_score(lay, generator), candidates[lay.name])

    if isinstance(plan.grow, int):
        grown = _top_global(layers, min(plan.grow, room_total), grow_score)
    else:
        assert not isinstance(plan.keep, int), "a global keep needs a global grow"
        grown = {}
        for lay, g, limit in zip(layers, plan.grow, room):
            g = max(0, min(g, limit))
            grown[lay.name] = _top_layer(lay, g, grow_score(lay)) if g else None
    return {
        lay.name: kept[lay.name] if grown[lay.name] is None else kept[lay.name] | grown[lay.name]
        for lay in layers
    }


def _masked(score: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return torch.where(allowed, score, torch.full_like(score, -math.inf))


def _candidates(layer: Layer, kept: torch.Tensor) -> torch.Tensor:
    free = ~kept
    return free if layer.region is None else free & layer.region


def _top_layer(layer: Layer, k: int, scores: torch.Tensor) -> torch.Tensor:
    flat = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    flat[top_k(scores.reshape(-1), max(0, k))] = True
    return flat.view(layer.mask.shape)


def _top_global(
    layers: Sequence[Layer], k: int, score_fn: Callable[[Layer], torch.Tensor]
) -> dict[str, torch.Tensor | None]:
    """One ranking over the concatenation of every layer's scores (global scope)."""
    scores = torch.cat([score_fn(lay).reshape(-1) for lay in layers])
    flat = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    flat[top_k(scores, max(0, k))] = True
    out: dict[str, torch.Tensor | None] = {}
    start = 0
    for lay in layers:
        n = lay.mask.numel()
        out[lay.name] = flat[start : start + n].view(lay.mask.shape)
        start += n
    return out
