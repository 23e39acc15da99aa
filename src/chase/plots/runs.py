"""The figures of a run folder (or several), assembled from its files: what ``chase plot``
writes, callable from a notebook (``chase.plots.plot_run(RunDir("runs/x"), Path("out"))``).

Per run: training curves, live channels per group over training, final width of every layer
(dense vs slim) and the per-group histograms of channel density and UMM (the sparse-amenable
channels picture). With several runs also: curves overlaid and accuracy against FLOPs.
``chase.plots.figures`` draws each figure from plain data.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from chase.plots import figures
from chase.plots.figures import Curves, GroupChannels
from chase.sparsity import MASKABLE
from chase.sparsity.config import SparsityConfig
from chase.sparsity.schedules import is_update_step, mest_density, mest_phase_end
from chase.train.rundir import RunDir


def plot_runs(
    runs: list[RunDir], out: str | os.PathLike[str], skipped: list[str] | None = None
) -> list[Path]:
    """One run: its figures in ``out``; several: one folder per run in ``out`` plus the
    comparison figures. ``skipped`` (if given) collects what a run's files did not allow."""
    out, skipped = Path(out), [] if skipped is None else skipped
    if len(runs) == 1:
        return plot_run(runs[0], out, skipped)
    written: list[Path] = []
    for run, folder in zip(runs, unique_names(runs)):
        written += plot_run(run, out / folder, skipped)
    return written + plot_comparison(runs, out, skipped)


def unique_names(runs: list[RunDir]) -> list[str]:
    names: list[str] = []
    for r in runs:
        name, k = r.name, 2
        while name in names:
            name, k = f"{r.name}-{k}", k + 1
        names.append(name)
    return names


def plot_run(
    run: RunDir, out: str | os.PathLike[str], skipped: list[str] | None = None
) -> list[Path]:
    """Every per-run figure that the run's files allow, written into ``out``; what had to be
    skipped is noted in ``skipped`` (if given)."""
    out, skipped = Path(out), [] if skipped is None else skipped
    done: list[Path] = []
    title = _title(run)
    series = _curves(run)
    if series.train:
        done.append(figures.curves([series], out / "curves.png", f"training curves: {title}"))
    else:
        skipped.append(f"{run.name}: curves (no training records in metrics.jsonl)")
    done += _channel_figures(run, out, title, skipped)
    layers = _widths(run)
    if layers is None:
        skipped.append(f"{run.name}: widths (no slim.pt: the run has not finished)")
    elif not any(s < d for _, d, s in layers):
        skipped.append(f"{run.name}: widths (no channel was removed)")
    else:
        done.append(figures.widths(layers, out / "widths.png", _widths_title(run, title)))
    return done


def _title(run: Any) -> str:
    cfg = run.config
    return f"{run.name} ({cfg.model}, {cfg.data.name}, {cfg.method})"


def _curves(run: Any) -> Any:
    train = [r for r in run.metrics if r.get("kind") == "train"]
    val = [r for r in run.metrics if r.get("kind") == "eval" and r.get("split") == "val"]
    config = _engine_config(run)
    if config is None:  # dense, or no checkpoint yet: no budget to draw
        return Curves(run.name, train, val)
    bound, note = _mest_bound(config)
    target = config.channels.sparsity if config.channels is not None else None
    return Curves(run.name, train, val, config.density, bound, note, target)


def _engine_config(run: Any) -> SparsityConfig | None:
    """The engine's configuration (steps, not epochs), as the checkpoint saved it."""
    if not run.checkpoint_path.is_file():
        return None
    state = run.checkpoint.get("engine")
    return SparsityConfig.from_dict(state["config"]) if state else None


def _mest_bound(config: SparsityConfig) -> tuple[list[tuple[int, float]], str]:
    """MEST's soft bound as the engine applies it: D(t) set at each topology update of its
    phase A and held until the next, the budget from T_A on (the density may rise above the
    budget up to it); points for the density panel and a legend note. Nothing for other
    updaters."""
    end = mest_phase_end(config)
    if config.updater != "mest" or end <= 0 or config.mest_overshoot <= 0:
        return [], ""
    step = config.update_every
    updates = [t for t in range(step, end, step) if is_update_step(config, t)]
    updates = updates[:: math.ceil(len(updates) / 400) or 1]  # a long run: every k-th update
    points = [(t, mest_density(config, t)) for t in updates] + [(end, config.density)]
    note = (
        f"MEST soft bound at updates: budget + {config.mest_overshoot:g} at step 0, "
        f"cosine decay to the budget by step {end}"
    )
    return points, note


