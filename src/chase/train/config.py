"""The run configuration: one frozen, validated tree, dumped into every run folder.

Sources merge in this order, later ones winning: defaults < preset < YAML file (``--config``)
< ``--set key=value`` < command-line flags. Step-valued sparsity knobs (``update_every``,
``dst_end``, ``mest_end``, ``channels.every/end/offset``) accept an integer number of optimizer
steps or a string such as ``"130ep"`` (epochs), resolved once the data size is known.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chase.checks import (
    check,
    check_bool,
    check_choice,
    check_float,
    check_int,
    did_you_mean,
    is_integer,
    is_number,
)
from chase.errors import ConfigError
from chase.sparsity.config import UPDATERS, ChannelConfig, SparsityConfig

METHODS = ("dense", "static", "set", "rigl", "snfs", "mest", "chase")
STEP_FIELDS = ("update_every", "dst_end", "mest_end", "total_steps")
CHANNEL_STEP_FIELDS = ("every", "end", "offset")
_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*ep(?:ochs?)?\s*$")


DEVICES = "'auto', 'cpu', 'cuda' or 'cuda:N'"
_DEVICE = re.compile(r"auto|cpu|cuda(?::(?:0|[1-9][0-9]*))?")


def check_device(value: Any, key: str = "device") -> str:
    """``value`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; else ``ConfigError`` naming
    ``key`` (a config key, or a flag such as ``--device``)."""
    if isinstance(value, str) and _DEVICE.fullmatch(value):
        return value
    shown = f"{key} {value!r}" if key.startswith("--") else f"{key} = {value!r}"
    raise ConfigError(f"{shown} is not allowed: {DEVICES}")


def _check_dataset(key: str, value: Any, real: bool = False) -> None:
    """A dataset name or alias (``real``: not ``synthetic``), as ``build_data`` accepts it."""
    from chase.data.specs import SYNTHETIC, resolve_dataset

    check(isinstance(value, str) and value.strip() != "", key, value, "a dataset name")
    if resolve_dataset(value, key) == SYNTHETIC and real:
        check(False, key, value, "a real dataset for synthetic data to imitate")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is batched (``batch_size`` is the global batch)."""

    name: str = "synthetic"
    dir: str | None = None
    batch_size: int = 128
    eval_batch_size: int | None = None
    subset: int | None = None
    val_split: float = 0.0
    augment: bool = True
    workers: int = 4
    synthetic_like: str = "cifar10"
    synthetic_size: int | None = None
    image_size: int | None = None

    def __post_init__(self) -> None:
        _check_dataset("data.name", self.name)
        if isinstance(self.dir, os.PathLike):
            object.__setattr__(self, "dir", os.fspath(self.dir))
        check(
            self.dir is None or (isinstance(self.dir, str) and self.dir != ""),
            "data.dir",
            self.dir,
            "a folder path or null",
        )
        check_int("data.batch_size", self.batch_size, 1)
        check_int("data.eval_batch_size", self.eval_batch_size, 1, optional=True)
        check_int("data.subset", self.subset, 1, optional=True)
        check(
            (is_integer(self.val_split) and self.val_split >= 0)
            or (isinstance(self.val_split, float) and 0 <= self.val_split < 1),
            "data.val_split",
            self.val_split,
            "a fraction in [0, 1) or a count of examples (an integer >= 0)",
        )
        check_bool("data.augment", self.augment)
        check_int("data.workers", self.workers, 0)
        _check_dataset("data.synthetic_like", self.synthetic_like, real=True)
        check_int("data.synthetic_size", self.synthetic_size, 1, optional=True)
        check_int("data.image_size", self.image_size, 1, optional=True)


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
                object.__setattr__(self, key, _build(cls, value, f"{key}."))
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
        _check_sparsity_section(self.sparsity)
        _check_sparsity_values(self.sparsity, self.method)

    # -- conversion --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        return _build(cls, data, "")

    def sparsity_config(self, steps_per_epoch: int, total_steps: int) -> SparsityConfig | None:
        """The engine's config for this run's method, with epoch values turned into steps."""
        if self.method == "dense":
            return None
        return _engine_config(self.sparsity, self.method, steps_per_epoch, total_steps)


_ENGINE_KEYS = (("SparsityConfig.", "sparsity."), ("ChannelConfig.", "sparsity.channels."))


@contextlib.contextmanager
def _run_keys() -> Iterator[None]:
    """Name bad engine values by their run-config keys (``sparsity.density``), not by the
    engine's class fields (``SparsityConfig.density``)."""
    try:
        yield
    except ConfigError as exc:
        text = str(exc)
        for owner, key in _ENGINE_KEYS:
            if text.startswith(owner):
                raise ConfigError(key + text.removeprefix(owner)) from None
        raise


def _engine_config(
    section: Mapping[str, Any], method: str, steps_per_epoch: int, total_steps: int
) -> SparsityConfig:
    raw = copy.deepcopy(dict(section))
    raw.setdefault("total_steps", total_steps)
    for key in STEP_FIELDS:
        if key in raw:
            raw[key] = to_steps(raw[key], steps_per_epoch, f"sparsity.{key}")
    if method == "chase":
        raw["channels"] = _channel_steps(raw.get("channels"), steps_per_epoch)
        raw.setdefault("updater", "mest")
    else:
        raw["channels"] = None
        raw["updater"] = method
    with _run_keys():
        return SparsityConfig.from_dict(raw)


def _channel_steps(channels: Any, steps_per_epoch: int) -> dict[str, Any]:
    check(
        channels is None or isinstance(channels, Mapping),
        "sparsity.channels",
        channels,
        "a mapping of channel settings",
    )
    out = dict(channels or {})
    for key in CHANNEL_STEP_FIELDS:
        if key in out:
            out[key] = to_steps(out[key], steps_per_epoch, f"sparsity.channels.{key}")
    return out


def _check_sparsity_values(section: Mapping[str, Any], method: str) -> None:
    """Fail early on bad engine values, also on those this method ignores: a dense run ignores
    the section, only ``chase`` reads ``channels`` and ``updater`` (others use their own)."""
    _engine_config(section, "static" if method == "dense" else method, 100, 100)
    if method != "chase":
        if "updater" in section:
            check_choice("sparsity.updater", section["updater"], UPDATERS)
        with _run_keys():
            ChannelConfig.from_dict(_channel_steps(section.get("channels"), 100))


def _check_model(name: Any) -> None:
    """A registered model name or alias (``ConfigError`` with the known names otherwise)."""
    from chase.models import resolve_name

    check(isinstance(name, str) and name.strip() != "", "model", name, "a model name")
    resolve_name(name)


def to_steps(value: Any, steps_per_epoch: int, key: str) -> int | None:
    """An integer step count, or ``"<n>ep"`` epochs converted to steps (rounded)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        match = _EPOCHS.match(value)
        if match:
            return round(float(match.group(1)) * steps_per_epoch)
    raise ConfigError(
        f"{key} = {value!r} is not allowed: an integer number of steps or "
        "a string like '30ep' (epochs)"
    )


def _check_sparsity_section(section: Mapping[str, Any]) -> None:
    if not isinstance(section, Mapping):
        raise ConfigError(f"sparsity = {section!r} is not allowed: a mapping of engine fields")
    known = [f.name for f in dataclasses.fields(SparsityConfig)]
    for key in section:
        if key not in known:
            raise ConfigError(_unknown(f"sparsity.{key}", [f"sparsity.{k}" for k in known]))
    channels = section.get("channels")
    if isinstance(channels, Mapping):
        known_ch = [f.name for f in dataclasses.fields(ChannelConfig)]
        for key in channels:
            if key not in known_ch:
                raise ConfigError(
                    _unknown(
                        f"sparsity.channels.{key}", [f"sparsity.channels.{k}" for k in known_ch]
                    )
                )


def _unknown(key: str, known: list[str]) -> str:
    return f"unknown setting {key!r}{did_you_mean(key, known)}"


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} = {data!r} is not allowed: a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(_unknown(prefix + key, [prefix + k for k in fields]))
        sub = _NESTED.get(fields[key].name) if cls is RunConfig else None
        kwargs[key] = _build(sub, value, f"{prefix}{key}.") if sub is not None else value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {exc}") from None


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
