"""``chase presets``: list the presets, or show one resolved."""

from __future__ import annotations

import argparse
from typing import Any

import yaml
from rich.table import Table

from chase.cli.console import console
from chase.train.config import RunConfig
from chase.train.presets import list_presets, preset
from chase.train.sources import deep_merge


def add_parser(sub: Any) -> None:
    p = sub.add_parser("presets", help="list training presets or show one")
    p.add_argument("name", nargs="?", help="show this preset's resolved configuration")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.name:
        cfg = RunConfig.from_dict(deep_merge(RunConfig().to_dict(), preset(args.name)))
        console.print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    table = Table(header_style="bold")
    table.add_column("preset", no_wrap=True)
    for column in ("model", "dataset", "method", "epochs"):
        table.add_column(column)
    for name in list_presets():
        p = preset(name)
        table.add_row(name, str(p.get("model", "")), str(p.get("data", {}).get("name", "")),
                      str(p.get("method", "chase")), str(p.get("epochs", "")))  # fmt: skip
    console.print(table)
    return 0
