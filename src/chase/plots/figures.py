"""The figures of ``chase plot``, drawn from plain data (lists and dicts) into PNG files.

matplotlib is imported lazily and used through ``matplotlib.figure.Figure`` (Agg canvas, no
pyplot global state), so the rest of the CLI works without it. Panels of one figure that share
a quantity share its axis range; figure titles wrap to the figure's width (``suptitle``).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chase.errors import ChaseError

DPI = 110
SMALL = 7
GREY = "0.82"
#: Fraction of the figure's width a title may use (the rest is margin on both sides).
TITLE_WIDTH = 0.94


@dataclass
class Curves:
    """One run's training records for the curve panels, and the sparsity settings that
    explain them: the weight-density ``budget``, MEST's soft bound as (step, density) points
    (each holds until the next) with a legend note saying how it is set, and Chase's
    channel-sparsity target."""

    label: str
    train: list[dict[str, Any]]
    val: list[dict[str, Any]] = field(default_factory=list)
    budget: float | None = None
    bound: list[tuple[int, float]] = field(default_factory=list)
    bound_note: str = ""
    channel_target: float | None = None


@dataclass
class GroupChannels:
    """One channel group as ``channels.json`` describes it at the end of a run."""

    name: str
    total: int
    live: int
    amenable: int
    density: float
    channel_density: list[float]
    channel_umm: list[float]
    alive: list[bool]


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` on the Agg canvas; ``ChaseError`` when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ChaseError("chase plot needs matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def suptitle(fig: Any, title: str, **kwargs: Any) -> Any:
    """``fig.suptitle(title)`` with every line wrapped (``textwrap``, at word boundaries) so
    the title spans at most ``TITLE_WIDTH`` of the figure's width as the renderer measures it;
    constrained layout then makes room for the extra lines."""
    text = fig.suptitle(title, **kwargs)
    renderer = fig.canvas.get_renderer()
    limit = TITLE_WIDTH * fig.bbox.width
    chars = max(len(line) for line in title.splitlines() or [""])
    while chars > 8 and (width := text.get_window_extent(renderer).width) > limit:
        chars = min(chars - 1, int(chars * limit / width))
        lines = title.splitlines()
        text.set_text("\n".join(textwrap.fill(line, chars) for line in lines))
    return text


def save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def curves(runs: Sequence[Curves], path: Path, title: str) -> Path:
    """Loss, accuracy, weight density and (for Chase runs) channel sparsity against optimizer
    steps, all panels on one step axis; train solid, validation dashed. The density panel
    shows the budget and, for MEST, the soft bound that lets the density rise above it.
    One run: a legend per panel; several: one legend below the panels (colour = run)."""
    channel = any("channel_sparsity" in r for run in runs for r in run.train)
    ncols = 4 if channel else 3
    fig = new_figure(4.6 * ncols, 4.3 if len(runs) == 1 else 4.3 + 0.2 * len(runs))
    axes = fig.subplots(1, ncols, sharex=True, squeeze=False)[0]
    ax_loss, ax_acc, ax_density = axes[:3]
    colors = _colors(len(runs))
    for color, run in zip(colors, runs):
        steps = [r["step"] for r in run.train]
        line: dict[str, Any] = {"color": color, "marker": "." if len(steps) < 30 else None}
        ax_loss.plot(steps, [r["loss"] for r in run.train], label="train", **line)
        ax_acc.plot(steps, [100 * r["acc"] for r in run.train], label="train", **line)
        if run.val:
            vsteps = [r["step"] for r in run.val]
            style: dict[str, Any] = {"color": color, "linestyle": "--", "marker": "o",
                                     "markersize": 3}  # fmt: skip
            ax_loss.plot(vsteps, [r["loss"] for r in run.val], label="val", **style)
            ax_acc.plot(vsteps, [100 * r["acc"] for r in run.val], label="val", **style)
        _density_panel(ax_density, run, line)
        if channel:
            _channel_panel(axes[3], run, line)
    ax_loss.set(title="loss", xlabel="optimizer step", ylabel="cross-entropy (mean per example)")
    losses = [r["loss"] for run in runs for r in (*run.train, *run.val) if r["loss"] > 0]
    if losses and max(losses) > 50 * min(losses):  # diverging runs stay readable
        ax_loss.set_yscale("log")
        ax_loss.set_title("loss (log scale)")
    ax_acc.set(title="accuracy", xlabel="optimizer step", ylabel="accuracy (%)")
    bounded = any(run.bound for run in runs)
    ax_density.set(xlabel="optimizer step", ylabel="active / maskable weights",
                   title="weight density" + (" (above budget: MEST's soft bound)" if bounded
                                             else ""))  # fmt: skip
    last = max((r["step"] for run in runs for r in (*run.train, *run.val)), default=1)
    ax_loss.set_xlim(0, 1.02 * max(last, 1))  # shared by every panel
    ax_loss.xaxis.set_major_locator(_integer_ticks())
    for ax in axes[2:]:  # fractions from 0, so an overshoot reads at its true size
        ax.set_ylim(bottom=0)
    for ax in axes:
        ax.grid(alpha=0.3)
        if len(runs) == 1 and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=SMALL + 1)
    if len(runs) > 1:
        _runs_legend(fig, runs, colors)
    suptitle(fig, title)
    return save(fig, path)


def _runs_legend(fig: Any, runs: Sequence[Curves], colors: list[Any]) -> None:
    """Below the panels: one entry per run (its colour), then what each line style means."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, label=run.label) for c, run in zip(colors, runs)]
    key: dict[str, Any] = {"color": "0.3"}
    handles.append(Line2D([], [], linestyle="-", label="train, density, channel sparsity", **key))
    handles.append(Line2D([], [], linestyle="--", label="val (markers), budget, target", **key))
    if any(run.bound for run in runs):
        note = "MEST soft bound: the density may rise above the budget up to it"
        handles.append(Line2D([], [], linestyle=":", label=note, **key))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)),
               fontsize=SMALL + 1)  # fmt: skip


