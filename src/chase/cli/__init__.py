"""The ``chase`` command line (argument parsing only)."""

from __future__ import annotations

from types import ModuleType


def commands() -> list[ModuleType]:
    """Every subcommand module; each has ``add_parser(subparsers)``."""
    from chase.cli import (
        bench,
        evaluate,
        flops,
        groups,
        models,
        plot,
        presets,
        reference,
        train,
    )

    return [train, reference, evaluate, presets, models, flops, bench, groups, plot]
