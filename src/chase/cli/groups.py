"""``chase groups``: the channel groups of a model, which are prunable, and why not the rest."""

from __future__ import annotations

import argparse
import json
from typing import Any

from chase.cli.console import console


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "groups",
        help="list a model's channel groups and why some are not prunable",
        description="Trace a freshly initialised model (registry name, tv:NAME or timm:NAME) "
        "sized for --dataset and print its channel groups: size, residual or not, and for "
        "each unprunable group the layer or op that blocks it.",
    )
    p.add_argument("--model", required=True, help="model name (registry, tv:NAME, timm:NAME)")
    p.add_argument("--dataset", default="cifar10", help="dataset the model is sized for")
    p.add_argument("--image-size", type=int, help="image side for imagenet/synthetic")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from chase.metrics.fresh import model_groups
    from chase.structure import describe_groups

    groups = model_groups(args.model, args.dataset, args.image_size)
    if args.json:
        rows = [
            {"name": g.name, "size": g.size, "unit": g.unit, "residual": g.residual,
             "prunable": g.prunable, "shrink_only": list(g.shrink_only), "reason": g.reason,
             "modules": list(g.modules)}
            for g in groups
        ]  # fmt: skip
        print(json.dumps(rows))
    else:
        console.print(describe_groups(groups), markup=False, highlight=False, soft_wrap=True)
    return 0
