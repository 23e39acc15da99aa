"""Reading the accuracy study back: one record per finished run folder (its ``report.json``,
the final model's numbers, never a best epoch) and mean ± std per (model, method, density)."""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chase.train.rundir import read_metrics

NAME = re.compile(r"^(?P<method>.+)-d(?P<density>[0-9.e-]+)-s(?P<seed>\d+)$")

#: (column key, where in report.json): the numbers a cell averages over its seeds.
FIELDS: dict[str, tuple[str, ...]] = {
    "acc": ("test_accuracy",),
    "acc_masked": ("test_accuracy_masked",),
    "density": ("density",),
    "channel_sparsity": ("channel_sparsity",),
    "gpu_ratio": ("flops", "gpu_supported_ratio"),
    "sparse_ratio": ("flops", "sparse_ratio"),
    "train_ratio": ("flops", "train_ratio"),
    "train_gpu_ratio": ("flops", "train_gpu_supported_ratio"),
    "seconds": ("seconds",),
}


@dataclass(frozen=True)
class Result:
    """One finished run: where it is and what its report says."""

    model: str
    method: str
    density: float
    seed: int
    path: Path
    report: dict[str, Any]

    def value(self, key: str) -> float | None:
        """A number of the report (``FIELDS`` key, or ``speedup_b<batch>``); None if absent."""
        if key.startswith("speedup_b"):
            batch = int(key.removeprefix("speedup_b"))
            rows = [r for r in self.report.get("speed") or [] if r["batch_size"] == batch]
            return rows[0]["speedup"] if rows else None
        node: Any = self.report
        for part in FIELDS[key]:
            node = node.get(part) if isinstance(node, dict) else None
        return None if node is None else float(node)


def collect(study_dir: Path) -> list[Result]:
    """Every finished run under ``study_dir/<model>/<method>-d<density>-s<seed>``, sorted."""
    out = []
    for report in sorted(study_dir.glob("*/*/report.json")):
        match = NAME.match(report.parent.name)
        if match is None:
            continue
        out.append(
            Result(
                model=report.parent.parent.name,
                method=match["method"],
                density=float(match["density"]),
                seed=int(match["seed"]),
                path=report.parent,
                report=json.loads(report.read_text(encoding="utf-8")),
            )
        )
    return out


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (None with one value) of ``n`` values."""

    mean: float
    std: float | None
    n: int


def stat(values: list[float | None]) -> Stat | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return None
    std = statistics.stdev(present) if len(present) > 1 else None
    return Stat(statistics.fmean(present), std, len(present))


@dataclass(frozen=True)
class Cell:
    """One (model, method, density) with its runs, one per seed."""

    model: str
    method: str
    density: float
    runs: tuple[Result, ...]

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs)

    def stat(self, key: str) -> Stat | None:
        return stat([r.value(key) for r in self.runs])


def cells(
    results: list[Result], method_order: list[str], model_order: list[str] | None = None
) -> list[Cell]:
    """Results grouped by (model, method, density): models and methods in the orders given
    (others after, by name), densities from dense to sparse."""
    models = model_order or []
    keyed: dict[tuple[str, str, float], list[Result]] = {}
    for r in results:
        keyed.setdefault((r.model, r.method, r.density), []).append(r)

    def order(key: tuple[str, str, float]) -> tuple[Any, ...]:
        model, method, density = key
        first = models.index(model) if model in models else len(models)
        rank = method_order.index(method) if method in method_order else len(method_order)
        return (first, model, rank, method, -density)

    return [Cell(*key, tuple(keyed[key])) for key in sorted(keyed, key=order)]


def speed_batches(results: list[Result]) -> list[int]:
    """The batch sizes of the runs' speed rows."""
    return sorted({row["batch_size"] for r in results for row in r.report.get("speed") or []})


def amenable_records(result: Result) -> list[dict[str, Any]]:
    """The run's ``amenable`` records (metrics.jsonl), in step order."""
    records = read_metrics(result.path / "metrics.jsonl")
    return [r for r in records if r.get("kind") == "amenable"]


def end_channels(result: Result) -> dict[str, Any] | None:
    """``channels.json``: the channel report of the final model."""
    path = result.path / "channels.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def fmt(s: Stat | None, scale: float = 1.0, digits: int = 2, suffix: str = "") -> str:
    """``mean ± std`` (``mean`` alone for one seed, ``—`` without values)."""
    if s is None:
        return "—"
    text = f"{s.mean * scale:.{digits}f}{suffix}"
    return text if s.std is None else f"{text} ± {s.std * scale:.{digits}f}"
