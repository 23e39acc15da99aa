"""Configuration of the sparsity engine: frozen, validated dataclasses.

Field names are a public contract: they appear in YAML presets, run folders and checkpoints.
Every invalid value raises ``ConfigError`` (a ``ValueError``) naming the field, the value
and what is allowed. Names (updater, allocation, drop schedule, channel score) are checked
against their registries when a config is built, so an entry registered later is accepted.
Errors name a field as ``SparsityConfig.density`` by default; a caller that knows the keys
by other names passes ``key_prefix`` (``from_dict(data, "sparsity.")``) and errors read
``sparsity.density = 1.5 is not allowed: ...``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from chase.checks import check, check_bool, check_choice, check_float, check_int, from_mapping
from chase.sparsity.allocation import ALLOCATIONS
from chase.sparsity.schedules import DROP_SCHEDULES
from chase.sparsity.scores import SCORES
from chase.sparsity.updaters import UPDATERS

SCOPES = ("layer", "global")


def _check_names(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        check(False, key, value, "a list of layer names or glob patterns")
    return tuple(value)


@dataclass(frozen=True)
class ChannelConfig:
    """Chase's channel learner (DESIGN §5). Steps are optimizer steps of the engine's clock.

    sparsity: S_c, final fraction of the prunable channels removed, in [0, 1).
    every: ΔT, steps between channel events.
    end: t_f, step by which S_c is reached (None: the engine's ``total_steps``).
    offset: step offset of the events (None: ``update_every // 2``, between weight updates).
    min_keep_ratio: β; a group keeps at least max(1, floor(C_g·(1 − S_c)·β)) channels.
    score: channel score, a name in ``chase.sparsity.scores.SCORES`` (``umm``, ``mask_mean``,
        ``density``, ``random``).
    prune_skip: also prune residual (skip-connection) groups.
    round_to: keep each pruned group's live channel count a multiple of this.
    exclude: layer names or globs whose channel groups are never pruned; the word ``last``
        names the last group (in module order) that would otherwise be pruned (VGG's last conv).
    shrink: after every channel event that removes channels, remove them physically from the
        live model, its optimizer state and the engine's state, so the rest of training runs
        on the narrower model. Off by default in the library (parameter shapes then change
        under the caller's loop: wrappers such as DDP must be rebuilt, see
        ``SparsityEngine.on_shrink``); the trainer turns it on for ``method: chase``.
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
    shrink: bool = False
    key_prefix: InitVar[str] = "ChannelConfig."

    def __post_init__(self, key_prefix: str) -> None:
        p = key_prefix
        check_float(f"{p}sparsity", self.sparsity, 0.0, 1.0, low_open=False, high_open=True)
        check_int(f"{p}every", self.every, 1)
        check_int(f"{p}end", self.end, 0, optional=True)
        check_int(f"{p}offset", self.offset, 0, optional=True)
        check_float(
            f"{p}min_keep_ratio", self.min_keep_ratio, 0.0, 1.0, low_open=True, high_open=False
        )
        SCORES.get(self.score, f"{p}score")
        check_bool(f"{p}prune_skip", self.prune_skip)
        check_int(f"{p}round_to", self.round_to, 1)
        object.__setattr__(self, "exclude", _check_names(f"{p}exclude", self.exclude))
        check_bool(f"{p}shrink", self.shrink)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "ChannelConfig.") -> ChannelConfig:
        """Build from a mapping; ``prefix`` names the keys in errors (``"sparsity.channels."``)."""
        return from_mapping(cls, data, prefix)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["exclude"] = list(self.exclude)
        return d


@dataclass(frozen=True)
class SparsityConfig:
    """Dynamic sparse training (DESIGN §3–4).

    density: fraction d of maskable weights that are active; budget B = round(d·N).
    allocation: per-layer densities at initialisation, a name in
        ``chase.sparsity.allocation.ALLOCATIONS`` (``uniform``, ``er``, ``erk``).
    erk_power: exponent applied to the allocation's layer scores (1 = the published formula).
    keep_dense: layer names or globs kept fully dense inside the budget; also ``first``, ``last``.
    updater: topology updater, a name in ``chase.sparsity.UPDATERS`` (``static``, ``set``,
        ``rigl``, ``snfs``, ``mest``); it also checks the settings it needs.
    scope: ``layer`` (every layer keeps its count) or ``global`` (one ranking over layers).
    update_every: ΔT_p, steps between topology updates.
    drop_fraction: ζ₀, fraction of active weights dropped at an update at step 0.
    drop_fraction_end: value the cosine/linear drop schedule decays to at its end.
    drop_schedule: decay of ζ(t) over [0, T], T = ``dst_end`` if set, else ``total_steps``: a
        name in ``chase.sparsity.schedules.DROP_SCHEDULES`` (``cosine``, ``constant``, ``linear``).
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
    key_prefix: InitVar[str] = "SparsityConfig."

    def __post_init__(self, key_prefix: str) -> None:
        p = key_prefix
        check_float(f"{p}density", self.density, 0.0, 1.0, low_open=True, high_open=False)
        ALLOCATIONS.get(self.allocation, f"{p}allocation")
        check_float(f"{p}erk_power", self.erk_power, 0.0, 10.0, low_open=True, high_open=False)
        object.__setattr__(self, "keep_dense", _check_names(f"{p}keep_dense", self.keep_dense))
        updater = UPDATERS.get(self.updater, f"{p}updater")
        check_choice(f"{p}scope", self.scope, SCOPES)
        check_int(f"{p}update_every", self.update_every, 1)
        for key in ("drop_fraction", "drop_fraction_end", "mest_overshoot"):
            check_float(f"{p}{key}", getattr(self, key), 0.0, 1.0, low_open=False, high_open=False)
        DROP_SCHEDULES.get(self.drop_schedule, f"{p}drop_schedule")
        check_int(f"{p}dst_end", self.dst_end, 0, optional=True)
        check_int(f"{p}mest_end", self.mest_end, 0, optional=True)
        check_float(
            f"{p}snfs_momentum", self.snfs_momentum, 0.0, 1.0, low_open=False, high_open=True
        )
        check_int(f"{p}total_steps", self.total_steps, 1, optional=True)
        check_int(f"{p}seed", self.seed, 0)
        if isinstance(self.channels, Mapping):
            channels = ChannelConfig.from_dict(self.channels, f"{p}channels.")
            object.__setattr__(self, "channels", channels)
        if self.channels is not None and not isinstance(self.channels, ChannelConfig):
            check(False, f"{p}channels", self.channels, "a ChannelConfig, a mapping or None")
        updater.check_config(self, p)
        ch = self.channels
        if ch is not None and ch.end is None and self.total_steps is None:
            check(
                False,
                f"{p}channels.end",
                None,
                f"an integer >= 0 (or set {p}total_steps, its default)",
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
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "SparsityConfig.") -> SparsityConfig:
        """Build from a mapping; ``prefix`` names the keys in errors (``"sparsity."``)."""
        return from_mapping(cls, data, prefix)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["keep_dense"] = list(self.keep_dense)
        d["channels"] = None if self.channels is None else self.channels.to_dict()
        return d
