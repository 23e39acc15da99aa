"""The run configuration: one frozen, validated tree, dumped into every run folder.

Sources merge in this order, later ones winning: defaults < preset < YAML file (``--config``)
< ``--set key=value`` < command-line flags. Step-valued sparsity knobs (``update_every``,
``dst_end``, ``mest_end``, ``total_steps``, ``channels.every/end/offset``) accept an integer
number of optimizer steps, a string such as ``"130ep"`` (epochs) or ``"80%"`` (a percentage of
the run's steps, so that the setting follows ``epochs``), resolved once the data size is known.

**``method`` and the ``sparsity`` section** (one rule, :func:`_engine_config`):

- ``dense``: no sparsity engine; the section is still checked, and otherwise unused.
- ``chase``: dynamic sparse training with ``sparsity.updater`` (default ``mest``) plus the
  channel learner ``sparsity.channels`` (absent or null: the default channel settings, except
  that ``sparsity.channels.shrink`` defaults to true in a run: removed channels leave the
  model at once).
- any registered updater name (``static``, ``set``, ``rigl``, ``snfs``, ``mest``, ...): plain
  DST with that updater. ``sparsity.updater`` may repeat it; naming another updater is a
  contradiction and a ``ConfigError``. ``sparsity.channels`` is checked but unused, so a
  baseline preset can extend a Chase preset by changing ``method`` alone.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chase.checks import (
    check,
    check_bool,
    check_choice,
    check_float,
    check_int,
    from_mapping,
    is_integer,
    is_number,
    not_allowed,
)
from chase.data.config import DataConfig
from chase.errors import ConfigError
from chase.sparsity import UPDATERS, ChannelConfig, SparsityConfig


class _Methods(Collection[str]):
    """``dense``, every registered updater, ``chase``: read from the updater registry on each
    use, so an updater registered after import is a method too."""

    def _names(self) -> tuple[str, ...]:
        return ("dense", *UPDATERS.names(), "chase")

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __repr__(self) -> str:
        return repr(self._names())


#: The values of ``method`` (a live view of the updater registry).
METHODS: Collection[str] = _Methods()
STEP_FIELDS = ("update_every", "dst_end", "mest_end", "total_steps")
CHANNEL_STEP_FIELDS = ("every", "end", "offset")
_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*ep(?:ochs?)?\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


DEVICES = "'auto', 'cpu', 'cuda' or 'cuda:N'"
_DEVICE = re.compile(r"auto|cpu|cuda(?::(?:0|[1-9][0-9]*))?")


def check_device(value: Any, key: str = "device") -> str:
    """``value`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; else ``ConfigError`` naming
    ``key`` (a config key, or a flag such as ``--device``)."""
    if isinstance(value, str) and _DEVICE.fullmatch(value):
        return value
    shown = f"{key} {value!r}" if key.startswith("--") else f"{key} = {value!r}"
    raise ConfigError(f"{shown} is not allowed: {DEVICES}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer: SGD (optionally Nesterov) or AdamW; label smoothing belongs to the loss."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = True
    label_smoothing: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        check_choice("optim.name", self.name, ("sgd", "adamw"))
        check_float("optim.lr", self.lr, 0, low_open=True, high_open=True)
        check_float("optim.momentum", self.momentum, 0, 1, low_open=False, high_open=True)
        check_bool("optim.nesterov", self.nesterov)
        if self.name == "sgd" and self.nesterov:
            check(
                self.momentum > 0,
                "optim.nesterov",
                self.nesterov,
                f"false with optim.momentum = {self.momentum!r} (Nesterov needs momentum > 0)",
            )
        check_float("optim.weight_decay", self.weight_decay, 0, low_open=False, high_open=True)
        check_bool("optim.decay_norm_and_bias", self.decay_norm_and_bias)
        check_float(
            "optim.label_smoothing", self.label_smoothing, 0, 1, low_open=False, high_open=True
        )
        betas = self.betas
        check(
            isinstance(betas, (list, tuple))
            and len(betas) == 2
            and all(is_number(b) and 0 <= b < 1 for b in betas),
            "optim.betas",
            betas,
            "two numbers in [0, 1), e.g. [0.9, 0.999]",
        )
        object.__setattr__(self, "betas", tuple(betas))


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, evaluated per optimizer step.

    ``multistep``: multiply by ``gamma`` at each fraction of the run in ``milestones``;
    ``cosine``: cosine decay to 0 after ``warmup_epochs`` of linear warm-up; ``constant``.
    """

    name: str = "multistep"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_epochs: float = 0.0

    def __post_init__(self) -> None:
        check_choice("schedule.name", self.name, ("multistep", "cosine", "constant"))
        ms = self.milestones
        check(
            isinstance(ms, (list, tuple)) and all(is_number(m) and 0 < m < 1 for m in ms),
            "schedule.milestones",
            list(ms) if isinstance(ms, tuple) else ms,
            "a list of fractions of the run in (0, 1)",
        )
        object.__setattr__(self, "milestones", tuple(ms))
        check_float("schedule.gamma", self.gamma, 0, 1, low_open=True, high_open=False)
        check_float("schedule.warmup_epochs", self.warmup_epochs, 0, low_open=False, high_open=True)


@dataclass(frozen=True)
class BenchConfig:
    """The dense-vs-slim speed measurement at the end of a run (0 repeats: skip it)."""

    batch_sizes: tuple[int, ...] = (1, 64)
    warmup: int = 3
    repeats: int = 10

    def __post_init__(self) -> None:
        sizes = self.batch_sizes
        check(
            isinstance(sizes, (list, tuple)) and len(sizes) > 0
            and all(is_integer(b) and b >= 1 for b in sizes),
            "bench.batch_sizes",
            list(sizes) if isinstance(sizes, tuple) else sizes,
            "a non-empty list of integers >= 1, e.g. [1, 64] (bench.repeats = 0 skips the bench)",
        )  # fmt: skip
        object.__setattr__(self, "batch_sizes", tuple(sizes))
        check_int("bench.warmup", self.warmup, 0)
        check_int("bench.repeats", self.repeats, 0)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run."""

    model: str = "cifar_resnet20"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    method: str = "chase"
    epochs: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    sparsity: dict[str, Any] = field(default_factory=dict)
    eval_every: int = 1
    log_every: int = 20
    checkpoint_every: int = 500
    amenable_every: int = 500  # steps between `amenable` records in metrics.jsonl; 0: none
    recalibrate_bn_steps: int | None = 50
    bench: BenchConfig = field(default_factory=BenchConfig)

    def __post_init__(self) -> None:
        _check_model(self.model)
        check(
            isinstance(self.model_kwargs, Mapping)
            and all(isinstance(k, str) for k in self.model_kwargs),
            "model_kwargs",
            self.model_kwargs,
            "a mapping of keyword arguments of the model's constructor",
        )
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        check_choice("method", self.method, METHODS)
        check_float("epochs", self.epochs, 0, low_open=True, high_open=True)
        check(  # the data seeds are mixed as signed 64-bit integers
            is_integer(self.seed) and 0 <= self.seed < 2**63,
            "seed",
            self.seed,
            "an integer >= 0 and < 2**63",
        )
        check_device(self.device)
        check_choice("amp", self.amp, ("none", "bf16", "fp16"))
        check_bool("channels_last", self.channels_last)
        for key, cls in _NESTED.items():
            value = getattr(self, key)
            if isinstance(value, Mapping):
                object.__setattr__(self, key, from_mapping(cls, value, f"{key}."))
            check(isinstance(getattr(self, key), cls), key, value, "a mapping of settings")
        for key in ("eval_every", "log_every", "checkpoint_every"):
            check_int(key, getattr(self, key), 1)
        check_int("amenable_every", self.amenable_every, 0)
        check(
            self.recalibrate_bn_steps is None
            or (is_integer(self.recalibrate_bn_steps) and self.recalibrate_bn_steps >= 0),
            "recalibrate_bn_steps",
            self.recalibrate_bn_steps,
            "an integer >= 0 (0: no recalibration) or null (one epoch of training batches)",
        )
        # a placeholder data size, large so that no epoch or percentage rounds to 0 steps here
        # (the run's real size is checked again when it starts)
        _engine_config(self.sparsity, self.method, 1_000, 1_000_000)

    # -- conversion --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        return from_mapping(cls, data)

    def sparsity_config(self, steps_per_epoch: int, total_steps: int) -> SparsityConfig | None:
        """The engine's config for this run's method, with epoch values turned into steps."""
        return _engine_config(self.sparsity, self.method, steps_per_epoch, total_steps)


def _engine_config(
    section: Any, method: str, steps_per_epoch: int, total_steps: int
) -> SparsityConfig | None:
    """The one reading of a run's ``sparsity`` section: the engine's config for ``method``
    (None for ``dense``), epoch values turned into steps, every value checked (also those the
    method does not use) and named by its run key (``sparsity.density``). The rule relating
    ``method`` to ``sparsity.updater`` and ``sparsity.channels`` is in the module docstring.
    """
    check(isinstance(section, Mapping), "sparsity", section, "a mapping of engine fields")
    raw = copy.deepcopy(dict(section))
    raw.setdefault("total_steps", total_steps)
    for key in STEP_FIELDS:
        if key in raw:
            raw[key] = to_steps(raw[key], steps_per_epoch, f"sparsity.{key}", total_steps)
    channels = _channel_steps(raw.get("channels"), steps_per_epoch, total_steps)
    if method == "chase":
        channels.setdefault("shrink", True)  # the trainer trains the narrowing model itself
        raw["channels"] = channels
        raw.setdefault("updater", "mest")
    else:  # the channel settings are unused here, but a typo in them is still an error
        ChannelConfig.from_dict(channels, "sparsity.channels.")
        raw["channels"] = None
        if "updater" in raw:
            UPDATERS.get(raw["updater"], "sparsity.updater")
            if method != "dense" and raw["updater"] != method:
                raise not_allowed(
                    "sparsity.updater",
                    raw["updater"],
                    f"{method!r} or absent, since method {method!r} names the updater "
                    "(only method 'chase' reads sparsity.updater)",
                )
        raw["updater"] = "static" if method == "dense" else method
    config = SparsityConfig.from_dict(raw, "sparsity.")
    return None if method == "dense" else config


def _channel_steps(channels: Any, steps_per_epoch: int, total_steps: int) -> dict[str, Any]:
    check(
        channels is None or isinstance(channels, Mapping),
        "sparsity.channels",
        channels,
        "a mapping of channel settings",
    )
    out = dict(channels or {})
    for key in CHANNEL_STEP_FIELDS:
        if key in out:
            out[key] = to_steps(out[key], steps_per_epoch, f"sparsity.channels.{key}", total_steps)
    return out


def _check_model(name: Any) -> None:
    """A registered model name or alias (``ConfigError`` with the known names otherwise)."""
    from chase.models import resolve_name

    check(isinstance(name, str) and name.strip() != "", "model", name, "a model name")
    resolve_name(name)


def to_steps(value: Any, steps_per_epoch: int, key: str, total_steps: int) -> int | None:
    """An integer step count; ``"<n>ep"``: n epochs in steps; ``"<p>%"``: p percent of the
    run's ``total_steps`` (both rounded to the nearest step)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        match = _EPOCHS.match(value)
        if match:
            return round(float(match.group(1)) * steps_per_epoch)
        match = _PERCENT.match(value)
        if match and float(match.group(1)) <= 100:
            steps = round(float(match.group(1)) / 100 * total_steps)
            if steps == 0 and float(match.group(1)) > 0:
                raise ConfigError(
                    f"{key} = {value!r} is not allowed here: it is 0 steps of this "
                    f"{total_steps}-step run; give a larger percentage or a number of steps"
                )
            return steps
    raise ConfigError(
        f"{key} = {value!r} is not allowed: an integer number of steps, "
        "a string like '30ep' (epochs) or one like '80%' (of the run's steps, at most 100%)"
    )


_NESTED: dict[str, type] = {
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "bench": BenchConfig,
}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def steps_for(epochs: float, steps_per_epoch: int) -> int:
    """Total optimizer steps of a run of ``epochs`` (fractional epochs allowed)."""
    return max(1, math.ceil(epochs * steps_per_epoch))
