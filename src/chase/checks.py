"""Value checks shared by the configuration classes. Each failure raises ``ConfigError`` with
one sentence naming the key, the value and what is allowed:
``optim.lr = -1 is not allowed: a number > 0``; an unknown key reads
``unknown setting 'optim.lrr' (did you mean 'optim.lr'?)``. :func:`state_version` is the one
check of a saved sub-state's layout version (``CheckpointError``)."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from chase.errors import CheckpointError, ConfigError

T = TypeVar("T")


def not_allowed(key: str, value: Any, allowed: str) -> ConfigError:
    """The error for ``key = value``, saying what is allowed instead (for callers that raise)."""
    return ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise not_allowed(key, value, allowed)


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(key: str, value: Any, minimum: int, optional: bool = False) -> None:
    ok = (optional and value is None) or (is_integer(value) and value >= minimum)
    check(
        ok, key, value, f"an integer >= {minimum}" + (" or None (YAML: null)" if optional else "")
    )


def check_float(
    key: str, value: Any, low: float, high: float = math.inf, *, low_open: bool, high_open: bool
) -> None:
    """A finite number in the interval from ``low`` to ``high`` (``inf``: no upper bound)."""
    ok = is_number(value) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if math.isinf(high):
        allowed = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        lb, hb = ("(" if low_open else "["), (")" if high_open else "]")
        allowed = f"a number in {lb}{low:g}, {high:g}{hb}"
    check(ok, key, value, allowed)


def check_bool(key: str, value: Any) -> None:
    check(isinstance(value, bool), key, value, "true or false")


def one_of(choices: Iterable[str]) -> str:
    """``'a', 'b' or 'c'``: the choices quoted, for an error message."""
    quoted = [repr(c) for c in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def check_choice(key: str, value: Any, choices: Collection[str]) -> None:
    check(isinstance(value, str) and value in choices, key, value, one_of(choices))


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``candidates`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_setting(key: str, known: Sequence[str]) -> ConfigError:
    """``unknown setting 'sparsity.densty' (did you mean 'sparsity.density'?)``."""
    return ConfigError(f"unknown setting {key!r}{did_you_mean(key, known)}")


def from_mapping(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build the config dataclass ``cls`` from a mapping of its fields: the one door for every
    config class (``RunConfig`` and its sections, ``SparsityConfig``, ``ChannelConfig``).

    ``prefix`` is how the caller names the mapping's keys (``"sparsity."``; ``""`` at the top):
    a key that is not a field fails as ``unknown setting 'sparsity.densty' (did you mean
    'sparsity.density'?)`` and a value that is not a mapping as ``sparsity = 5 is not allowed:
    a mapping``. A class whose ``__init__`` takes ``key_prefix`` (an ``InitVar``) gets ``prefix``
    too, so its value checks name the same keys (``sparsity.density = 1.5 is not allowed: ...``).
    """
    if not isinstance(data, Mapping):
        raise not_allowed(prefix.rstrip(".") or "config", data, "a mapping")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            raise unknown_setting(f"{prefix}{key}", [prefix + n for n in names])
    kwargs = dict(data)
    if prefix and "key_prefix" in inspect.signature(cls).parameters:
        kwargs["key_prefix"] = prefix
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {exc}") from None


def state_version(state: Any, reads: Sequence[int], what: str) -> int:
    """The layout version of a saved ``state`` mapping, one of ``reads``; ``CheckpointError``
    naming ``what`` otherwise. A state without a ``version`` key was written before sub-states
    carried one and reads as version 1 (the layout they had then)."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{what} is not a mapping but {type(state).__name__}")
    version = state.get("version", 1)
    if version not in reads:
        raise CheckpointError(
            f"{what} has version {version!r}, this version of chase reads "
            + " or ".join(str(v) for v in reads)
        )
    return int(version)
