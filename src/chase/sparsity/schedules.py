"""Schedules as pure functions of the engine's one clock, the optimizer step ``t``.

A drop schedule is a shape ``f(start, end, frac)`` over the fraction ``frac = t / T`` of its
horizon, registered in :data:`DROP_SCHEDULES` with :func:`register_schedule`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chase.registry import Registry

if TYPE_CHECKING:
    from chase.sparsity.config import SparsityConfig

ShapeFn = Callable[[float, float, float], float]


class Updater(Protocol):
    """What :func:`inaction` asks of a topology updater."""

    @property
    def rewires(self) -> bool: ...

    def ceiling(self, step: int, budget: int, total: int) -> int: ...


@dataclass(frozen=True)
class DropSchedule:
    """A registered drop schedule: its shape, and whether it changes over time (then a
    topology updater using it needs the horizon T: ``dst_end`` or ``total_steps``)."""

    shape: ShapeFn
    decays: bool = True


#: Drop schedules by name (``SparsityConfig.drop_schedule``).
DROP_SCHEDULES: Registry[DropSchedule] = Registry("drop schedule")


def register_schedule(name: str, *, decays: bool = True) -> Callable[[ShapeFn], ShapeFn]:
    """Decorator registering ``shape(start, end, frac)`` as drop schedule ``name``."""

    def add(shape: ShapeFn) -> ShapeFn:
        DROP_SCHEDULES.register(name)(DropSchedule(shape, decays))
        return shape

    return add


@register_schedule("cosine")
def cosine(start: float, end: float, frac: float) -> float:
    """Half a cosine from ``start`` down (or up) to ``end`` (RigL)."""
    return end + (start - end) * (1.0 + math.cos(math.pi * frac)) / 2.0


@register_schedule("constant", decays=False)
def constant(start: float, end: float, frac: float) -> float:
    """``start`` throughout."""
    return start


@register_schedule("linear")
def linear(start: float, end: float, frac: float) -> float:
    """A straight line from ``start`` to ``end``."""
    return start + (end - start) * frac


def decay(start: float, end: float, t: int, horizon: int, kind: str) -> float:
    """Value at step ``t`` of a schedule going from ``start`` (t=0) to ``end`` (t>=horizon)."""
    schedule = DROP_SCHEDULES.get(kind, "drop_schedule")
    frac = min(max(t / horizon, 0.0), 1.0) if horizon > 0 else 1.0
    return schedule.shape(start, end, frac)


def drop_fraction(config: SparsityConfig, t: int) -> float:
    """ζ(t): fraction of active weights dropped at an update (DESIGN §4)."""
    horizon = config.schedule_end or 0
    return decay(config.drop_fraction, config.drop_fraction_end, t, horizon, config.drop_schedule)


def mest_phase_end(config: SparsityConfig) -> int:
    """T_A, the end of MEST's soft-memory-bound phase."""
    if config.mest_end is not None:
        return config.mest_end
    end = config.schedule_end
    return end if end is not None else 0


def mest_density(config: SparsityConfig, t: int) -> float:
    """D(t) = d + δ₀·(1 + cos(π·t/T_A))/2, MEST's soft bound during phase A."""
    horizon = mest_phase_end(config)
    return config.density + decay(config.mest_overshoot, 0.0, t, horizon, "cosine")


def is_update_step(config: SparsityConfig, t: int) -> bool:
    """Whether step ``t`` is on the topology-update grid (the engine also asks its updater,
    since ``static`` never rewires)."""
    if t <= 0 or t % config.update_every:
        return False
    return config.dst_end is None or t <= config.dst_end


def channel_sparsity(target: float, t: int, end: int) -> float:
    """S(t) = S_c·(1 − (1 − t/t_f)³) for t <= t_f, then S_c (cubic, Zhu & Gupta)."""
    if end <= 0 or t >= end:
        return target
    return target * (1.0 - (1.0 - t / end) ** 3)


def is_channel_event(config: SparsityConfig, t: int) -> bool:
    """Whether a channel event runs after step ``t``: t ≡ offset (mod ΔT), t > 0."""
    ch = config.channels
    if ch is None or t <= 0:
        return False
    return (t - config.channel_offset) % ch.every == 0 and t >= config.channel_offset


#: a shortfall of density or channel sparsity below this is rounding, not worth a warning
NEGLIGIBLE = 1e-3


def first_channel_event(config: SparsityConfig) -> int | None:
    """The first step after which a channel event runs (None: no channel learner)."""
    ch = config.channels
    if ch is None:
        return None
    offset = config.channel_offset
    return offset if offset > 0 else ch.every


def inaction(config: SparsityConfig, updater: Updater | None = None) -> list[str]:
    """What ``config`` cannot do within its ``total_steps`` (one sentence each; [] when it acts
    as configured or the run length is unknown): no topology update or no channel event before
    the end, a channel target not reached by the last event, a density still above the budget
    after the last update (the ``updater``'s ceiling then, e.g. MEST's soft bound before
    ``mest_end``). Without an ``updater`` the topology is not checked."""
    total = config.total_steps
    if total is None:
        return []
    out: list[str] = []
    rewires = updater is not None and updater.rewires
    last_update = _last_update(config, total) if rewires else None
    if rewires and last_update is None:
        end = "" if config.dst_end is None else f" and dst_end = {config.dst_end}"
        out.append(
            f"no topology update before the end of the run: update_every = "
            f"{config.update_every}{end}, but the run has {total} steps; {config.updater} "
            "keeps its initial topology, like static"
        )
    if updater is not None and last_update is not None:
        n = 10**9  # a notional model size: the ceiling is a count, the question a density
        allowed = updater.ceiling(last_update, round(config.density * n), n) / n
        if allowed - config.density > NEGLIGIBLE:
            out.append(
                f"the final density stays near {allowed:.3f}, above the budget "
                f"{config.density:g}: {config.updater} still allows it at the last topology "
                f"update (after step {last_update}; MEST's soft bound lasts until mest_end)"
            )
    ch = config.channels
    if ch is not None and ch.sparsity > 0:
        first = first_channel_event(config)
        assert first is not None
        if first > total:
            why = (
                "channels.every, as channels.offset is 0"
                if config.channel_offset == 0
                else "channels.offset, or update_every // 2 when it is unset"
            )
            out.append(
                f"no channel event before the end of the run: the first would follow step "
                f"{first} ({why}), but the run has {total} steps; no channels are removed"
            )
        else:
            last = first + (total - first) // ch.every * ch.every
            reached = channel_sparsity(ch.sparsity, last, config.channel_end)
            if ch.sparsity - reached > NEGLIGIBLE:
                out.append(
                    f"channel sparsity ends near {reached:.3f}, short of the target "
                    f"{ch.sparsity:g}: the last channel event (after step {last}) comes before "
                    f"channels.end = {config.channel_end}"
                )
    return out


def _last_update(config: SparsityConfig, total: int) -> int | None:
    """The last topology-update step within ``total`` steps (None: there is none)."""
    end = total if config.dst_end is None else min(total, config.dst_end)
    last = end // config.update_every * config.update_every
    return last if last > 0 else None
