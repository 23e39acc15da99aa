"""The figures of ``chase plot``, drawn from plain data (lists and dicts) into PNG files.

matplotlib is imported lazily and used through ``matplotlib.figure.Figure`` (Agg canvas, no
pyplot global state), so the rest of the CLI works without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chase.errors import ChaseError

DPI = 110
SMALL = 7


@dataclass
class Curves:
    """One run's training records for the curve panels."""

    label: str
    train: list[dict[str, Any]]
    val: list[dict[str, Any]] = field(default_factory=list)


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
        from matplotlib.figure import Figure
    except ImportError:
        raise ChaseError("chase plot needs matplotlib: pip install matplotlib") from None
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def curves(runs: Sequence[Curves], path: Path, title: str) -> Path:
    """Loss, accuracy and sparsity against optimizer steps; train solid, validation dashed."""
    fig = new_figure(15, 4.3)
    ax_loss, ax_acc, ax_sp = fig.subplots(1, 3)
    for color, run in zip(_colors(len(runs)), runs):
        prefix = f"{run.label}: " if len(runs) > 1 else ""
        steps = [r["step"] for r in run.train]
        dots = "." if len(steps) < 30 else None  # short runs: show where the records are
        ax_loss.plot(steps, [r["loss"] for r in run.train], color=color, marker=dots,
                     label=f"{prefix}train")  # fmt: skip
        ax_acc.plot(steps, [100 * r["acc"] for r in run.train], color=color, marker=dots,
                    label=f"{prefix}train")  # fmt: skip
        if run.val:
            vsteps = [r["step"] for r in run.val]
            style: dict[str, Any] = {"color": color, "linestyle": "--", "marker": "o",
                                     "markersize": 3}  # fmt: skip
            ax_loss.plot(vsteps, [r["loss"] for r in run.val], label=f"{prefix}val", **style)
            ax_acc.plot(vsteps, [100 * r["acc"] for r in run.val], label=f"{prefix}val", **style)
        _sparsity_panel(ax_sp, run, color, prefix)
    ax_loss.set(title="loss", xlabel="optimizer step", ylabel="cross-entropy (mean per example)")
    losses = [r["loss"] for run in runs for r in (*run.train, *run.val) if r["loss"] > 0]
    if losses and max(losses) > 50 * min(losses):  # diverging runs stay readable
        ax_loss.set_yscale("log")
        ax_loss.set_title("loss (log scale)")
    ax_acc.set(title="accuracy", xlabel="optimizer step", ylabel="accuracy (%)")
    ax_sp.set(title="sparsity", xlabel="optimizer step", ylabel="fraction", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc, ax_sp):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=SMALL + 1)
    fig.suptitle(title)
    return save(fig, path)


def _sparsity_panel(ax: Any, run: Curves, color: Any, prefix: str) -> None:
    steps = [r["step"] for r in run.train]
    ax.plot(steps, [r.get("density", 1.0) for r in run.train], color=color,
            label=f"{prefix}weight density")  # fmt: skip
    if any("channel_sparsity" in r for r in run.train):
        ax.plot(steps, [r.get("channel_sparsity", 0.0) for r in run.train], color=color,
                linestyle=":", label=f"{prefix}channel sparsity")  # fmt: skip


def channels(
    live_steps: Sequence[tuple[int, int]],
    groups: Sequence[str],
    totals: Sequence[int],
    snapshots: Sequence[tuple[int, Sequence[int]]],
    path: Path,
    title: str,
) -> Path:
    """Live prunable channels over training: the total as a line, each group as a heatmap row.

    ``live_steps``: (step, live channels summed over groups); ``snapshots``: (step, live count
    per group, in ``groups`` order), step 0 first. The heatmap colour is the live fraction of
    each group, so wide and narrow layers compare; cells carry the count when they fit.
    """
    n = len(groups)
    fig = new_figure(max(8.0, 1.2 + 0.9 * len(snapshots)), 3.0 + max(2.0, 0.22 * n))
    top, bottom = fig.subplots(2, 1, height_ratios=[2.6, max(2.0, 0.22 * n)])
    if live_steps:
        top.plot([s for s, _ in live_steps], [v for _, v in live_steps], marker=".")
    top.set(xlabel="optimizer step", ylabel="live channels",
            title=f"live prunable channels (all groups, of {sum(totals)})")  # fmt: skip
    top.grid(alpha=0.3)
    frac = [[live[g] / max(totals[g], 1) for _, live in snapshots] for g in range(n)]
    image = bottom.imshow(frac, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0,
                          interpolation="nearest")  # fmt: skip
    bottom.set_yticks(range(n), [f"{g} ({t})" for g, t in zip(groups, totals)], fontsize=SMALL)
    bottom.set_xticks(range(len(snapshots)), [str(s) for s, _ in snapshots], fontsize=SMALL)
    bottom.set(
        xlabel="optimizer step (start, then the end of each epoch)",
        ylabel="group (original width)",
        title="live channels per group (colour: live / original; text: live count)",
    )
    if n <= 40 and len(snapshots) <= 30:
        for g in range(n):
            for j, (_, live) in enumerate(snapshots):
                shade = "black" if frac[g][j] > 0.6 else "white"
                bottom.text(j, g, str(live[g]), ha="center", va="center", fontsize=SMALL - 1,
                            color=shade)  # fmt: skip
    fig.colorbar(image, ax=bottom, label="live fraction", shrink=0.8)
    fig.suptitle(title)
    return save(fig, path)