def _density_panel(ax: Any, run: Curves, line: dict[str, Any]) -> None:
    steps = [r["step"] for r in run.train]
    ax.plot(steps, [r.get("density", 1.0) for r in run.train], label="density", **line)
    if run.budget is not None:
        ax.axhline(run.budget, color=line["color"], linestyle="--", linewidth=0.9,
                   label=f"budget {run.budget:g}")  # fmt: skip
    if run.bound:
        ax.plot([s for s, _ in run.bound], [d for _, d in run.bound], color=line["color"],
                linestyle=":", linewidth=1.2, drawstyle="steps-post",
                label=textwrap.fill(run.bound_note, 34))  # fmt: skip


def _channel_panel(ax: Any, run: Curves, line: dict[str, Any]) -> None:
    points = [(r["step"], r["channel_sparsity"]) for r in run.train if "channel_sparsity" in r]
    if not points:
        return
    if points[0][0] > 0:
        points.insert(0, (0, 0.0))  # training starts with every channel
    # channels go at events, not gradually: each record holds until the next one
    ax.plot([s for s, _ in points], [v for _, v in points], label="channel sparsity",
            drawstyle="steps-post", **line)  # fmt: skip
    if run.channel_target is not None:
        ax.axhline(run.channel_target, color=line["color"], linestyle="--", linewidth=0.9,
                   label=f"target {run.channel_target:g}")  # fmt: skip
    ax.set(title="channel sparsity", xlabel="optimizer step",
           ylabel="removed / prunable channels")  # fmt: skip


