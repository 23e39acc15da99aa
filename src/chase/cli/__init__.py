"""The ``chase`` command line (argument parsing only)."""

from __future__ import annotations

from types import ModuleType


def commands() -> list[ModuleType]:
    """Every subcommand module; each has ``add_parser(subparsers)``."""
    from chase.cli import evaluate, presets, train

    return [train, evaluate, presets]
