"""Named entries behind one door: the only lists of names in the engine.

Updaters, channel scores, allocations and drop schedules each live in one ``Registry``. Configs
validate names against it when they are built, the CLI and ``train.config.METHODS`` read it when
they check, and the contract tests are parametrised over it, so a new entry is one function (or
class) plus one ``@REGISTRY.register("name")`` line, usable and tested without editing a list.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from chase.checks import check, did_you_mean, not_allowed, one_of
from chase.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → entry, in registration order; ``kind`` names the entries in messages ("updater").

    Iterating gives the names, ``name in registry`` tests one, ``registry[name]`` (or
    :meth:`get`) looks one up and raises ``ConfigError`` with the known names and the closest
    match for an unknown one.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator adding its argument under ``name`` and returning it unchanged.

        ``@REG.register("name")`` or ``REG.register("name")(obj)``. A name that is taken is an
        error unless ``replace=True`` says that replacing it is meant.
        """
        check(
            isinstance(name, str) and name != "" and name.strip() == name,
            f"{self.kind} name",
            name,
            "a non-empty string without surrounding spaces",
        )

        def add(entry: T) -> T:
            if name in self._entries and not replace:
                raise ConfigError(
                    f"{self.kind} {name!r} is already registered; pass replace=True to replace it"
                )
            self._entries[name] = entry
            return entry

        return add

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its entry (``ConfigError`` if it is not registered)."""
        entry = self.get(name)
        del self._entries[name]
        return entry

    @contextlib.contextmanager
    def registered(self, name: str, entry: T, *, replace: bool = False) -> Iterator[T]:
        """Register ``entry`` for the ``with`` block only, then restore what was there (tests)."""
        missing = object()
        before: Any = self._entries.get(name, missing)
        self.register(name, replace=replace)(entry)
        try:
            yield entry
        finally:
            if before is missing:
                self._entries.pop(name, None)
            else:
                self._entries[name] = before

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def get(self, name: Any, key: str | None = None) -> T:
        """The entry registered as ``name``; ``key`` is the setting the name came from
        (``sparsity.updater``), used in the error for an unknown name."""
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        names = self.names()
        hint = did_you_mean(name, names) if isinstance(name, str) else ""
        allowed = f"a registered {self.kind}: {one_of(names)}" if names else f"no {self.kind}"
        raise not_allowed(key or self.kind, name, allowed + hint)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
