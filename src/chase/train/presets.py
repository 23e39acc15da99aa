"""Named training presets (``src/chase/presets/presets.yaml``), resolved through ``extends``."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

from chase.checks import did_you_mean
from chase.errors import ConfigError
from chase.train.sources import deep_merge, load_yaml_text


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    text = resources.files("chase").joinpath("presets/presets.yaml").read_text(encoding="utf-8")
    data = load_yaml_text(text)
    assert isinstance(data, dict)
    return data


def list_presets() -> list[str]:
    """Public preset names (those not starting with ``_``), sorted."""
    return sorted(name for name in _raw() if not name.startswith("_"))


def preset(name: str) -> dict[str, Any]:
    """The partial run configuration of preset ``name`` with its ``extends`` chain applied."""
    raw = _raw()
    if name not in raw or name.startswith("_"):
        hint = did_you_mean(name, list_presets())
        raise ConfigError(f"unknown preset {name!r}{hint}; list them with: chase presets")
    return _resolve(name, raw, ())


def _resolve(name: str, raw: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    if name in seen:
        raise ConfigError(f"preset {name!r} extends itself through {' -> '.join(seen)}")
    entry = dict(raw[name])
    parents = entry.pop("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    merged: dict[str, Any] = {}
    for parent in parents:
        if parent not in raw:
            raise ConfigError(f"preset {name!r} extends unknown preset {parent!r}")
        merged = deep_merge(merged, _resolve(parent, raw, (*seen, name)))
    return deep_merge(merged, entry)
