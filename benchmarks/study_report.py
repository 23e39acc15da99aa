"""docs/results.md, written entirely from the accuracy study's run folders and its log.

    python benchmarks/accuracy_study.py --report [--study-dir DIR] [--results docs/results.md]

Every number comes from a run's ``report.json`` (the final model: last epoch, test set used
once at the end), its ``metrics.jsonl`` / ``channels.json`` (the amenable-channel tables) or
the study log (wall times, machine). Nothing is typed by hand.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import study_amenable
import study_figures
from common import markdown
from study_cells import Cell, Result, cells, collect, fmt, speed_batches
from study_plan import DENSITIES, METHODS, MODELS, SEEDS, plan

from chase.train.rundir import RunDir

DATASETS = {"fashion-mnist": "Fashion-MNIST"}


def write_results(study_dir: Path, results: Path, argv: Sequence[str]) -> list[Path]:
    """Write ``results`` and its figures (next to it, under ``figures/``)."""
    found = collect(study_dir)
    if not found:
        raise SystemExit(f"no finished runs under {study_dir}: run the study first")
    order = list(METHODS)
    grid = cells(found, order, list(MODELS))
    figures = results.parent / "figures"
    data = RunDir(found[0].path).config.data.name
    figure = figures / "accuracy_vs_flops.png"
    written = [study_figures.accuracy_vs_flops(grid, order, figure, DATASETS.get(data, data))]
    parts = [
        _header(study_dir, found),
        _coverage(found),
        _protocol(found[0]),
        _machine(study_dir, found),
        *(_model_table(model, grid, found) for model in dict.fromkeys(c.model for c in grid)),
        _figure_section(written[0], results),
        _claims(grid),
    ]
    amenable_md, amenable_files = study_amenable.section(grid, results, figures)
    parts.append(amenable_md)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return [results, *written, *amenable_files]


def read_log(study_dir: Path) -> list[dict[str, Any]]:
    path = study_dir / "study_log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _header(study_dir: Path, found: list[Result]) -> str:
    log = read_log(study_dir)
    size = next((e["size"] for e in log if "size" in e), "study")
    device = next((e["device"] for e in log if "device" in e), "cpu")
    grid = cells(found, list(METHODS), list(MODELS))
    seeds = ",".join(str(s) for s in sorted({r.seed for r in found}))
    models = ",".join(dict.fromkeys(c.model for c in grid))
    methods = ",".join(dict.fromkeys(c.method for c in grid))
    densities = ",".join(f"{d:g}" for d in sorted({c.density for c in grid if c.density < 1}))
    run = (f"python benchmarks/accuracy_study.py --study-dir {study_dir} --size {size} "
           f"--device {device} --models {models} --methods {methods} --densities {densities} "
           f"--seeds {seeds}")  # fmt: skip
    data = RunDir(found[0].path).config.data.name
    return "\n".join([
        f"# Results: a method-by-density accuracy study on {DATASETS.get(data, data)}",
        "",
        "Written by `benchmarks/accuracy_study.py --report` from the run folders; every number",
        "below comes from a run's files, none is typed by hand. To reproduce (resumable: rerun",
        "the same command after an interruption), then write this page:",
        "",
        "```",
        run,
        f"python benchmarks/accuracy_study.py --study-dir {study_dir} --report",
        "```",
    ])  # fmt: skip


def _coverage(found: list[Result]) -> str:
    """How much of the full grid (every model, method, density and seed of the plan) the page
    covers, and which models have no finished run, so a partial page says it is partial."""
    full = plan(list(MODELS), list(METHODS), list(DENSITIES), list(SEEDS))
    done = {(r.model, r.method, r.density, r.seed) for r in found}
    have = sum((r.model, r.method, r.density, r.seed) in done for r in full)
    if have == len(full):
        return f"This page covers the full grid: all {len(full)} runs."
    per_model = []
    for model in MODELS:
        mine = [r for r in full if r.model == model]
        n = sum((r.model, r.method, r.density, r.seed) in done for r in mine)
        per_model.append(f"{model} {n} of {len(mine)}")
    return (
        f"**Partial**: this page covers {have} of the full grid's {len(full)} runs "
        f"({', '.join(per_model)}); a model or cell that is missing below has not been run "
        "yet, and the readings hold only for what is here."
    )


def _protocol(sample: Result) -> str:
    cfg = RunDir(sample.path).config
    d, s, o = cfg.data, cfg.sparsity, cfg.optim
    train = d.subset - d.val_split if d.subset else None
    sgd = f"SGD with momentum {o.momentum}{' (Nesterov)' if o.nesterov else ''}"
    return "\n".join([
        "## Protocol",
        "",
        f"- Data: `{d.name}`, the first {d.subset} training images, of which {d.val_split} "
        f"(drawn with the run's seed) form a **validation split**; {train} are trained on. "
        "The test set is the dataset's whole test split.",
        f"- Every run: {cfg.epochs} epochs, batch {d.batch_size}, {sgd}, weight decay "
        f"{o.weight_decay}, learning rate {o.lr} with {cfg.schedule.name} decay after "
        f"{cfg.schedule.warmup_epochs} warm-up epochs, no augmentation. Sparse runs: ERK "
        f"allocation, a topology update every {s['update_every']} steps, channel events every "
        f"{s['channels']['every']} steps (β = {s['channels']['min_keep_ratio']}). MEST and "
        f"Chase explore under MEST's soft memory bound until `{s['mest_end']}` (epochs), then "
        f"update like RigL; Chase reaches its S_c at `{s['channels']['end']}`. The same "
        "schedule for every method; `benchmarks/study_plan.py` "
        "holds the grid and the settings, each run folder its resolved `config.yaml`.",
        "- The validation split is evaluated at each epoch end and only logged "
        "(`metrics.jsonl`); nothing is selected with it here either.",
        "- The **test set is used once per run, at the end**: the final model (last step, no "
        "best-epoch or checkpoint selection) is evaluated masked, then slimmed, its BatchNorm "
        f"recalibrated on {cfg.recalibrate_bn_steps} training batches, and evaluated again. "
        "The tables report these final numbers from `report.json`; a test "
        "(`tests/integration/test_protocol.py`) checks that training never touches the test "
        "set and that only the last checkpoint exists.",
        "- Mean ± sample standard deviation over seeds; one seed shows the value alone.",
    ])  # fmt: skip


def overlap(log: list[dict[str, Any]]) -> int:
    """The most runs of the study log that were running at one moment (0 for an empty log)."""
    edges = []
    for e in log:
        start = datetime.datetime.fromisoformat(e["started"]).timestamp()
        edges += [(start, 1), (start + e["wall_s"], -1)]
    running = most = 0
    for _, change in sorted(edges, key=lambda edge: (edge[0], edge[1])):  # ends first on ties
        running += change
        most = max(most, running)
    return most


def _machine(study_dir: Path, found: list[Result]) -> str:
    log = read_log(study_dir)
    envs = {(e["env"].get("gpu") or e["env"]["cpu"], e["env"]["threads"], e["env"]["torch"],
             e["env"]["device"]) for e in log}  # fmt: skip
    loads = [e["env"]["load_average"][0] for e in log]
    train_s = sum(r.report.get("seconds", 0.0) for r in found)
    wall = sum(e["wall_s"] for e in log)
    lines = ["## Machine and time", ""]
    for where, threads, torch_version, device in sorted(envs):
        lines.append(f"- {device}: {where}, {threads} torch threads, torch {torch_version}")
    if log:
        dates = sorted(e["started"] for e in log)
        ends = [
            datetime.datetime.fromisoformat(e["started"]).timestamp() + e["wall_s"] for e in log
        ]
        span = max(ends) - datetime.datetime.fromisoformat(dates[0]).timestamp()
        lines.append(f"- Runs started between {dates[0]} and {dates[-1]} ({span / 3600:.2f} h "
                     f"from the first start to the last end); 1-minute load average at each "
                     f"run's start {min(loads):.2f}–{max(loads):.2f}.")  # fmt: skip
        most = overlap(log)
        if most > 1:
            lines.append(f"- Up to {most} runs trained at the same time (separate processes, "
                         "sharing the machine), so per-run times are longer than alone and "
                         "compare only among runs timed the same way.")  # fmt: skip
    lines += [
        f"- {len(found)} finished runs: {train_s / 3600:.2f} h of training (sum of `report.json` "
        f"`seconds`), {wall / 3600:.2f} h of wall time (sum over the study log, including the "
        "end of each run: test evaluation, slimming, FLOPs, speed).",
    ]
    per_model: dict[str, list[float]] = {}
    for e in log:
        if e.get("finished"):
            per_model.setdefault(e["run"].split("/")[0], []).append(e["wall_s"])
    if per_model:
        text = ", ".join(f"{m} {sum(v) / len(v):.0f} s" for m, v in per_model.items())
        lines.append(f"- Mean wall time per run: {text}.")
    return "\n".join(lines)


def _model_table(model: str, grid: list[Cell], found: list[Result]) -> str:
    mine = [c for c in grid if c.model == model]
    batches = speed_batches([r for r in found if r.model == model])
    sample = mine[0].runs[0].report
    head = ["method", "density", "seeds", "test acc % (slim)", "test acc % (masked)",
            "channel sparsity", "GPU-supp. FLOPs", "sparse FLOPs", "train FLOPs (sparse)",
            "train FLOPs (dense hw)", "train time s"]  # fmt: skip
    head += [f"slim speedup b{b}" for b in batches]
    rows = []
    for c in mine:
        row = [c.method, f"{c.density:g}", len(c.runs), fmt(c.stat("acc"), 100),
               fmt(c.stat("acc_masked"), 100), fmt(c.stat("channel_sparsity"), 1, 3),
               fmt(c.stat("gpu_ratio"), 1, 3), fmt(c.stat("sparse_ratio"), 1, 3),
               fmt(c.stat("train_ratio"), 1, 3), fmt(c.stat("train_gpu_ratio"), 1, 3),
               fmt(c.stat("seconds"), 1, 0)]  # fmt: skip
        row += [fmt(c.stat(f"speedup_b{b}"), 1, 2, "×") for b in batches]
        rows.append(row)
    dense = sample["flops"]["dense"]
    intro = (f"## {model}\n\n{sample['params_dense']:,} parameters, {dense / 1e6:.1f} MFLOPs "
             "per 28×28 image (dense). FLOPs columns are ratios to the dense model: "
             "GPU-supported = dense FLOPs of the slim model; train FLOPs (dense hw) = "
             "`flops.train_gpu_supported_ratio` (training on dense kernels with removed "
             "channels gone), `—` where the run's report does not have it. Slim speedup: "
             "`report.json` `speed` rows, dense against slim model at the end of the run on "
             "the run's device (medians of a few calls, on a machine shared with other "
             "work); where no channel was removed (dense, unstructured methods, S_c 0) both "
             "are the same network and the row shows the timing noise.")  # fmt: skip
    return intro + "\n\n" + markdown(head, rows)


def _figure_section(figure: Path, results: Path) -> str:
    rel = figure.relative_to(results.parent)
    return (f"## Accuracy against GPU-supported FLOPs\n\n![accuracy vs FLOPs]({rel})\n\n"
            "Mean over seeds, error bars ± one standard deviation.")  # fmt: skip


def _claims(grid: list[Cell]) -> str:
    """The paper's claims (2) and (3), checked cell by cell with the numbers above."""
    lines = [
        "## The paper's claims at this scale",
        "",
        "Differences of mean test accuracy (slim model), in points; 'within noise' when the "
        "difference is smaller than the larger of the two standard deviations.",
    ]
    rows = []
    for model in dict.fromkeys(c.model for c in grid):
        for density in sorted({c.density for c in grid if c.method != "dense"}, reverse=True):
            rows += _claim_rows(
                {c.method: c for c in grid if c.model == model and c.density == density},
                model,
                density,
            )
    head = ["model", "density", "comparison", "difference (points)", "reading"]
    return "\n".join(lines) + "\n\n" + markdown(head, rows)


