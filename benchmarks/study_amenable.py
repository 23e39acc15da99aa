"""The sparse-amenable-channel section of docs/results.md: for the unstructured RigL and SET
runs, the fraction of live channels whose density is below half their layer's (the
``chase.sparsity.report`` definition), overall and per layer, from the first records of
training to the end, and the histogram figures of ``chase.plots.plot_run``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import study_figures
from common import markdown
from study_cells import Cell, Result, amenable_records, end_channels, fmt, stat

from chase.plots import plot_run
from chase.train.rundir import RunDir

METHODS = ("set", "rigl")
FIRST = 3  # records after step 0 shown in the "how early" table
PAPER = "up to 60% of channels sparser than the rest (Yin et al. 2023)"


def section(grid: list[Cell], results: Path, figures: Path) -> tuple[str, list[Path]]:
    """The markdown section and the figure files it shows."""
    mine = [c for c in grid if c.method in METHODS]
    if not mine:
        return "## Sparse-amenable channels\n\nNo SET or RigL runs in this study.", []
    files = [study_figures.amenable_over_training(mine, figures / "amenable_over_training.png")]
    parts = [_intro(mine), _overall_table(mine), _paper(mine), _figure(files[0], results)]
    for model in dict.fromkeys(c.model for c in mine):
        for density in sorted({c.density for c in mine}, reverse=True):
            here = [c for c in mine if c.model == model and c.density == density]
            if here:
                parts.append(_layer_table(model, density, here))
    hist_md, hist_files = _histograms(mine, results, figures)
    return "\n\n".join([*parts, hist_md]), files + hist_files


def _intro(cells: list[Cell]) -> str:
    ratio = next((r["ratio"] for c in cells for run in c.runs for r in amenable_records(run)), 0.5)
    return (
        "## Sparse-amenable channels (SET and RigL)\n\n"
        f"A live channel is *sparse amenable* when its density (active weights over its original "
        f"weights) is below {ratio:g} × the density of its layer's live channels taken together "
        "(`chase.sparsity.report.channel_report`). The runs record it in `metrics.jsonl` "
        "(`amenable` records: step 0, every `amenable_every` steps, each epoch end); the end "
        "value is the final model's `channels.json`. Step 0 is the random ERK initialisation: "
        "whatever is amenable there is chance, not training. Fractions are of all live "
        "channels of every reported group (the classifier's outputs included), mean ± std "
        "over seeds."
    )


def _steps(cells: list[Cell]) -> list[tuple[int, float]]:
    """(step, epoch) of the columns: step 0, the first few records, then every epoch end."""
    seen: dict[int, float] = {}
    for c in cells:
        for run in c.runs:
            for r in amenable_records(run):
                seen.setdefault(int(r["step"]), float(r["epoch"]))
    ordered = sorted(seen.items())
    early = ordered[: FIRST + 1]
    ends = [(s, e) for s, e in ordered if e >= 1 and e == int(e)]
    return list(dict.fromkeys(early + ends))


def _at(run: Result, step: int) -> dict[str, Any] | None:
    return next((r for r in amenable_records(run) if int(r["step"]) == step), None)


def _overall_table(cells: list[Cell]) -> str:
    steps = _steps(cells)
    head = ["model", "method", "density", *[f"step {s} (ep {e:.2g})" for s, e in steps],
            "end (channels.json)", "end: rel. density p10 / p50 / p90"]  # fmt: skip
    rows = []
    for c in cells:
        row: list[Any] = [c.model, c.method, f"{c.density:g}"]
        for s, _ in steps:
            row.append(fmt(stat([_field(_at(r, s), "fraction") for r in c.runs]), 100, 1, "%"))
        ends = [end_channels(r) for r in c.runs]
        row.append(fmt(stat([e["amenable_fraction"] if e else None for e in ends]), 100, 1, "%"))
        last = [amenable_records(r)[-1] if amenable_records(r) else None for r in c.runs]
        q = [stat([_quantile(x, i) for x in last]) for i in range(3)]
        row.append(" / ".join(fmt(v, 1, 2) for v in q))
        rows.append(row)
    return "### Overall, from initialisation to the end\n\n" + markdown(head, rows)


def _field(record: dict[str, Any] | None, key: str) -> float | None:
    return None if record is None else float(record[key])


def _quantile(record: dict[str, Any] | None, i: int) -> float | None:
    if record is None or len(record.get("density_rel") or []) <= i:
        return None
    return float(record["density_rel"][i])


def _group_fraction(record: dict[str, Any] | None, group: str) -> float | None:
    g = (record or {}).get("groups", {}).get(group)
    return None if g is None else float(g["fraction"])


def _layer_table(model: str, density: float, cells: list[Cell]) -> str:
    first_end = next((s for s, e in _steps(cells) if e >= 1), None)
    ends = {c.method: [end_channels(r) for r in c.runs] for c in cells}
    sample = next((e for es in ends.values() for e in es if e), None)
    if sample is None:
        return f"### {model}, density {density:g}\n\nNo channels.json."
    head = ["group", "channels", "prunable"]
    for c in cells:
        head += [f"{c.method} step 0", f"{c.method} step {first_end} (ep 1)", f"{c.method} end"]
    rows = []
    for name, g in sample["groups"].items():
        row: list[Any] = [name, g["total"], "yes" if g["prunable"] else "no"]
        for c in cells:
            row.append(fmt(stat([_group_fraction(_at(r, 0), name) for r in c.runs]), 100, 0, "%"))
            at_epoch = [_group_fraction(_at(r, first_end), name) if first_end is not None
                        else None for r in c.runs]  # fmt: skip
            row.append(fmt(stat(at_epoch), 100, 0, "%"))
            end = [_end_group(e, name) for e in ends[c.method]]
            row.append(fmt(stat(end), 100, 0, "%"))
        rows.append(row)
    return f"### Per layer: {model}, density {density:g}\n\n" + markdown(head, rows)


def _end_group(report: dict[str, Any] | None, group: str) -> float | None:
    g = (report or {}).get("groups", {}).get(group)
    if g is None or not g["live"]:
        return None
    return g["amenable"] / g["live"]


def _paper(cells: list[Cell]) -> str:
    best: tuple[float, str] = (-1.0, "")
    overall = []
    for c in cells:
        for run in c.runs:
            end = end_channels(run)
            if end is None:
                continue
            overall.append(end["amenable_fraction"])
            for name, g in end["groups"].items():
                if g["live"] and g["amenable"] / g["live"] > best[0]:
                    where = (
                        f"`{name}` of {c.model}, {c.method}, density {c.density:g}, seed {run.seed}"
                    )
                    best = (g["amenable"] / g["live"], where)
    if not overall:
        return "### Against the paper\n\nNo finished SET or RigL run has a channels.json."
    return (
        f"### Against the paper\n\nThe paper reports {PAPER}. Here, at the end of training, "
        f"{100 * min(overall):.1f}–{100 * max(overall):.1f}% of all live channels are sparse "
        f"amenable (per run, SET and RigL); the largest fraction in one layer is "
        f"{100 * best[0]:.0f}% ({best[1]})."
    )


def _figure(path: Path, results: Path) -> str:
    return f"![amenable channels over training]({path.relative_to(results.parent)})"


def _histograms(cells: list[Cell], results: Path, figures: Path) -> tuple[str, list[Path]]:
    """``chase plot``'s channel histograms of one RigL and one SET run: the first model of the
    study at the highest density, seed 0 (a fixed choice, not the most striking run)."""
    files, lines = [], ["### Histograms (`chase plot`)", ""]
    for method in ("rigl", "set"):
        pick = next((c for c in cells if c.method == method), None)
        if pick is None:
            continue
        run = min(pick.runs, key=lambda r: r.seed)
        with tempfile.TemporaryDirectory() as tmp:
            skipped: list[str] = []
            plot_run(RunDir(run.path), Path(tmp), skipped)
            for kind in ("density", "umm"):
                source = Path(tmp) / f"channel_{kind}.png"
                if source.is_file():
                    target = figures / f"amenable_{run.model}_{method}_d{run.density:g}_{kind}.png"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
                    files.append(target)
                    rel = target.relative_to(results.parent)
                    what = f"{run.model}, {method}, density {run.density:g}, seed {run.seed}"
                    lines.append(f"{what}, channel {kind}:\n\n![{method} {kind}]({rel})\n")
    return "\n".join(lines), files
