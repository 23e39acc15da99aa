"""``chase flops``: FLOPs and parameters of a freshly initialised sparse model, or of a run.

Numbers follow ``docs/measurement.md`` (a multiply–accumulate is 2 FLOPs, Conv and Linear
layers only, per example).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from chase.cli.console import console, fmt_flops
from chase.cli.runs import add_source_arguments, check_one_source
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
    result = _of_run(args.run) if args.run is not None else _of_model(args)
    if args.json:
        print(json.dumps(result))
    else:
        title = args.run if args.run is not None else f"{args.model} on {args.dataset}"
        console.print(summary_table(result, title))
        console.print(layer_table(result))
    return 0


def _of_model(args: argparse.Namespace) -> dict[str, Any]:
    """Theoretical numbers for a freshly initialised model with a static sparse mask."""
    import chase
    from chase.cli.runs import fresh_model
    from chase.data.synthetic import example_batch
    from chase.metrics import flops_report, layer_costs
    from chase.sparsity.config import SparsityConfig

    keep = tuple(k.strip() for k in args.keep_dense.split(",") if k.strip())
    config = SparsityConfig(
        density=args.density, allocation=args.allocation, keep_dense=keep, updater="static"
    )
    model, shape = fresh_model(args.model, args.dataset, args.image_size)
    engine = chase.sparsify(model, None, config, attach=False)
    costs = layer_costs(model, example_batch(shape.input_shape))
    report = flops_report(costs, masks=dict(engine.masks.items()), model=model, slim_costs=costs)
    return _as_dict(report)


def _of_run(path: str) -> dict[str, Any]:
    """Numbers of a trained run: its final masks, its slim model and its mask trajectory."""
    from chase.cli.runs import Run
    from chase.data.synthetic import example_batch
    from chase.metrics import engine_flops

    run = Run(path)
    model, engine = run.rebuild()
    x = example_batch(run.shape.input_shape)
    slim = run.slim_model(model, engine)
    report, train = engine_flops(model, engine, slim, x, int(run.checkpoint["step"]))
    return {**_as_dict(report), "train_flops_ratio": None if train is None else train.ratio}


def _as_dict(report: Any) -> dict[str, Any]:
    gpu = report.gpu_flops
    assert gpu is not None  # both callers pass slim_costs
    return {
        "dense_flops": report.dense_flops,
        "sparse_flops": report.sparse_flops,
        "sparse_ratio": report.sparse_ratio,
        "gpu_supported_flops": gpu,
        "gpu_supported_ratio": gpu / report.dense_flops,
        "params_dense": report.params_dense,
        "params_nonzero": report.params_nonzero,
        "per_layer": [dict(row) for row in report.per_layer],
    }


def summary_table(result: dict[str, Any], title: str) -> Table:
    """Totals: dense, sparse and GPU-supported FLOPs with ratios, training ratio, parameters."""
    table = Table(title=f"FLOPs per example: {title}", header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("x dense", justify="right")
    table.add_row("dense FLOPs", fmt_flops(result["dense_flops"]), "1.000")
    table.add_row(
        "sparse inference FLOPs", fmt_flops(result["sparse_flops"]), f"{result['sparse_ratio']:.3f}"
    )
    table.add_row(
        "GPU-supported FLOPs (slim, dense kernels)",
        fmt_flops(result["gpu_supported_flops"]),
        f"{result['gpu_supported_ratio']:.3f}",
    )
    if result.get("train_flops_ratio") is not None:
        table.add_row("training FLOPs (whole run)", "", f"{result['train_flops_ratio']:.3f}")
    dense, nonzero = result["params_dense"], result["params_nonzero"]
    table.add_row("parameters", f"{dense:,}", "1.000")
    table.add_row("non-zero parameters", f"{nonzero:,}", f"{nonzero / dense:.3f}")
    return table


def layer_table(result: dict[str, Any]) -> Table:
    """One row per Conv/Linear layer: dense FLOPs, density, sparse FLOPs, share of the total."""
    table = Table(title="per Conv/Linear layer", header_style="bold")
    table.add_column("layer", no_wrap=True)
    for name in ("dense FLOPs", "density", "sparse FLOPs", "% of sparse"):
        table.add_column(name, justify="right")
    total = result["sparse_flops"] or 1.0
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