def _claim_rows(by: dict[str, Cell], model: str, density: float) -> list[list[Any]]:
    rows = []
    base = [m for m in ("static", "set", "rigl", "snfs") if m in by]
    if "chase-sc0" in by and base:
        best = max(base, key=lambda m: by[m].stat("acc").mean)  # type: ignore[union-attr]
        rows.append(_compare(model, density, by["chase-sc0"], by[best], f"Chase S_c 0 vs best "
                             f"unstructured baseline ({best})"))  # fmt: skip
    for sc in ("chase-sc0.3", "chase-sc0.5", "chase-sc0.5-skip"):
        if sc in by and "chase-sc0" in by:
            gpu = by[sc].stat("gpu_ratio")
            note = f" at {gpu.mean:.3f}× GPU FLOPs" if gpu else ""
            rows.append(
                _compare(model, density, by[sc], by["chase-sc0"], f"{sc} vs Chase S_c 0{note}")
            )
    for sc in ("chase-sc0.3", "chase-sc0.5"):
        t = by[sc].stat("train_ratio") if sc in by else None
        if t is not None:
            verdict = "below dense" if t.mean < 1 else "not below dense"
            rows.append(
                [model, f"{density:g}", f"{sc} training FLOPs", f"{t.mean:.3f}× dense", verdict]
            )
    return rows


def _compare(model: str, density: float, a: Cell, b: Cell, what: str) -> list[Any]:
    sa, sb = a.stat("acc"), b.stat("acc")
    if sa is None or sb is None:
        return [model, f"{density:g}", what, "—", "—"]
    diff = 100 * (sa.mean - sb.mean)
    noise = 100 * max(sa.std or 0.0, sb.std or 0.0)
    reading = "within noise" if abs(diff) <= noise else "better" if diff > 0 else "worse"
    return [model, f"{density:g}", what, f"{diff:+.2f}", reading]
