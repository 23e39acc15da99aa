"""One registry of named model constructors, so configs and the CLI build models by name.

Every constructor takes ``num_classes`` and ``in_channels`` plus its own keyword arguments and
returns a freshly initialised ``nn.Module``. Aliases keep the spellings used by the paper's
reference code working (``cifar_resnet_20``, ``ResNet50``, ...).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from torch import nn

from chase.checks import did_you_mean
from chase.errors import ConfigError
from chase.models import sources

ModelFn = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFn)

InputSize = tuple[int, int, int]

_MODELS: dict[str, ModelFn] = {}
_ALIASES: dict[str, str] = {}
_INPUT_SIZES: dict[str, InputSize] = {}


def register_model(
    name: str, aliases: Iterable[str] = (), *, input_size: InputSize = (3, 32, 32)
) -> Callable[[F], F]:
    """Decorator that registers a model constructor under ``name`` and optional ``aliases``.

    ``input_size`` (C, H, W) is the input the model is designed for; tests and benchmarks
    read it with ``default_input_size`` so a new model is exercised without extra code.
    """
    aliases = tuple(aliases)

    def decorator(fn: F) -> F:
        for key in (name, *aliases):
            if key in _MODELS or key in _ALIASES:
                raise ValueError(f"model name {key!r} is already registered")
        _MODELS[name] = fn
        _INPUT_SIZES[name] = input_size
        for alias in aliases:
            _ALIASES[alias] = name
        return fn

    return decorator


def list_models() -> list[str]:
    """Canonical names of all registered models, sorted."""
    return sorted(_MODELS)


def list_aliases() -> dict[str, str]:
    """Mapping of every alias to its canonical model name."""
    return dict(_ALIASES)


def default_input_size(name: str) -> InputSize:
    """The (C, H, W) input a model (or alias) is designed for, e.g. (3, 224, 224)."""
    if sources.is_source_name(name):
        return sources.source_input_size(name)
    return _INPUT_SIZES[resolve_name(name)]


def default_num_classes(name: str) -> int:
    """The ``num_classes`` a registered model's constructor defaults to (10 for the CIFAR
    models, 1000 for the ImageNet ones; 10 when it has no default)."""
    fn = _MODELS[resolve_name(name)]
    default = inspect.signature(fn).parameters["num_classes"].default
    return default if isinstance(default, int) else 10


def resolve_name(name: str) -> str:
    """Return the canonical model name for ``name`` (a canonical name or an alias).

    Third-party names (``tv:resnet50``, ``timm:efficientnet_b0``) are checked against their
    package (``chase.models.sources``). Raises ``ConfigError`` naming the value, the known
    models and the closest match.
    """
    if sources.is_source_name(name):
        return sources.resolve_source_name(name)
    if name in _MODELS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    known = list_models()
    hint = did_you_mean(name, known + sorted(_ALIASES))
    raise ConfigError(
        f"model: unknown name {name!r}{hint}; known models: {', '.join(known)} "
        f"(or {' / '.join(f'{p}:NAME' for p in sources.SOURCES)})"
    )


def create_model(
    name: str, num_classes: int = 10, in_channels: int = 3, **kwargs: Any
) -> nn.Module:
    """Build the registered model ``name`` (or alias, or ``tv:``/``timm:`` name) for
    ``num_classes`` and ``in_channels``; third-party models get random initialisation."""
    if num_classes < 1:
        raise ConfigError(f"model.num_classes: must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ConfigError(f"model.in_channels: must be >= 1, got {in_channels}")
    if sources.is_source_name(name):
        return sources.create_source_model(name, num_classes, in_channels, **kwargs)
    fn = _MODELS[resolve_name(name)]
    return fn(num_classes=num_classes, in_channels=in_channels, **kwargs)
