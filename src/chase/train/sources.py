"""Where run settings come from and how they merge: presets, YAML files (``--config``),
``--set key=value`` and flags, each a nested mapping laid over the one before (see
``chase.train.config`` for the order and for what the merged tree must satisfy)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import yaml

from chase.checks import check
from chase.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """YAML's safe loader with YAML 1.2's rules where 1.1 surprises: ``5e-4`` is a number, not
    a string, and only ``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` are
    strings, which a boolean setting then refuses)."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)  # the first addition gave _Loader its own copy of the resolver table
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml_text(text: Any) -> Any:
    """Parse YAML text or a stream as every settings source does (``yaml.safe_load``, with
    YAML 1.2's numbers and booleans: ``5e-4`` is a float, only true/false are booleans)."""
    return yaml.load(text, Loader=_Loader)


def deep_merge(
    base: Mapping[str, Any], override: Mapping[str, Any], prefix: str = ""
) -> dict[str, Any]:
    """``override`` on top of ``base``; nested mappings merge, everything else replaces.

    A mapping (a section such as ``data``) is never replaced by anything but another mapping
    (merged) or ``null`` (the section's "none", e.g. ``sparsity.channels=null``: Chase's defaults;
    sections that cannot be empty reject it when the config is built): a scalar would drop every
    setting merged into it so far, so it raises ``ConfigError`` instead.
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(out.get(key), Mapping) and value is not None:
            name = f"{prefix}{key}"
            check(
                isinstance(value, Mapping),
                name,
                value,
                f"a mapping (a section: set its fields one by one, e.g. --set {name}.<field>=...)",
            )
            out[key] = deep_merge(out[key], value, f"{name}.")
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
        value = load_yaml_text(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return nested(key, value)


def nested(key: str, value: Any) -> dict[str, Any]:
    """``("optim.lr", 0.05)`` → ``{"optim": {"lr": 0.05}}``."""
    out: dict[str, Any] = {}
    put(out, key, value)
    return out


def put(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` of the nested dict ``cfg`` in place."""
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def load_yaml(path: str) -> dict[str, Any]:
    """A YAML mapping from ``path``, with one clear error for a missing or bad file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = load_yaml_text(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except (OSError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file {path} is not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    return data
