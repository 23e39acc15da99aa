"""Console output of the CLI: a progress bar with ETA and live statistics, and tables."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

console = Console(stderr=False, highlight=False)

#: said instead of a speedup when the slim model is the dense one (e.g. a RigL run)
SAME_MODEL = "slim equals dense (no channels removed)"
NO_SPEEDUP = f"{SAME_MODEL}: there is no speedup to measure"


def describe(stats: dict[str, Any]) -> str:
    """``loss 0.512 acc 81.2% density 0.100 live 320/640`` from a training record."""
    parts = []
    if "loss" in stats:
        parts.append(f"loss {stats['loss']:.3f}")
    if "acc" in stats:
        parts.append(f"acc {stats['acc']:.1%}")
    if "density" in stats:
        parts.append(f"density {stats['density']:.3f}")
    if "live_channels" in stats:
        parts.append(f"live ch {stats['live_channels']}")
    return "  ".join(parts)


class ConsoleProgress:
    """A rich progress bar on a terminal; plain log lines otherwise (CI, pipes, files).

    ``update(done, stats)`` comes every step: with the step count alone (``stats`` empty),
    which moves the bar and nothing else, or with a training record at log points, which also
    refreshes the statistics (and is the only call that prints a plain line)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.tty = sys.stdout.isatty()
        self._bar: Progress | None = None
        self._task: Any = None
        self._total = 0

    def start(self, total: int, done: int, description: str) -> None:
        self._total = total
        if not self.enabled or not self.tty:
            return
        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"), console=console, transient=False,
        )  # fmt: skip
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, completed=done, stats="")

    def update(self, done: int, stats: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            if stats:
                self._bar.update(self._task, completed=done, stats=describe(stats))
            else:  # a step between log points: the count only (no formatting, no printing)
                self._bar.update(self._task, completed=done)
        elif stats:
            console.print(f"step {done}/{self._total}  {describe(stats)}")

    def message(self, text: str) -> None:
        if self.enabled:
            console.print(text, soft_wrap=True)  # one line each, whatever the width

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def fmt_flops(value: float | None) -> str:
    """``8.18 G`` style FLOPs count (``-`` for unknown)."""
    if value is None:
        return "-"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def warning_line(text: str) -> Text:
    """``text`` highlighted, as a line of its own (wrapped, never cut, on a narrow console)."""
    return Text(text, style="bold yellow")


def report_table(report: dict[str, Any]) -> Table | Group:
    """The end-of-run summary: accuracy, sparsity, parameters, FLOPs and measured speed (with
    its spread; the latency alone, and a line saying why, when slim equals dense), then a
    warning line if the speed was measured on a busy machine."""
    from chase.metrics.speed import busy_warning, relative_spread, slim_equals_dense

    table = Table(title=f"{report['model']} on {report['dataset']} ({report['method']})",
                  show_header=True, header_style="bold")  # fmt: skip
    table.add_column("measure")
    table.add_column("value", justify="right")
    f = report["flops"]
    rows = [
        ("test accuracy (slim model)", f"{report['test_accuracy']:.2%}"),
        ("test accuracy (masked model)", f"{report['test_accuracy_masked']:.2%}"),
        ("weight density", f"{report['density']:.3f}"),
        ("channel sparsity", f"{report['channel_sparsity']:.3f}"),
        ("parameters dense / slim / slim non-zero",
         f"{report['params_dense']:,} / {report['params_slim']:,} / "
         f"{report['params_slim_nonzero']:,}"),
        ("FLOPs per image, dense", fmt_flops(f["dense"])),
        ("FLOPs sparse (x dense)", f"{fmt_flops(f['sparse'])} ({f['sparse_ratio']:.3f}x)"),
        ("FLOPs GPU-supported (x dense)",
         f"{fmt_flops(f['gpu_supported'])} ({f['gpu_supported_ratio']:.3f}x)"),
        ("training FLOPs (x dense)", f"{f['train_ratio']:.3f}x"),
        ("slim vs masked max |diff|", f"{report['equivalence_max_abs_diff']:.2e}"),
    ]  # fmt: skip
    speed = report.get("speed") or []
    for row in speed:
        b, spread = row["batch_size"], f"±{100 * relative_spread(row):.0f}%"
        if slim_equals_dense(row):
            rows.append((f"batch {b}: dense = slim ms ({row['device']})",
                         f"{row['dense_ms']:.2f} {spread}"))  # fmt: skip
            continue
        rows.append((
            f"batch {b}: dense / slim ms ({row['device']})",
            f"{row['dense_ms']:.2f} / {row['slim_ms']:.2f} {spread}  "
            f"speedup {_x(row['speedup'])} of {_x(row['flops_ratio'])} FLOPs",
        ))  # fmt: skip
    rows.append(("training time", f"{report['seconds']:.0f} s, {report['steps']} steps"))
    for name, value in rows:
        table.add_row(name, value)
    if speed:
        table.caption = "±: half the p10-p90 range of the timed calls over their median"
    lines = [Text(NO_SPEEDUP)] if speed and all(slim_equals_dense(r) for r in speed) else []
    warning = busy_warning(speed)
    lines += [warning_line(warning)] if warning else []
    return Group(table, *lines) if lines else table


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"