def channels(
    live_steps: Sequence[tuple[int, int]],
    groups: Sequence[str],
    totals: Sequence[int],
    snapshots: Sequence[tuple[int, Sequence[int]]],
    path: Path,
    title: str,
) -> Path:
    """Live prunable channels over training: the total as a line, each group as a heatmap row,
    both on one step axis.

    ``live_steps``: (step, live channels summed over groups), step 0 first; ``snapshots``:
    (step, live count per group, in ``groups`` order) at the end of each epoch, each drawn as
    a cell from the previous snapshot (or step 0) to its step. The heatmap colour is the live
    fraction of each group, so wide and narrow layers compare; cells carry the count when
    they fit.
    """
    n, k = len(groups), len(snapshots)
    fig = new_figure(max(8.0, 1.2 + 0.9 * k), 3.0 + max(2.0, 0.22 * n))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2.6, max(2.0, 0.22 * n)])
    if live_steps:
        top.plot([s for s, _ in live_steps], [v for _, v in live_steps], marker=".",
                 drawstyle="steps-post")  # fmt: skip
    top.set(ylabel="live channels", title=f"live prunable channels (all groups, of {sum(totals)})")
    top.grid(alpha=0.3)
    edges = [0, *(s for s, _ in snapshots)]
    frac = [[live[g] / max(totals[g], 1) for _, live in snapshots] for g in range(n)]
    image = bottom.pcolormesh(edges, [g - 0.5 for g in range(n + 1)], frac, cmap="viridis",
                              vmin=0.0, vmax=1.0)  # fmt: skip
    bottom.set_yticks(range(n), [f"{g} ({t})" for g, t in zip(groups, totals)], fontsize=SMALL)
    bottom.set_ylim(n - 0.5, -0.5)  # first group on top
    bottom.set(
        xlabel="optimizer step (each cell: the group at the end of that epoch)",
        ylabel="group (original width)",
        title="live channels per group (colour: live / original; text: live count)",
    )
    bottom.set_xlim(0, max(edges[-1], *(s for s, _ in live_steps), 1))
    bottom.xaxis.set_major_locator(_integer_ticks())
    if n <= 40 and k <= 30:
        for g in range(n):
            for j, (_, live) in enumerate(snapshots):
                shade = "black" if frac[g][j] > 0.6 else "white"
                bottom.text((edges[j] + edges[j + 1]) / 2, g, str(live[g]), ha="center",
                            va="center", fontsize=SMALL - 1, color=shade)  # fmt: skip
    fig.colorbar(image, ax=bottom, label="live fraction", shrink=0.8)
    suptitle(fig, title)
    return save(fig, path)


def widths(layers: Sequence[tuple[str, int, int]], path: Path, title: str) -> Path:
    """Output channels of every Conv/Linear layer, dense (grey) behind slim (blue): counts on
    the left, the kept fraction on the right (narrow layers stay readable next to wide ones).
    The legend sits below the panels, clear of every bar."""
    n = len(layers)
    fig = new_figure(11, 2.0 + 0.2 * n)
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    ys = list(range(n))
    dense = [d for _, d, _ in layers]
    slim = [s for _, _, s in layers]
    kept = [100 * s / d if d else 100.0 for d, s in zip(dense, slim)]
    left.barh(ys, dense, color=GREY)
    left.barh(ys, slim, color="tab:blue", height=0.6)
    right.barh(ys, [100.0] * n, color=GREY)
    right.barh(ys, kept, color="tab:blue", height=0.6)
    for y, k, d, s in zip(ys, kept, dense, slim):
        if s < d:
            right.text(k, y, f" {s}/{d}", va="center", fontsize=SMALL)
    left.set_yticks(ys, [name for name, _, _ in layers], fontsize=SMALL)
    left.set_ylim(n - 0.5, -0.5)  # first layer on top, no empty margin
    left.set(xlabel="output channels", xlim=(0, max(dense, default=1) * 1.02))
    right.set(xlabel="kept output channels (% of dense)", xlim=(0, 118))
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    handles = [_patch(GREY, "dense: original width (100%)"),
               _patch("tab:blue", "slim: kept width (text: kept / original)")]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=SMALL + 1)
    suptitle(fig, title)
    return save(fig, path)


def amenable_note(ratio: float) -> str:
    """The sparse-amenable criterion, as the figures state it."""
    return f"sparse amenable: density < {ratio:g} × its group's density"


def relative(g: GroupChannels, key: str) -> list[float]:
    """The live channels' density over the group's density, or UMM over their mean UMM
    (``amenable_summary``'s ``density_rel`` and ``umm_rel``)."""
    values = g.channel_density if key == "density" else g.channel_umm
    live = [v for v, a in zip(values, g.alive) if a]
    scale = g.density if key == "density" else _mean(live)
    return [v / scale if scale > 0 else 0.0 for v in live]


