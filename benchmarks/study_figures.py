"""The accuracy study's figures, drawn with matplotlib's Figure API (``chase.plots.figures``'s
``new_figure`` and ``save``: Agg canvas, no pyplot state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from study_cells import Cell, amenable_records, stat

from chase.plots.figures import new_figure, save

MARKERS = {0.1: "o", 0.02: "s"}


def _colors(names: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def accuracy_vs_flops(cells: list[Cell], methods: list[str], path: Path, data: str) -> Path:
    """One panel per model: test accuracy (slim model) against GPU-supported FLOPs, mean over
    seeds with ± std error bars on both axes. Chase's S_c 0 / 0.3 / 0.5 at one density are
    joined by a line (the accuracy-for-FLOPs trade-off); every other method is a point per
    density (unstructured methods keep every channel: GPU-supported FLOPs 1.0)."""
    models = list(dict.fromkeys(c.model for c in cells))
    colors = _colors(methods)
    fig = new_figure(5.2 * len(models) + 2.6, 4.6)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        mine = [c for c in cells if c.model == model]
        for c in mine:
            _point(ax, c, colors.get(c.method, "0.3"))
        for density in sorted({c.density for c in mine if c.method.startswith("chase-sc")}):
            line = [c for c in mine if c.density == density and c.method.startswith("chase-sc")]
            line = [c for c in line if "skip" not in c.method]
            xs = [_mean(c, "gpu_ratio") for c in line]
            ys = [100 * _mean(c, "acc") for c in line]
            ax.plot(xs, ys, color="0.45", linewidth=0.9, linestyle="--" if density < 0.1 else "-")
        ax.set(title=model, xlabel="GPU-supported FLOPs (× dense)", ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
    fig.legend(handles=_legend(methods, colors, cells), loc="outside right upper", fontsize=8)
    fig.suptitle(f"{data}: final-model test accuracy against GPU-supported FLOPs")
    return save(fig, path)


def _mean(cell: Cell, key: str) -> float:
    s = cell.stat(key)
    return s.mean if s is not None else float("nan")


def _point(ax: Any, cell: Cell, color: Any) -> None:
    x, y = cell.stat("gpu_ratio"), cell.stat("acc")
    if x is None or y is None:
        return
    dense = cell.method == "dense"
    marker = "*" if dense else MARKERS.get(cell.density, "^")
    ax.errorbar([x.mean], [100 * y.mean], xerr=[x.std or 0.0], yerr=[100 * (y.std or 0.0)],
                color=color, marker=marker, markersize=9 if dense else 6, capsize=2,
                linestyle="none")  # fmt: skip


def _legend(methods: list[str], colors: dict[str, Any], cells: list[Cell]) -> list[Any]:
    from matplotlib.lines import Line2D

    present = {c.method for c in cells}
    handles = [Line2D([], [], color=colors[m], marker="o", linestyle="none", label=m)
               for m in methods if m in present]  # fmt: skip
    for density in sorted({c.density for c in cells if c.method != "dense"}, reverse=True):
        handles.append(Line2D([], [], color="0.3", marker=MARKERS.get(density, "^"),
                              linestyle="none", label=f"density {density:g}"))  # fmt: skip
    chase = sorted({c.density for c in cells if c.method.startswith("chase-sc")}, reverse=True)
    for density in chase:
        style = "-" if density >= 0.1 else "--"
        handles.append(Line2D([], [], color="0.45", linestyle=style,
                              label=f"Chase S_c 0 → 0.5, density {density:g}"))  # fmt: skip
    return handles


def amenable_over_training(cells: list[Cell], path: Path) -> Path:
    """Fraction of live channels that are sparse amenable against the optimizer step, one
    line per (model, method, density), mean over seeds (records at the same steps)."""
    models = list(dict.fromkeys(c.model for c in cells))
    fig = new_figure(4.6 * len(models) + 0.6, 4.0)
    axes = fig.subplots(1, len(models), squeeze=False, sharey=True)[0]
    for ax, model in zip(axes, models):
        for c in [c for c in cells if c.model == model]:
            steps, values = _mean_curve(c)
            style = "-" if c.density >= 0.1 else "--"
            ax.plot(steps, [100 * v for v in values], linestyle=style, marker=".",
                    label=f"{c.method}, density {c.density:g}")  # fmt: skip
        ax.set(title=model, xlabel="optimizer step", ylabel="sparse-amenable channels (% of live)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("channels with less than half their layer's density, during training")
    return save(fig, path)


def _mean_curve(cell: Cell) -> tuple[list[int], list[float]]:
    by_step: dict[int, list[float | None]] = {}
    for run in cell.runs:
        for r in amenable_records(run):
            by_step.setdefault(int(r["step"]), []).append(float(r["fraction"]))
    steps = sorted(by_step)
    means = [stat(by_step[s]) for s in steps]
    return steps, [m.mean if m is not None else float("nan") for m in means]
