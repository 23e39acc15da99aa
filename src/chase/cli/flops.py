"""``chase flops``: FLOPs and parameters of a freshly initialised sparse model, or of a run.

Numbers follow ``docs/measurement.md`` (a multiply–accumulate is 2 FLOPs, Conv and Linear
layers only, per example).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from chase.cli.args import add_source_arguments, check_one_source
from chase.cli.console import console, fmt_flops
from chase.sparsity.allocation import ALLOCATIONS


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "flops",
        help="FLOPs and parameters of a sparse model or of a run",
        description="Theoretical FLOPs of a freshly initialised sparse model (--model, "
        "--dataset, --density), or the measured ones of a trained run (RUN_DIR). "
        "A multiply-accumulate counts as 2 FLOPs; Conv and Linear layers; per example.",
    )
    add_source_arguments(p)
    p.add_argument("--density", type=float, default=0.1, help="fraction of weights kept (0, 1]")
    p.add_argument("--allocation", choices=ALLOCATIONS, default="erk", help="per-layer density")
    p.add_argument(
        "--keep-dense",
        default="",
        metavar="LAYERS",
        help="comma-separated layer names/globs kept dense, e.g. first,last",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_one_source(args, "flops")
    if args.run is not None:
        from chase.train.measure import run_flops
        from chase.train.rundir import RunDir

        result = run_flops(RunDir(args.run))
    else:
        from chase.metrics.fresh import model_flops

        keep = [k.strip() for k in args.keep_dense.split(",") if k.strip()]
        result = model_flops(
            args.model, args.dataset, density=args.density, allocation=args.allocation,
            keep_dense=keep, image_size=args.image_size,
        ).to_dict()  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        title = args.run if args.run is not None else f"{args.model} on {args.dataset}"
        console.print(summary_table(result, title))
        console.print(layer_table(result))
    return 0


def summary_table(result: dict[str, Any], title: str) -> Table:
    """Totals: dense, sparse and GPU-supported FLOPs with ratios, training ratio, parameters."""
    f = result["flops"]
    table = Table(title=f"FLOPs per example: {title}", header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("x dense", justify="right")
    table.add_row("dense FLOPs", fmt_flops(f["dense"]), "1.000")
    table.add_row("sparse inference FLOPs", fmt_flops(f["sparse"]), f"{f['sparse_ratio']:.3f}")
    table.add_row(
        "GPU-supported FLOPs (slim, dense kernels)",
        fmt_flops(f["gpu_supported"]),
        f"{f['gpu_supported_ratio']:.3f}",
    )
    if "train_ratio" in f:
        table.add_row("training FLOPs (whole run)", "", f"{f['train_ratio']:.3f}")
    if "train_gpu_supported_ratio" in f:
        table.add_row(
            "training FLOPs on dense hardware (the shapes trained)",
            "",
            f"{f['train_gpu_supported_ratio']:.3f}",
        )
    dense, nonzero = result["params_dense"], result["params_nonzero"]
    table.add_row("parameters", f"{dense:,}", "1.000")
    table.add_row("non-zero parameters (masked model)", f"{nonzero:,}", f"{nonzero / dense:.3f}")
    if "params_slim" in result:
        slim = result["params_slim_nonzero"]
        table.add_row("non-zero parameters (slim model)", f"{slim:,}", f"{slim / dense:.3f}")
    return table


def layer_table(result: dict[str, Any]) -> Table:
    """One row per Conv/Linear layer: dense FLOPs, density, sparse FLOPs, share of the total."""
    table = Table(title="per Conv/Linear layer", header_style="bold")
    table.add_column("layer", no_wrap=True)
    for name in ("dense FLOPs", "density", "sparse FLOPs", "% of sparse"):
        table.add_column(name, justify="right")
    total = result["flops"]["sparse"] or 1.0
    for row in result["per_layer"]:
        name = row["name"]
        table.add_row(
            name[: -len(".weight")] if name.endswith(".weight") else name,
            fmt_flops(row["dense_flops"]),
            f"{row['density']:.3f}",
            fmt_flops(row["sparse_flops"]),
            f"{100 * row['sparse_flops'] / total:.1f}",
        )
    return table