def channel_histograms(
    groups: Sequence[GroupChannels], key: str, ratio: float, path: Path, title: str
) -> Path:
    """Small multiples, one histogram per group of its live channels' density relative to the
    group's density (or UMM relative to the group's mean), on one shared x range and bins.

    Sparse-amenable channels (density below ``ratio`` × the group's density, on both figures)
    are stacked in orange; on density panels the dashed line at ``ratio`` is that threshold.
    """
    n = len(groups)
    cols = min(8, max(1, math.ceil(math.sqrt(n))))
    rows = max(1, math.ceil(n / cols))
    fig = new_figure(2.3 * cols + 0.4, 1.9 * rows + 1.1)
    axes = fig.subplots(rows, cols, squeeze=False)
    values = [relative(g, key) for g in groups]
    edge = ratio if key == "density" else 0.0  # the threshold, in range and on a bin edge
    bins = _bins(max([edge, *(v for vs in values for v in vs)]), edge)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        _histogram(ax, groups[i], values[i], key, ratio, bins)
        if i % cols == 0:
            ax.set_ylabel("channels", fontsize=SMALL)
    handles = [_patch("tab:blue", "live channel"), _patch("tab:orange", amenable_note(ratio))]
    if key == "density":
        handles.append(_line(f"amenable threshold: {ratio:g}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=SMALL + 1)
    suptitle(fig, title)
    return save(fig, path)


def _bins(high: float, edge: float, count: int = 24) -> list[float]:
    """About ``count`` equal bins from 0 (a bar's distance from the axis is its value) past
    ``high``, with ``edge`` (the amenable threshold, if > 0) on a bin edge."""
    top = 1.04 * high if high > 0 else 1.0
    width = top / count
    if edge > 0:
        width = edge / max(1, round(edge / width))
    return [i * width for i in range(math.ceil(top / width) + 1)]


def _histogram(
    ax: Any, g: GroupChannels, values: list[float], key: str, ratio: float, bins: list[float]
) -> None:
    live_density = [d for d, a in zip(g.channel_density, g.alive) if a]
    amen = [d < ratio * g.density for d in live_density]
    normal = [v for v, m in zip(values, amen) if not m]
    starved = [v for v, m in zip(values, amen) if m]
    if values:
        ax.hist([normal, starved], bins=bins, stacked=True,
                color=["tab:blue", "tab:orange"])  # fmt: skip
    if key == "density":
        ax.axvline(ratio, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlim(bins[0], bins[-1])
    ax.yaxis.set_major_locator(_integer_ticks())
    name = g.name if len(g.name) <= 28 else "…" + g.name[-27:]
    ax.set_title(f"{name}\n{g.live}/{g.total} live, {g.amenable} amenable", fontsize=SMALL)
    if key == "density":
        label = f"density / group density ({g.density:.3g})"
    else:
        label = f"UMM / group mean ({_mean([u for u, a in zip(g.channel_umm, g.alive) if a]):.3g})"
    ax.set_xlabel(label, fontsize=SMALL)
    ax.tick_params(labelsize=SMALL - 1)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True, steps=[1, 2, 5, 10])


def _patch(color: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=color, label=label)


def _line(label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="black", linestyle="--", linewidth=0.8, label=label)


def accuracy_vs_flops(points: Sequence[dict[str, Any]], path: Path) -> Path:
    """Test accuracy of each run against its GPU-supported (filled) and sparse (hollow) FLOPs."""
    from matplotlib.lines import Line2D

    fig = new_figure(9, 5.2)
    ax = fig.subplots()
    handles = []
    for color, p in zip(_colors(len(points)), points):
        x, xs, y = p["gpu_ratio"], p["sparse_ratio"], 100 * p["accuracy"]
        ax.plot([xs, x], [y, y], color=color, linestyle=":", linewidth=1)
        ax.scatter([xs], [y], facecolors="none", edgecolors=[color], s=45)
        handles.append(ax.scatter([x], [y], color=color, s=55, label=p["label"]))
    marker: dict[str, Any] = {"marker": "o", "linestyle": "none", "color": "0.3", "markersize": 7}
    handles += [
        Line2D([], [], label="GPU-supported FLOPs (slim model, dense kernels)", **marker),
        Line2D([], [], label="sparse inference FLOPs", markerfacecolor="none", **marker),
    ]
    ax.set(xlabel="FLOPs per example (× dense model)", ylabel="test accuracy (%)",
           title="test accuracy against FLOPs", xlim=(0, 1.05))  # fmt: skip
    ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="outside right upper", fontsize=SMALL + 1)
    return save(fig, path)