def _channel_figures(run: Any, out: Path, title: str, skipped: list[str]) -> list[Path]:
    done: list[Path] = []
    report = run.channels
    snapshots = [r for r in run.metrics if r.get("kind") == "channels"]
    totals = _group_totals(run) if snapshots else {}
    names = [g for g in snapshots[-1]["groups"] if g in totals] if snapshots else []
    if names:
        sizes = [totals[g] for g in names]
        series = [(r["step"], [r["groups"][g] for g in names]) for r in snapshots]
        live = [(0, sum(sizes))] + [
            (r["step"], r["live_channels"]) for r in run.metrics if "live_channels" in r
        ]
        path = out / "channels.png"
        done.append(figures.channels(live, names, sizes, series, path, f"channels: {title}"))
    else:
        skipped.append(f"{run.name}: channels over training (no channel records: not a Chase run)")
    if report is None:
        skipped.append(f"{run.name}: channel histograms (no channels.json)")
        return done
    groups = [_group(name, g) for name, g in report["groups"].items() if g["live"] > 0]
    ratio = float(report.get("ratio", 0.5))
    share = f"{100 * report.get('amenable_fraction', 0.0):.1f}% of live channels"
    share += f" {figures.amenable_note(ratio)}"
    heads = {
        "density": "channel density (active / original weights) over its group's density",
        "umm": "channel UMM (sum of |w| over active / original weights) over its group's mean",
    }
    for key, head in heads.items():
        head = f"{head}, end of training\n{title}\n{share}"
        path = out / f"channel_{key}.png"
        done.append(figures.channel_histograms(groups, key, ratio, path, head))
    return done


def _group(name: str, g: dict[str, Any]) -> Any:
    return GroupChannels(
        name, int(g["total"]), int(g["live"]), int(g["amenable"]), float(g["density"]),
        list(g["channel_density"]), list(g["channel_umm"]), [bool(a) for a in g["alive"]],
    )  # fmt: skip


def _group_totals(run: Any) -> dict[str, int]:
    """Original size of each prunable group: from channels.json, else the checkpoint."""
    if run.channels is not None:
        return {name: int(g["total"]) for name, g in run.channels["groups"].items()}
    engine = run.checkpoint.get("engine") or {}
    state = engine.get("channels") or {}
    return {str(name): int(size) for name, size in state.get("groups", [])}


def _widths(run: Any) -> list[tuple[str, int, int]] | None:
    """(layer, dense output channels, slim output channels) from ``slim.pt`` and its spec."""
    saved = run.slim
    if saved is None:
        return None
    out = []
    for name, module in saved.model.named_modules():
        if isinstance(module, MASKABLE):
            fqn = f"{name}.weight"
            slim = int(module.weight.shape[0])
            dense = int(saved.spec.sizes.get(fqn, {}).get(0, slim))
            out.append((name, dense, slim))
    return out


def _widths_title(run: Any, title: str) -> str:
    report = run.report or {}
    flops = report.get("flops") or {}
    ratio = flops.get("gpu_supported_ratio")
    extra = f"\nGPU-supported FLOPs: {ratio:.3f}x dense" if ratio is not None else ""
    return f"width of every layer, dense vs slim: {title}{extra}"


def plot_comparison(
    runs: list[RunDir], out: str | os.PathLike[str], skipped: list[str] | None = None
) -> list[Path]:
    """Curves of all runs overlaid, and accuracy against FLOPs for the finished ones."""
    out, skipped = Path(out), [] if skipped is None else skipped
    done = []
    series = [s for s in (_curves(r) for r in runs) if s.train]
    if series:
        done.append(figures.curves(series, out / "curves.png", "training curves of all runs"))
    points = []
    for r, label in zip(runs, unique_names(runs)):
        rep = r.report
        if rep is None:
            skipped.append(
                f"{r.name}: accuracy vs FLOPs (no report.json: the run has not finished)"
            )
            continue
        f = rep["flops"]
        points.append(
            {
                "label": f"{label} ({rep['method']})",
                "accuracy": rep["test_accuracy"],
                "gpu_ratio": f["gpu_supported_ratio"],
                "sparse_ratio": f["sparse_ratio"],
            }
        )
    if points:
        done.append(figures.accuracy_vs_flops(points, out / "accuracy_vs_flops.png"))
    return done