def widths(layers: Sequence[tuple[str, int, int]], path: Path, title: str) -> Path:
    """Output channels of every Conv/Linear layer: dense (grey) against slim (coloured) on the
    left, the kept fraction on the right (narrow layers stay readable next to wide ones)."""
    n = len(layers)
    fig = new_figure(11, 1.6 + 0.2 * n)
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    ys = list(range(n))
    dense = [d for _, d, _ in layers]
    slim = [s for _, _, s in layers]
    left.barh(ys, dense, color="0.82", label="dense (original)")
    left.barh(ys, slim, color="tab:blue", height=0.6, label="slim (kept)")
    left.set_yticks(ys, [name for name, _, _ in layers], fontsize=SMALL)
    left.set_ylim(n - 0.5, -0.5)  # first layer on top, no empty margin
    left.set(xlabel="output channels", xlim=(0, max(dense, default=1) * 1.02))
    left.legend(loc="lower right", fontsize=SMALL + 1)
    kept = [100 * s / d if d else 100.0 for d, s in zip(dense, slim)]
    colors = ["tab:blue" if k < 100 else "0.82" for k in kept]
    right.barh(ys, kept, color=colors)
    for y, k, d, s in zip(ys, kept, dense, slim):
        if s < d:
            right.text(k, y, f" {s}/{d}", va="center", fontsize=SMALL)
    right.set(xlabel="kept output channels (%)", xlim=(0, 118))
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    return save(fig, path)


def channel_histograms(
    groups: Sequence[GroupChannels], key: str, ratio: float, path: Path, title: str
) -> Path:
    """Small multiples, one histogram per group of its live channels' density or UMM.

    Sparse-amenable channels (density below ``ratio`` × the group's density) are stacked in
    orange; on density panels the dashed line is that threshold.
    """
    n = len(groups)
    cols = min(8, max(1, math.ceil(math.sqrt(n))))
    rows = max(1, math.ceil(n / cols))
    fig = new_figure(2.3 * cols + 0.4, 1.9 * rows + 0.9)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        _histogram(ax, groups[i], key, ratio)
        if i % cols == 0:
            ax.set_ylabel("channels", fontsize=SMALL)
    handles = [_patch("tab:blue", "live channel"), _patch("tab:orange", "sparse amenable")]
    if key == "density":
        handles.append(_line(f"amenable threshold ({ratio:g} x group density)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=SMALL + 1)
    fig.suptitle(title)
    return save(fig, path)


def _histogram(ax: Any, g: GroupChannels, key: str, ratio: float) -> None:
    values = g.channel_density if key == "density" else g.channel_umm
    threshold = ratio * g.density
    live = [v for v, a in zip(values, g.alive) if a]
    amen = [a and d < threshold for a, d in zip(g.alive, g.channel_density)]
    normal = [v for v, a, m in zip(values, g.alive, amen) if a and not m]
    starved = [v for v, m in zip(values, amen) if m]
    hi = max([*live, threshold if key == "density" else 0.0]) or 1.0
    if live:  # from 0, so a bar's distance from the axis is the channel's absolute value
        ax.hist([normal, starved], bins=24, range=(0.0, hi * 1.04), stacked=True,
                color=["tab:blue", "tab:orange"])  # fmt: skip
    if key == "density":
        ax.axvline(threshold, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlim(0.0, hi * 1.04)
    ax.yaxis.set_major_locator(_integer_ticks())
    name = g.name if len(g.name) <= 28 else "…" + g.name[-27:]
    ax.set_title(f"{name}\n{g.live}/{g.total} live, {g.amenable} amenable", fontsize=SMALL)
    ax.set_xlabel("channel density" if key == "density" else "channel UMM", fontsize=SMALL)
    ax.tick_params(labelsize=SMALL - 1)


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


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
