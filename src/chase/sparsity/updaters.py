"""Topology updaters (DESIGN §4): each is a count plan plus drop scores and grow scores.

One shared routine, :func:`rewire`, keeps the highest drop scores among active weights and
then grows the highest grow scores among the inactive positions inside live channels. An
updater only says how many to keep and grow (per layer or globally) and how to score, which
settings it cannot run with (:meth:`TopologyUpdater.check_config`) and how many active weights
it may leave right after an update (:meth:`TopologyUpdater.ceiling`). Register a new one with
:func:`register_updater`; ``SparsityConfig``, the CLI and the contract tests pick it up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from chase.checks import check, state_version
from chase.registry import Registry
from chase.sparsity.allocation import apportion
from chase.sparsity.schedules import DROP_SCHEDULES, drop_fraction, mest_density, mest_phase_end
from chase.sparsity.selection import top_k

if TYPE_CHECKING:
    from chase.sparsity.config import SparsityConfig


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

    @property
    def budget(self) -> int:
        """B, the budget of the whole model (pinned layers included)."""
        return self.budget_free + self.pinned


@dataclass
class Plan:
    """How many active weights to keep and grow, globally (int) or per free layer (list)."""

    keep: int | list[int]
    grow: int | list[int]


class TopologyUpdater:
    """Base updater: magnitude drop; subclasses choose grow scores and, if needed, counts."""

    name: ClassVar[str] = ""
    #: when the dense gradient of the weights is read: "never", at "update" steps, or "every" step
    dense_grad: ClassVar[str] = "never"
    #: whether the engine calls :meth:`plan` at update steps (``static`` never rewires)
    rewires: ClassVar[bool] = True
    #: layout version of :meth:`state_dict`; bump it (and read the old one) when it changes
    state_version: ClassVar[int] = 1

    def __init__(self, config: SparsityConfig):
        self.config = config

    @classmethod
    def check_config(cls, config: SparsityConfig, prefix: str) -> None:
        """Raise ``ConfigError`` for settings this updater cannot run with; ``prefix`` is how
        the caller names the config's keys (``"SparsityConfig."``, ``"sparsity."``).

        Default: a drop schedule that decays needs its horizon T (``dst_end`` or
        ``total_steps``)."""
        if DROP_SCHEDULES.get(config.drop_schedule).decays:
            need_horizon(cls.name, config, prefix)

    def ceiling(self, step: int, budget: int, total: int) -> int:
        """Most active weights allowed right after an update at ``step`` (and until the next
        one), for a model of ``total`` maskable weights and a ``budget``: the budget itself."""
        del step, total
        return budget

    def plan(self, ctx: Context, layers: Sequence[Layer]) -> Plan:
        """Drop ζ(t) of the active weights, then grow back up to the budget (RigL/SET)."""
        zeta = drop_fraction(self.config, ctx.step)
        if self.config.scope == "global":
            active = sum(lay.active for lay in layers)
            keep = min(active - round(zeta * active), ctx.budget_free)
            return Plan(keep, ctx.budget_free - keep)
        keeps = [min(lay.active - round(zeta * lay.active), lay.target) for lay in layers]
        return Plan(keeps, [lay.target - k for lay, k in zip(layers, keeps)])

    def drop_score(self, layer: Layer, out: torch.Tensor) -> None:
        """Write the keep priority of every position into ``out`` (float32, weight's shape)."""
        _abs_into(layer.weight.detach(), out)

    def grow_score(self, layer: Layer, out: torch.Tensor, generator: torch.Generator) -> None:
        """Write the growth priority of every position into ``out``."""
        raise NotImplementedError

    def observe(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Called after every optimizer step (only updaters with dense_grad == 'every')."""

    def shrunk(self, cut: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]) -> None:
        """The model shrank: ``cut`` turns FQN-keyed tensors shaped like the old weights into
        the new shapes. An updater that keeps per-weight state (SNFS) cuts it here."""

    def state_dict(self) -> dict[str, Any]:
        """Plain data to resume from; subclasses add their keys to this dict."""
        return {"version": self.state_version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check the saved layout version; subclasses then read their keys."""
        state_version(state, (self.state_version,), f"updater {self.name!r} state")


def need_horizon(updater: str, config: SparsityConfig, prefix: str) -> None:
    """``ConfigError`` unless the drop schedule's horizon T (``dst_end``/``total_steps``) is set."""
    check(
        config.schedule_end is not None,
        f"{prefix}total_steps",
        config.total_steps,
        f"an integer >= 1 (updater {updater!r} with drop_schedule "
        f"{config.drop_schedule!r} needs the run length; or set dst_end)",
    )


#: Topology updaters by name (``SparsityConfig.updater``).
UPDATERS: Registry[type[TopologyUpdater]] = Registry("updater")


def register_updater(cls: type[TopologyUpdater], *, replace: bool = False) -> type[TopologyUpdater]:
    """Class decorator registering ``cls`` under ``cls.name``."""
    return UPDATERS.register(cls.name, replace=replace)(cls)


def create_updater(config: SparsityConfig) -> TopologyUpdater:
    return UPDATERS.get(config.updater, "updater")(config)


def _abs_into(tensor: torch.Tensor | None, out: torch.Tensor) -> None:
    if tensor is None:
        out.zero_()
    elif tensor.dtype == out.dtype:
        torch.abs(tensor, out=out)
    else:
        out.copy_(tensor).abs_()


@register_updater
class Static(TopologyUpdater):
    """Static sparse training: the initial random masks never change (the baseline)."""

    name = "static"
    rewires = False

    @classmethod
    def check_config(cls, config: SparsityConfig, prefix: str) -> None:
        """Nothing to check: the drop schedule is never used."""


@register_updater
class SET(TopologyUpdater):
    """SET: magnitude drop, uniformly random growth (Mocanu et al. 2018)."""

    name = "set"

    def grow_score(self, layer: Layer, out: torch.Tensor, generator: torch.Generator) -> None:
        if out.device.type == "cpu":
            out.uniform_(0.0, 1.0, generator=generator)
        else:  # the engine's generator lives on the CPU so every device draws the same numbers
            out.copy_(torch.rand(out.shape, generator=generator))


@register_updater
class RigL(TopologyUpdater):
    """RigL: magnitude drop, growth by dense gradient magnitude (Evci et al. 2020)."""

    name = "rigl"
    dense_grad = "update"

    def grow_score(self, layer: Layer, out: torch.Tensor, generator: torch.Generator) -> None:
        grad = layer.weight.grad
        _abs_into(None if grad is None else grad.detach(), out)


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

    def grow_score(self, layer: Layer, out: torch.Tensor, generator: torch.Generator) -> None:
        _abs_into(self.ema.get(layer.name), out)

    def _mean_momentum(self, layer: Layer) -> torch.Tensor:
        ema = self.ema.get(layer.name)
        if ema is None or layer.active == 0:
            return torch.zeros((), dtype=torch.float64)
        return ema.abs().masked_fill_(~layer.mask, 0).sum(dtype=torch.float64).cpu() / layer.active

    def plan(self, ctx: Context, layers: Sequence[Layer]) -> Plan:
        if self.config.scope == "layer":
            return super().plan(ctx, layers)
        # Each layer drops ζ of its own active weights (no per-layer target under global
        # scope); only the total is held to the budget.
        zeta = drop_fraction(self.config, ctx.step)
        keeps = [lay.active - round(zeta * lay.active) for lay in layers]
        if sum(keeps) > ctx.budget_free:
            keeps = apportion(ctx.budget_free, [float(k) for k in keeps], keeps)
        means = torch.stack([self._mean_momentum(lay) for lay in layers]).tolist()
        room = [lay.capacity - k for lay, k in zip(layers, keeps)]
        grows = apportion(ctx.budget_free - sum(keeps), means, room)
        return Plan(keeps, grows)

    def shrunk(self, cut: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]) -> None:
        self.ema = cut(self.ema)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "ema": dict(self.ema)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ema = {n: t.clone() for n, t in state.get("ema", {}).items()}


@register_updater
class MEST(RigL):
    """MEST with a soft memory bound: for t < T_A prune by magnitude back to the budget, then
    grow by gradient up to round(D(t)·N); afterwards plain RigL updates (DESIGN §4)."""

    name = "mest"

    @classmethod
    def check_config(cls, config: SparsityConfig, prefix: str) -> None:
        """The soft bound stays within a dense model, and its decay needs T (always)."""
        check(
            config.density + config.mest_overshoot <= 1.0,
            f"{prefix}mest_overshoot",
            config.mest_overshoot,
            f"at most 1 - density = {1.0 - config.density:g} "
            "(the soft bound cannot exceed a dense model)",
        )
        need_horizon(cls.name, config, prefix)

    def ceiling(self, step: int, budget: int, total: int) -> int:
        """Phase A (t < T_A): the soft bound max(B, round(D(t)·N)); afterwards the budget."""
        if step >= mest_phase_end(self.config):
            return budget
        return max(budget, round(mest_density(self.config, step) * total))

    def plan(self, ctx: Context, layers: Sequence[Layer]) -> Plan:
        if ctx.step >= mest_phase_end(self.config):
            return super().plan(ctx, layers)
        # keep_dense layers count in N and B, so the free layers get the bound less theirs
        bound_free = self.ceiling(ctx.step, ctx.budget, ctx.total) - ctx.pinned
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
    """New masks of the free layers: keep by drop score among active, grow among the rest.

    Scores are written into one float32 buffer (per layer or, for a global plan, for all
    layers) that serves both phases, so an update over tens of millions of weights makes
    few large allocations.
    """
    if not layers:
        return {}
    if isinstance(plan.keep, int):
        assert isinstance(plan.grow, int), "a global keep needs a global grow"
        return _rewire_global(layers, plan.keep, plan.grow, updater, generator)
    assert isinstance(plan.grow, list)
    return {
        lay.name: _rewire_layer(lay, k, g, updater, generator)
        for lay, k, g in zip(layers, plan.keep, plan.grow)
    }


def _rewire_layer(
    lay: Layer, keep: int, grow: int, updater: TopologyUpdater, generator: torch.Generator
) -> torch.Tensor:
    keep = max(0, min(keep, lay.active))
    grow = max(0, min(grow, lay.capacity - keep))
    if keep == lay.active and grow == 0:
        return lay.mask.clone()
    scores = torch.empty(lay.mask.shape, dtype=torch.float32, device=lay.mask.device)
    flat = scores.view(-1)
    new = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if keep == lay.active:
        new.copy_(lay.mask.view(-1))
    else:
        updater.drop_score(lay, scores)
        _keep_top(flat, lay.mask.view(-1), keep, new)
    if grow:
        _fill_grow(lay, scores, new.view(lay.mask.shape), updater, generator)
        new[top_k(flat, grow)] = True
    return new.view(lay.mask.shape)


def _rewire_global(
    layers: Sequence[Layer],
    keep: int,
    grow: int,
    updater: TopologyUpdater,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """One ranking over every free layer at once (global scope)."""
    sizes = [lay.mask.numel() for lay in layers]
    device = layers[0].mask.device
    flat = torch.empty(sum(sizes), dtype=torch.float32, device=device)
    new = torch.zeros(flat.numel(), dtype=torch.bool, device=device)
    views = [v.view(lay.mask.shape) for v, lay in zip(torch.split(flat, sizes), layers)]
    kept = [v.view(lay.mask.shape) for v, lay in zip(torch.split(new, sizes), layers)]
    for lay, v in zip(layers, views):
        updater.drop_score(lay, v)
    active = torch.cat([lay.mask.view(-1) for lay in layers])
    _keep_top(flat, active, max(0, keep), new)
    grow = max(0, min(grow, sum(lay.capacity for lay in layers) - keep))
    if grow:
        for lay, v, k in zip(layers, views, kept):
            _fill_grow(lay, v, k, updater, generator)
        new[top_k(flat, grow)] = True
    return {lay.name: k for lay, k in zip(layers, kept)}


def _keep_top(scores: torch.Tensor, active: torch.Tensor, keep: int, out: torch.Tensor) -> None:
    """Set ``out`` at the ``keep`` active positions with the highest scores (ranks only the
    active entries, a small fraction of the layer at the densities DST runs at)."""
    positions = active.nonzero().squeeze(1)
    out[positions[top_k(scores[positions], keep)]] = True


def _fill_grow(
    lay: Layer,
    out: torch.Tensor,
    kept: torch.Tensor,
    updater: TopologyUpdater,
    generator: torch.Generator,
) -> None:
    """Grow scores of ``lay`` in ``out``, -inf where already kept or in a removed channel."""
    updater.grow_score(lay, out, generator)
    out.masked_fill_(kept, -math.inf)
    if lay.region is not None:
        out.masked_fill_(~lay.region, -math.inf)
