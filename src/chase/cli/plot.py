"""``chase plot``: PNG figures of one or several runs (``chase.plots`` makes them)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from chase.cli.console import console
from chase.errors import ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plot",
        help="PNG figures of one or several runs",
        description="Write PNG figures of one run (to RUN_DIR/plots/) or of several runs "
        "(to --out DIR: one folder per run plus comparison figures).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders made by chase train")
    p.add_argument("--out", help="output folder (default: RUN_DIR/plots; required for several)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from chase.plots import plot_runs
    from chase.train.rundir import RunDir

    runs = [RunDir(p) for p in args.runs]
    for r in runs:  # read (and check) every run's files before any figure is written
        r.config, r.metrics, r.report, r.channels, r.slim  # noqa: B018
    if len(runs) > 1 and args.out is None:
        raise ConfigError("chase plot with several runs needs --out DIR for the comparison plots")
    out = Path(args.out) if args.out else runs[0].path / "plots"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    skipped: list[str] = []
    written = plot_runs(runs, out, skipped)
    for path in written:
        console.print(f"wrote {path}", soft_wrap=True, markup=False)
    for note in skipped:
        console.print(f"skipped {note}", soft_wrap=True, markup=False)
    return 0
