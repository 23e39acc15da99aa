"""Schedules as pure functions of the engine's one clock, the optimizer step ``t``.

A drop schedule is a shape ``f(start, end, frac)`` over the fraction ``frac = t / T`` of its
horizon, registered in :data:`DROP_SCHEDULES` with :func:`register_schedule`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chase.registry import Registry

if TYPE_CHECKING:
    from chase.sparsity.config import SparsityConfig

ShapeFn = Callable[[float, float, float], float]


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
