"""Third-party model definitions by name: ``tv:<name>`` (torchvision) and ``timm:<name>``.

Both packages are optional (``pip install 'chase-sparse[vision]'``). Models are always built
with random initialisation (``weights=None`` / ``pretrained=False``: nothing is downloaded),
for the dataset's class count and input channels. A missing package, a package that is
installed but fails to import, and an unknown name each raise one ``ConfigError`` line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from torch import nn

from chase.checks import did_you_mean
from chase.errors import ConfigError

InputSize = tuple[int, int, int]


@dataclass(frozen=True)
class Source:
    """A package of model definitions reachable as ``<prefix>:<name>``."""

    prefix: str
    package: str
    names: Any  # (module) -> list of model names
    build: Any  # (module, name, num_classes, in_channels, kwargs) -> nn.Module
    input_size: Any  # (module, name) -> (C, H, W)


def split_name(name: str) -> tuple[str, str] | None:
    """``("tv", "resnet50")`` for ``"tv:resnet50"``; None for a zoo name (no known prefix)."""
    prefix, sep, rest = name.partition(":")
    return (prefix, rest) if sep and prefix in SOURCES else None


def is_source_name(name: str) -> bool:
    return split_name(name) is not None


def _import(source: Source, name: str) -> ModuleType:
    try:
        return importlib.import_module(source.package)
    except ModuleNotFoundError as e:
        if e.name != source.package:
            raise ConfigError(
                f"model {name!r}: {source.package} is installed but cannot be imported: {e}"
            ) from None
        raise ConfigError(
            f"model {name!r} needs {source.package}, which is not installed "
            "(pip install 'chase-sparse[vision]')"
        ) from None
    except Exception as e:  # e.g. a torchvision build whose C extension does not load
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"model {name!r}: {source.package} is installed but cannot be imported: {first}"
        ) from None


@cache
def _known(prefix: str) -> tuple[str, ...]:
    source = SOURCES[prefix]
    return tuple(source.names(_import(source, f"{prefix}:NAME")))


def known_names(prefix: str) -> tuple[str, ...]:
    """The model names (without prefix) that ``prefix``'s package defines (``ConfigError``
    for an unknown prefix, a missing package, or one that cannot be imported)."""
    if prefix not in SOURCES:
        raise ConfigError(f"model source {prefix!r} is not allowed: one of {', '.join(SOURCES)}")
    return _known(prefix)


def resolve_source_name(name: str) -> str:
    """Check a ``prefix:model`` name: package importable, model known (ConfigError else)."""
    parts = split_name(name)
    assert parts is not None
    prefix, model = parts
    source = SOURCES[prefix]
    _import(source, name)
    known = _known(prefix)
    if model not in known:
        hint = did_you_mean(model, known)
        hint = hint.replace("'", f"'{prefix}:", 1) if hint else ""
        raise ConfigError(
            f"model: unknown {source.package} model {name!r}{hint}; "
            f"{len(known)} {source.package} models are known"
        )
    return name


def create_source_model(name: str, num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    """A randomly initialised third-party model for ``num_classes`` and ``in_channels``."""
    resolve_source_name(name)
    prefix, model = name.split(":", 1)
    source = SOURCES[prefix]
    return source.build(_import(source, name), model, num_classes, in_channels, kwargs)


def source_input_size(name: str) -> InputSize:
    """The (C, H, W) input the third-party model is designed for."""
    resolve_source_name(name)
    prefix, model = name.split(":", 1)
    source = SOURCES[prefix]
    return source.input_size(_import(source, name), model)


# -- torchvision ----------------------------------------------------------------------------

#: torchvision models that return auxiliary outputs in train mode unless told not to.
_AUX_LOGITS = ("googlenet", "inception_v3")


def _tv_names(tv: ModuleType) -> list[str]:
    return sorted(tv.models.list_models(module=tv.models))


def _tv_build(
    tv: ModuleType, model: str, num_classes: int, in_channels: int, kwargs: dict[str, Any]
) -> nn.Module:
    kw = {"weights": None, "num_classes": num_classes, **kwargs}
    if model in _AUX_LOGITS:
        kw.setdefault("aux_logits", False)
        kw.setdefault("init_weights", True)
    net = tv.models.get_model(model, **kw)
    if in_channels != 3:
        _set_input_channels(net, in_channels, model)
    return net


def _set_input_channels(net: nn.Module, in_channels: int, model: str) -> None:
    """Replace the first Conv2d (torchvision models read 3 channels) by one for ``in_channels``."""
    first = next(((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or first[1].in_channels != 3 or first[1].groups != 1:
        raise ConfigError(f"model 'tv:{model}': cannot adapt it to in_channels={in_channels}")
    name, old = first
    conv = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,  # type: ignore[arg-type]
        stride=old.stride,  # type: ignore[arg-type]
        padding=old.padding,  # type: ignore[arg-type]
        dilation=old.dilation,  # type: ignore[arg-type]
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent), child, conv)


def _tv_input_size(tv: ModuleType, model: str) -> InputSize:
    return (3, 299, 299) if model == "inception_v3" else (3, 224, 224)


# -- timm -----------------------------------------------------------------------------------


def _timm_names(timm: ModuleType) -> list[str]:
    return sorted(timm.list_models())


def _timm_build(
    timm: ModuleType, model: str, num_classes: int, in_channels: int, kwargs: dict[str, Any]
) -> nn.Module:
    kw = {"pretrained": False, "num_classes": num_classes, "in_chans": in_channels, **kwargs}
    return timm.create_model(model, **kw)


def _timm_input_size(timm: ModuleType, model: str) -> InputSize:
    size = timm.models.get_pretrained_cfg_value(model, "input_size")
    return tuple(int(s) for s in size) if size else (3, 224, 224)  # type: ignore[return-value]


SOURCES: dict[str, Source] = {
    "tv": Source("tv", "torchvision", _tv_names, _tv_build, _tv_input_size),
    "timm": Source("timm", "timm", _timm_names, _timm_build, _timm_input_size),
}
