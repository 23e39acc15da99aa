"""The run configuration: one frozen, validated tree, dumped into every run folder.

Sources merge in this order, later ones winning: defaults < preset < YAML file (``--config``)
< ``--set key=value`` < command-line flags. Step-valued sparsity knobs (``update_every``,
``dst_end``, ``mest_end``, ``channels.every/end/offset``) accept an integer number of optimizer
steps or a string such as ``"130ep"`` (epochs), resolved once the data size is known.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from chase.errors import ConfigError
from chase.sparsity.config import ChannelConfig, SparsityConfig

METHODS = ("dense", "static", "set", "rigl", "snfs", "mest", "chase")
STEP_FIELDS = ("update_every", "dst_end", "mest_end", "total_steps")
CHANNEL_STEP_FIELDS = ("every", "end", "offset")
_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*ep(?:ochs?)?\s*$")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
        _check(
            isinstance(self.batch_size, int) and self.batch_size >= 1,
            "data.batch_size",
            self.batch_size,
            "an integer >= 1",
        )
        _check(
            self.subset is None or (isinstance(self.subset, int) and self.subset >= 1),
            "data.subset",
            self.subset,
            "an integer >= 1 or null",
        )
        _check(
            _number(self.val_split) and self.val_split >= 0,
            "data.val_split",
            self.val_split,
            "a fraction in [0, 1) or a count of examples",
        )
        _check(
            isinstance(self.workers, int) and self.workers >= 0,
            "data.workers",
            self.workers,
            "an integer >= 0",
        )


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
        _check(self.name in ("sgd", "adamw"), "optim.name", self.name, "'sgd' or 'adamw'")
        _check(_number(self.lr) and self.lr > 0, "optim.lr", self.lr, "a number > 0")
        _check(
            _number(self.momentum) and 0 <= self.momentum < 1,
            "optim.momentum",
            self.momentum,
            "a number in [0, 1)",
        )
        _check(
            _number(self.weight_decay) and self.weight_decay >= 0,
            "optim.weight_decay",
            self.weight_decay,
            "a number >= 0",
        )
        _check(
            _number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
            "optim.label_smoothing",
            self.label_smoothing,
            "a number in [0, 1)",
        )
        object.__setattr__(self, "betas", tuple(self.betas))


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
        _check(
            self.name in ("multistep", "cosine", "constant"),
            "schedule.name",
            self.name,
            "'multistep', 'cosine' or 'constant'",
        )
        ms = tuple(self.milestones)
        _check(
            all(_number(m) and 0 < m < 1 for m in ms),
            "schedule.milestones",
            list(ms),
            "fractions of the run in (0, 1)",
        )
        object.__setattr__(self, "milestones", ms)
        _check(
            _number(self.warmup_epochs) and self.warmup_epochs >= 0,
            "schedule.warmup_epochs",
            self.warmup_epochs,
            "a number >= 0",
        )


@dataclass(frozen=True)
class BenchConfig:
    """The dense-vs-slim speed measurement at the end of a run (0 repeats: skip it)."""

    batch_sizes: tuple[int, ...] = (1, 64)
    warmup: int = 3
    repeats: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))


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
    recalibrate_bn_steps: int | None = 50
    bench: BenchConfig = field(default_factory=BenchConfig)

    def __post_init__(self) -> None:
        _check(self.method in METHODS, "method", self.method, "one of " + ", ".join(METHODS))
        _check(_number(self.epochs) and self.epochs > 0, "epochs", self.epochs, "a number > 0")
        _check(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer >= 0")
        _check(self.amp in ("none", "bf16", "fp16"), "amp", self.amp, "'none', 'bf16' or 'fp16'")
        for key in ("eval_every", "log_every", "checkpoint_every"):
            value = getattr(self, key)
            _check(isinstance(value, int) and value >= 1, key, value, "an integer >= 1")
        _check_sparsity_section(self.sparsity)
        self.sparsity_config(steps_per_epoch=100, total_steps=100)  # fail early on bad values

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
        raw = copy.deepcopy(dict(self.sparsity))
        raw.setdefault("total_steps", total_steps)
        for key in STEP_FIELDS:
            if key in raw:
                raw[key] = to_steps(raw[key], steps_per_epoch, f"sparsity.{key}")
        channels = raw.get("channels")
        if self.method == "chase":
            channels = dict(channels or {})
            for key in CHANNEL_STEP_FIELDS:
                if key in channels:
                    channels[key] = to_steps(
                        channels[key], steps_per_epoch, f"sparsity.channels.{key}"
                    )
            raw["channels"] = channels
            raw.setdefault("updater", "mest")
        else:
            raw["channels"] = None
            raw["updater"] = self.method
        return SparsityConfig.from_dict(raw)


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
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown setting {key!r}{hint}"


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


# -- merging sources -----------------------------------------------------------------------
def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested mappings merge, everything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_assignment(text: str) -> dict[str, Any]:
    """``"optim.lr=0.05"`` → ``{"optim": {"lr": 0.05}}``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r} is not allowed: write key=value, e.g. optim.lr=0.05")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return nested(key, value)


def nested(key: str, value: Any) -> dict[str, Any]:
    """``("optim.lr", 0.05)`` → ``{"optim": {"lr": 0.05}}``."""
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_yaml(path: str) -> dict[str, Any]:
    """A YAML mapping from ``path``, with one clear error for a missing or bad file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file {path} is not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    return data


def steps_for(epochs: float, steps_per_epoch: int) -> int:
    """Total optimizer steps of a run of ``epochs`` (fractional epochs allowed)."""
    return max(1, math.ceil(epochs * steps_per_epoch))
