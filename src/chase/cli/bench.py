"""``chase bench``: measured inference speed of the dense model against its slim version.

Either a trained run (``RUN_DIR``: its masked model against ``slim.pt``) or a registry model
with Chase's channel selection applied once at initialisation (``--model --channel-sparsity``).
Timing is ``chase.metrics.benchmark``: eval mode, warm-up, medians (``docs/measurement.md``).
A run is timed at its own ``bench.batch_sizes`` unless ``--batch-sizes`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from rich.table import Table

from chase.checks import check_float, check_int
from chase.cli.args import add_source_arguments, check_one_source
from chase.cli.console import NO_SPEEDUP, console, warning_line
from chase.errors import ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="dense vs slim speed, next to the FLOPs ratio",
        description="Time the dense model and its slim version (eval mode, warm-up, medians) "
        "at each batch size; speedup is reported next to the FLOPs ratio, its physical limit.",
    )
    add_source_arguments(p)
    p.add_argument(
        "--channel-sparsity", type=float, help="S_c: fraction of prunable channels removed"
    )
    p.add_argument("--round-to", type=int, default=1, help="keep widths a multiple of R")
    p.add_argument("--prune-skip", action="store_true", help="also prune residual streams")
    p.add_argument(
        "--density", type=float, default=0.1, help="weight density the channel score sees"
    )
    p.add_argument(
        "--batch-sizes",
        help="comma-separated (default: a run's bench.batch_sizes; 1,64 for --model)",
    )
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument(
        "--fuse-bn",
        action="store_true",
        help="fold BatchNorm into the convs of both models before timing",
    )
    p.add_argument("--warmup", type=int, default=5, help="untimed calls per model and batch")
    p.add_argument("--repeats", type=int, default=20, help="timed calls (at least)")
    p.add_argument("--min-time", type=float, default=0.0, help="time each for at least S s")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


#: batch sizes timed for ``--model`` when ``--batch-sizes`` is not given
MODEL_BATCH_SIZES = (1, 64)


def run(args: argparse.Namespace) -> int:
    from chase.metrics.speed import benchmark, json_rows, slim_equals_dense
    from chase.train.distributed import resolve_device

    given = None if args.batch_sizes is None else parse_batch_sizes(args.batch_sizes)
    check_int("--warmup", args.warmup, 0)
    check_int("--repeats", args.repeats, 1)
    check_float("--min-time", args.min_time, 0, low_open=False, high_open=False)
    check_int("--threads", args.threads, 1, optional=True)
    device = resolve_device(args.device, "--device")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dense, slim, info = _models(args)
    batch_sizes = given or _own_batch_sizes(args)
    rows = benchmark(
        dense, slim, input_shape=info["input_shape"], batch_sizes=batch_sizes, device=device,
        channels_last=args.channels_last, compile=args.compile, fuse_bn=args.fuse_bn,
        warmup=args.warmup,
        repeats=args.repeats, min_time_s=args.min_time,
    )  # fmt: skip
    result = {**info, "threads": torch.get_num_threads(), "torch": torch.__version__}
    result["rows"] = json_rows(rows)
    result["slim_equals_dense"] = all(slim_equals_dense(r) for r in result["rows"])
    if args.json:
        print(json.dumps(result))
    else:
        print_speed(result)
    return 0


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,64"`` → ``(1, 64)``; ``ConfigError`` for anything but positive integers."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or any(b < 1 for b in sizes):
        raise ConfigError(f"--batch-sizes {text!r} is not allowed: positive integers like 1,64")
    return sizes


def _models(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module, dict[str, Any]]:
    """(dense, slim, description) from a run folder or a freshly pruned registry model."""
    check_one_source(args, "bench")
    if args.run is not None:
        from chase.train.measure import run_pair
        from chase.train.rundir import RunDir

        return run_pair(RunDir(args.run))
    from chase.metrics.fresh import pruned_pair

    if args.channel_sparsity is None:
        raise ConfigError("chase bench --model needs --channel-sparsity S (e.g. 0.4)")
    dense, slim, shape, achieved = pruned_pair(
        args.model, args.dataset, args.channel_sparsity, density=args.density,
        round_to=args.round_to, prune_skip=args.prune_skip, image_size=args.image_size,
    )  # fmt: skip
    info = {
        "source": "init",
        "model": args.model,
        "dataset": args.dataset,
        "channel_sparsity": achieved,
        "round_to": args.round_to,
    }
    return dense, slim, {**info, "input_shape": list(shape.input_shape)}


def _own_batch_sizes(args: argparse.Namespace) -> tuple[int, ...]:
    """The batch sizes to time without ``--batch-sizes``: a run's own ``bench.batch_sizes``
    (those its report.json was measured at), else ``MODEL_BATCH_SIZES``."""
    if args.run is None:
        return MODEL_BATCH_SIZES
    from chase.train.rundir import RunDir

    return tuple(RunDir(args.run).config.bench.batch_sizes)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_speed(result: dict[str, Any]) -> None:
    """The speed table; a line saying so when slim equals dense; a warning line when the
    machine was busy while timing."""
    from chase.metrics.speed import busy_warning

    console.print(speed_table(result))
    if result.get("slim_equals_dense"):
        console.print(NO_SPEEDUP, soft_wrap=True)
    warning = busy_warning(result["rows"])
    if warning:
        console.print(warning_line(warning))


def speed_table(result: dict[str, Any]) -> Table:
    """One row per batch size: medians with their p10–p90 spread, speedup vs FLOPs ratio; or,
    when the slim model is the dense one (no channels removed), its latency alone."""
    from chase.metrics.speed import relative_spread

    sc = result.get("channel_sparsity")
    where = f"{result['model']} ({result['source']})" + (f", S_c {sc:.2f}" if sc else "")
    first = result["rows"][0] if result["rows"] else {}
    table = Table(
        title=f"dense vs slim: {where}, {first.get('device', '?')}, {result['threads']} threads",
        header_style="bold",
    )
    same = result.get("slim_equals_dense", False)
    names: tuple[str, ...]
    if same:
        names = ("batch", "ms (slim = dense)", "spread", "img/s")
    else:
        names = ("batch", "dense ms", "slim ms", "spread", "speedup", "FLOPs ratio",
                 "efficiency", "slim img/s")  # fmt: skip
    for name in names:
        table.add_column(name, justify="right", no_wrap=name in ("efficiency", "spread"))
    for r in result["rows"]:
        cells = [str(r["batch_size"]), f"{r['dense_ms']:.2f}"]
        if same:
            cells += [f"±{100 * relative_spread(r):.0f}%", _num(r["throughput_dense"], ".1f")]
        else:
            cells += [
                f"{r['slim_ms']:.2f}",
                f"±{100 * relative_spread(r):.0f}%",
                _num(r["speedup"], ".2f") + "x",
                _num(r["flops_ratio"], ".2f") + "x",
                _num(r["efficiency"], ".2f"),
                _num(r["throughput_slim"], ".1f"),
            ]
        table.add_row(*cells)
    table.caption = "spread: half the p10-p90 range over the median, the larger of dense and slim"
    return table
