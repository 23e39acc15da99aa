"""Configuration of the sparsity engine: frozen, validated dataclasses.

Field names are a public contract: they appear in YAML presets, run folders and checkpoints.
Every invalid value raises ``ConfigError`` (a ``ValueError``) naming the field, the value
and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chase.checks import check, check_bool, check_choice, check_float, check_int
from chase.errors import ConfigError

ALLOCATIONS = ("uniform", "er", "erk")
UPDATERS = ("static", "set", "rigl", "snfs", "mest")
SCOPES = ("layer", "global")
DROP_SCHEDULES = ("cosine", "constant", "linear")
CHANNEL_SCORES = ("umm", "mask_mean", "density", "random")


def _check_names(owner: str, name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        check(False, f"{owner}.{name}", value, "a list of layer names or glob patterns")
    return tuple(value)


def _from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{cls.__name__} expects a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(
            f"{cls.__name__} has no field {unknown[0]!r}; known fields: {', '.join(names)}"
        )
    return cls(**dict(data))


@dataclass(frozen=True)
class ChannelConfig:
    """Chase's channel learner (DESIGN §5). Steps are optimizer steps of the engine's clock.

    sparsity: S_c, final fraction of the prunable channels removed, in [0, 1).
    every: ΔT, steps between channel events.
    end: t_f, step by which S_c is reached (None: the engine's ``total_steps``).
    offset: step offset of the events (None: ``update_every // 2``, between weight updates).
    min_keep_ratio: β; a group keeps at least max(1, floor(C_g·(1 − S_c)·β)) channels.
    score: channel score, one of ``umm``, ``mask_mean``, ``density``, ``random``.
    prune_skip: also prune residual (skip-connection) groups.
    round_to: keep each pruned group's live channel count a multiple of this.
    exclude: layer names or globs whose channel groups are never pruned.
    """

    sparsity: float = 0.5
    every: int = 1000
    end: int | None = None
    offset: int | None = None
    min_keep_ratio: float = 0.2
    score: str = "umm"
    prune_skip: bool = False
    round_to: int = 1
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        o = "ChannelConfig"
        check_float(f"{o}.sparsity", self.sparsity, 0.0, 1.0, low_open=False, high_open=True)
        check_int(f"{o}.every", self.every, 1)
        check_int(f"{o}.end", self.end, 0, optional=True)
        check_int(f"{o}.offset", self.offset, 0, optional=True)
        check_float(
            f"{o}.min_keep_ratio", self.min_keep_ratio, 0.0, 1.0, low_open=True, high_open=False
        )
        check_choice(f"{o}.score", self.score, CHANNEL_SCORES)
        check_bool(f"{o}.prune_skip", self.prune_skip)
        check_int(f"{o}.round_to", self.round_to, 1)
        object.__setattr__(self, "exclude", _check_names(o, "exclude", self.exclude))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelConfig:
        return _from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["exclude"] = list(self.exclude)
        return d


@dataclass(frozen=True)
class SparsityConfig:
    """Dynamic sparse training (DESIGN §3–4).

    density: fraction d of maskable weights that are active; budget B = round(d·N).
    allocation: per-layer densities at initialisation: ``uniform``, ``er`` or ``erk``.
    erk_power: exponent applied to the ER/ERK layer scores (1 = the published formula).
    keep_dense: layer names or globs kept fully dense inside the budget; also ``first``, ``last``.
    updater: topology updater: ``static``, ``set``, ``rigl``, ``snfs`` or ``mest``.
    scope: ``layer`` (every layer keeps its count) or ``global`` (one ranking over layers).
    update_every: ΔT_p, steps between topology updates.
    drop_fraction: ζ₀, fraction of active weights dropped at an update at step 0.
    drop_fraction_end: value the cosine/linear drop schedule decays to at its end.
    drop_schedule: ``cosine``, ``constant`` or ``linear`` decay of ζ(t) over [0, T],
        T = ``dst_end`` if set, else ``total_steps``.
    dst_end: step after which the topology freezes (None: never).
    mest_overshoot: δ₀, extra density of MEST's soft memory bound at step 0.
    mest_end: T_A, step where MEST's phase A ends and plain RigL updates take over
        (None: phase A lasts as long as updates do).
    snfs_momentum: decay of SNFS's exponential moving average of gradients.
    total_steps: length of the run in optimizer steps (needed by decaying schedules).
    seed: seed of the engine's random generator (identical on every rank).
    channels: Chase's channel learner, or None for plain DST.
    """

    density: float = 0.1
    allocation: str = "erk"
    erk_power: float = 1.0
    keep_dense: tuple[str, ...] = ()
    updater: str = "rigl"
    scope: str = "layer"
    update_every: int = 1000
    drop_fraction: float = 0.3
    drop_fraction_end: float = 0.0
    drop_schedule: str = "cosine"
    dst_end: int | None = None
    mest_overshoot: float = 0.05
    mest_end: int | None = None
    snfs_momentum: float = 0.9
    total_steps: int | None = None
    seed: int = 0
    channels: ChannelConfig | None = field(default=None)

    def __post_init__(self) -> None:
        o = "SparsityConfig"
        check_float(f"{o}.density", self.density, 0.0, 1.0, low_open=True, high_open=False)
        check_choice(f"{o}.allocation", self.allocation, ALLOCATIONS)
        check_float(f"{o}.erk_power", self.erk_power, 0.0, 10.0, low_open=True, high_open=False)
        object.__setattr__(self, "keep_dense", _check_names(o, "keep_dense", self.keep_dense))
        check_choice(f"{o}.updater", self.updater, UPDATERS)
        check_choice(f"{o}.scope", self.scope, SCOPES)
        check_int(f"{o}.update_every", self.update_every, 1)
        check_float(
            f"{o}.drop_fraction", self.drop_fraction, 0.0, 1.0, low_open=False, high_open=False
        )
        check_float(
            f"{o}.drop_fraction_end",
            self.drop_fraction_end,
            0.0,
            1.0,
            low_open=False,
            high_open=False,
        )
        check_choice(f"{o}.drop_schedule", self.drop_schedule, DROP_SCHEDULES)
        check_int(f"{o}.dst_end", self.dst_end, 0, optional=True)
        check_float(
            f"{o}.mest_overshoot", self.mest_overshoot, 0.0, 1.0, low_open=False, high_open=False
        )
        check_int(f"{o}.mest_end", self.mest_end, 0, optional=True)
        check_float(
            f"{o}.snfs_momentum", self.snfs_momentum, 0.0, 1.0, low_open=False, high_open=True
        )
        check_int(f"{o}.total_steps", self.total_steps, 1, optional=True)
        check_int(f"{o}.seed", self.seed, 0)
        if isinstance(self.channels, Mapping):
            object.__setattr__(self, "channels", ChannelConfig.from_dict(self.channels))
        if self.channels is not None and not isinstance(self.channels, ChannelConfig):
            check(False, f"{o}.channels", self.channels, "a ChannelConfig, a mapping or None")
        if self.updater == "mest" and self.density + self.mest_overshoot > 1.0:
            check(
                False,
                f"{o}.mest_overshoot",
                self.mest_overshoot,
                f"at most 1 - density = "
                f"{1.0 - self.density:g} (the soft bound cannot exceed a dense model)",
            )
        needs_t = self.updater != "static" and (
            self.drop_schedule != "constant" or self.updater == "mest"
        )
        if needs_t and self.schedule_end is None:
            check(
                False,
                f"{o}.total_steps",
                self.total_steps,
                f"an integer >= 1 (updater {self.updater!r} with drop_schedule "
                f"{self.drop_schedule!r} needs the run length; or set dst_end)",
            )
        ch = self.channels
        if ch is not None and ch.end is None and self.total_steps is None:
            check(
                False,
                "ChannelConfig.end",
                None,
                "an integer >= 0 (or set SparsityConfig.total_steps, its default)",
            )

    @property
    def schedule_end(self) -> int | None:
        """T of the drop schedule: ``dst_end`` if set, else ``total_steps``."""
        return self.dst_end if self.dst_end is not None else self.total_steps

    @property
    def channel_offset(self) -> int:
        ch = self.channels
        if ch is None or ch.offset is None:
            return self.update_every // 2
        return ch.offset

    @property
    def channel_end(self) -> int:
        ch = self.channels
        assert ch is not None
        end = ch.end if ch.end is not None else self.total_steps
        assert end is not None
        return end

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SparsityConfig:
        return _from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["keep_dense"] = list(self.keep_dense)
        d["channels"] = None if self.channels is None else self.channels.to_dict()
        return d
