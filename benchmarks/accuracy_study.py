"""Method-by-density accuracy study on Fashion-MNIST, resumable, and its report.

    python benchmarks/accuracy_study.py                      # the whole study (runs/study)
    python benchmarks/accuracy_study.py --dry-run            # the runs, their states, an estimate
    python benchmarks/accuracy_study.py --models small_cnn --methods rigl,chase-sc0.5 --seeds 0
    python benchmarks/accuracy_study.py --report             # docs/results.md from the run folders
    python benchmarks/accuracy_study.py --archive benchmarks/study  # keep the finished results

Every run goes through the library (``chase.train.run.run_training``) into its own folder,
``<study-dir>/<model>/<method>-d<density>-s<seed>``, and keeps its ``report.json``. A run whose
``report.json`` exists and whose ``config.yaml`` is what this script would run is skipped; an
unfinished one resumes from its checkpoint; a folder holding another configuration stops the
script (``--overwrite`` replaces it). So the study can be run in pieces, stopped with Ctrl-C
(the run checkpoints) and continued with the same command. The grid and the run settings are
in ``study_plan.py``; ``<study-dir>/study_log.jsonl`` records each run's wall time and machine.

``--archive DIR`` copies what the report reads from every finished run (``config.yaml``,
``report.json``, ``metrics.jsonl``, ``channels.json``; no model files) and the log into DIR,
which is a study folder itself: ``--study-dir DIR`` skips those runs and ``--report`` reads
them. The project keeps its results in ``benchmarks/study`` so the study can continue on
another machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from common import environment
from study_plan import DENSITIES, METHODS, MODELS, SEEDS, SIZES, Run, Size, config, plan

from chase.errors import ChaseError
from chase.files import atomic_write
from chase.train.config import RunConfig
from chase.train.run import exit_code, run_training
from chase.train.rundir import RunDir

LOG = "study_log.jsonl"
#: Wall seconds per run of the ``study`` size on the 2-core development machine when quiet:
#: 420 steps of 92 / 145 / 107 ms plus the end of the run (docs/decisions.md, "The accuracy
#: study"). The estimate prefers the mean wall times in this study's own log.
MEASURED_S = {"small_cnn": 55.0, "resnet20": 80.0, "vgg11": 62.0}


def state(run: Run, study_dir: Path, expected: dict[str, Any]) -> str:
    """``done``, ``resume`` (a checkpoint to continue), ``new``, or ``mismatch`` (the folder
    holds another configuration)."""
    folder = RunDir(run.folder(study_dir))
    if not folder.is_run():
        return "new"
    # read through RunConfig, so a folder written before a field was added still matches
    try:
        saved = RunConfig.from_dict(folder.read_config()).to_dict()
    except ChaseError:  # damaged or from another version: not this run
        return "mismatch"
    if saved != expected:
        return "mismatch"
    if folder.report_path.is_file():
        return "done"
    return "resume" if folder.checkpoint_path.is_file() else "new"


def read_log(study_dir: Path) -> list[dict[str, Any]]:
    path = study_dir / LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def estimate_s(runs: list[Run], study_dir: Path, size: Size) -> float:
    """Seconds the runs will take: this study's mean wall time per finished run of each model,
    else the measured constants (scaled by training examples for other sizes)."""
    walls: dict[str, list[float]] = {}
    for entry in read_log(study_dir):
        if entry.get("finished"):
            walls.setdefault(entry["run"].split("/")[0], []).append(entry["wall_s"])
    scale = (size.subset - size.val) * size.epochs / ((20_000 - 2_000) * 3)
    total = 0.0
    for run in runs:
        seen = walls.get(run.model)
        total += sum(seen) / len(seen) if seen else MEASURED_S[run.model] * scale
    return total


def execute(
    run: Run, cfg: Any, how: str, study_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Train one run (new or resumed) and append its wall time to the study log."""
    started = datetime.datetime.now(datetime.timezone.utc)
    env = environment(args.device)
    t0 = time.perf_counter()
    folder = run.folder(study_dir)
    if how == "resume":
        outcome = run_training(None, folder, resume=True)
    else:
        outcome = run_training(cfg, folder, overwrite=True)
    entry = {
        "run": run.key, "how": how, "finished": outcome.finished, "reason": outcome.reason.value,
        "wall_s": round(time.perf_counter() - t0, 2),
        "started": started.isoformat(timespec="seconds"),
        "size": args.size, "device": args.device, "env": env,
    }  # fmt: skip
    with open(study_dir / LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    entry["report"] = outcome.report
    entry["exit"] = exit_code(outcome.reason)
    return entry


#: what the report reads from a finished run (model files and checkpoints stay behind)
KEPT = ("config.yaml", "report.json", "metrics.jsonl", "channels.json")


def archive(study_dir: Path, dest: Path) -> int:
    """Copy every finished run's ``KEPT`` files into the same place under ``dest`` and merge
    the study log (entries already there are not repeated); returns the runs copied."""
    copied = 0
    for report in sorted(study_dir.glob("*/*/report.json")):
        folder = report.parent
        target = dest / folder.relative_to(study_dir)
        target.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            if (folder / name).is_file():
                data = (folder / name).read_bytes()
                atomic_write(target / name, lambda fh, data=data: fh.write(data))
        copied += 1
    have = {json.dumps(e, sort_keys=True) for e in read_log(dest)}
    new = [e for e in read_log(study_dir) if json.dumps(e, sort_keys=True) not in have]
    if new:
        dest.mkdir(parents=True, exist_ok=True)
        with open(dest / LOG, "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(e) + "\n" for e in new)
    return copied


def states_of(runs: list[Run], args: argparse.Namespace) -> dict[Run, tuple[Any, str]]:
    """Each run's configuration and state (see ``state``)."""
    size, study_dir = SIZES[args.size], Path(args.study_dir)
    out = {}
    for r in runs:
        cfg = config(r, size, args.device, args.data_dir, args.dataset)
        out[r] = (cfg, state(r, study_dir, cfg.to_dict()))
    return out


def run_all(runs: list[Run], args: argparse.Namespace) -> int:
    size, study_dir = SIZES[args.size], Path(args.study_dir)
    states = states_of(runs, args)
    clash = [r.key for r in runs if states[r][1] == "mismatch"]
    if clash and not args.overwrite:
        print(f"{len(clash)} run folders hold another configuration (rerun with --overwrite "
              f"to replace them, or choose another --study-dir): {', '.join(clash)}")  # fmt: skip
        return 2
    todo = [r for r in runs if states[r][1] != "done"]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs done; {len(todo)} to run, "
          f"about {estimate_s(todo, study_dir, size) / 60:.0f} min")  # fmt: skip
    study_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for i, r in enumerate(todo, 1):
        cfg, how = states[r][0], "resume" if states[r][1] == "resume" else "new"
        print(f"[{i}/{len(todo)}] {r.key} ({how}) ...", flush=True)
        try:
            entry = execute(r, cfg, how, study_dir, args)
        except Exception:
            failed.append(r.key)
            traceback.print_exc()
            continue
        if not entry["finished"]:
            print(f"stopped ({entry['reason']}): rerun the same command to continue")
            return int(entry["exit"]) or 1
        rep = entry["report"]
        print(f"    {entry['wall_s']:.0f} s, test accuracy {100 * rep['test_accuracy']:.2f}% "
              f"(masked {100 * rep['test_accuracy_masked']:.2f}%)", flush=True)  # fmt: skip
    if failed:
        print(f"{len(failed)} runs failed: {', '.join(failed)}")
        return 1
    return 0


def dry_run(runs: list[Run], args: argparse.Namespace) -> int:
    size, study_dir = SIZES[args.size], Path(args.study_dir)
    states = states_of(runs, args)
    counts: dict[str, int] = {}
    for r in runs:
        counts[states[r][1]] = counts.get(states[r][1], 0) + 1
        print(f"{states[r][1]:8s} {r.folder(study_dir)}")
    todo = [r for r in runs if states[r][1] != "done"]
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    hours = estimate_s(todo, study_dir, size) / 3600
    print(f"{len(runs)} runs ({summary}); about {hours:.2f} h for the {len(todo)} not done "
          f"(size {size.name}, {args.device})")  # fmt: skip
    return 0


def _list(text: str, known: list[str], what: str) -> list[str]:
    items = [t for t in text.split(",") if t]
    bad = [t for t in items if t not in known]
    if bad:
        raise SystemExit(f"--{what}: unknown {bad}; choose from {', '.join(known)}")
    return items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study-dir", default="runs/study", help="where the run folders go")
    p.add_argument("--models", default=",".join(MODELS), help="from: " + ", ".join(MODELS))
    p.add_argument("--methods", default=",".join(METHODS), help="from: " + ", ".join(METHODS))
    p.add_argument("--densities", default=",".join(f"{d:g}" for d in DENSITIES))
    p.add_argument("--seeds", default=",".join(str(s) for s in SEEDS), help="e.g. 0,1,2")
    p.add_argument("--size", choices=sorted(SIZES), default="study", help="run length")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (stored in each run)")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: Debian's)")
    p.add_argument("--dataset", choices=("fashion-mnist", "synthetic"), default="fashion-mnist",
                   help="synthetic: random Fashion-MNIST-shaped data, for tests only")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help="replace folders of other configs")
    p.add_argument("--dry-run", action="store_true", help="list the runs and estimate the time")
    p.add_argument("--report", action="store_true", help="write --results from the run folders")
    p.add_argument("--results", default="docs/results.md", help="the report's markdown file")
    p.add_argument("--archive", metavar="DIR", help="copy the finished runs' results into DIR")
    args = p.parse_args(argv)
    args.models = _list(args.models, list(MODELS), "models")
    args.methods = _list(args.methods, list(METHODS), "methods")
    args.densities = [float(d) for d in args.densities.split(",") if d]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.report:
        from study_report import write_results

        written = write_results(Path(args.study_dir), Path(args.results), sys.argv)
        print("\n".join(str(w) for w in written))
        return 0
    if args.archive:
        copied = archive(Path(args.study_dir), Path(args.archive))
        print(f"{copied} finished runs' results in {args.archive}")
        return 0
    runs = plan(args.models, args.methods, args.densities, args.seeds)
    return dry_run(runs, args) if args.dry_run else run_all(runs, args)


if __name__ == "__main__":
    sys.exit(main())
