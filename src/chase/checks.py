"""Value checks shared by the configuration classes. Each failure raises ``ConfigError`` with
one sentence naming the key, the value and what is allowed:
``optim.lr = -1 is not allowed: a number > 0``."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

from chase.errors import ConfigError


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


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


def check_choice(key: str, value: Any, choices: Sequence[str]) -> None:
    quoted = [repr(c) for c in choices]
    allowed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    check(isinstance(value, str) and value in choices, key, value, allowed)


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``candidates`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
