"""``chase train``: a run from a preset, a YAML file, ``--set`` and flags; or ``--resume``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from chase.cli.console import ConsoleProgress, console, report_table, warning_line
from chase.errors import ConfigError
from chase.sparsity import UPDATERS

#: flag → dotted config key (flags win over every other source)
FLAGS = {
    "model": "model",
    "dataset": "data.name",
    "data_dir": "data.dir",
    "method": "method",
    "density": "sparsity.density",
    "channel_sparsity": "sparsity.channels.sparsity",
    "epochs": "epochs",
    "batch_size": "data.batch_size",
    "lr": "optim.lr",
    "seed": "seed",
    "device": "device",
    "subset": "data.subset",
    "test_subset": "data.test_subset",
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model (sparse, then slim)",
                       description="Train with a preset and/or flags; ends with slim.pt and "
                                   "report.json in the run folder.")  # fmt: skip
    p.add_argument("--preset", help="named preset (list: chase presets)")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML run configuration")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config field, e.g. --set optim.lr=0.05 (repeatable)",
    )
    p.add_argument("--model", help="model name (registry name or alias)")
    p.add_argument("--dataset", help="cifar10, cifar100, imagenet, fashion-mnist, mnist, synthetic")
    p.add_argument("--data-dir", help="dataset folder")
    updaters = ", ".join(UPDATERS.names())
    p.add_argument("--method", help=f"dense, chase, or a topology updater ({updaters})")
    p.add_argument("--density", type=float, help="fraction of weights kept active (0, 1]")
    p.add_argument(
        "--channel-sparsity",
        type=float,
        help="Chase's final fraction of prunable channels removed [0, 1)",
    )
    p.add_argument("--epochs", type=float, help="training epochs")
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--lr", type=float, help="base learning rate")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--subset", type=int, help="train on the first N training examples")
    p.add_argument(
        "--test-subset",
        type=int,
        metavar="N",
        help="evaluate on N test examples only (all classes; for quick runs)",
    )
    add_run_options(p)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument(
        "--redo-end",
        action="store_true",
        help="with --resume: run a finished run's end (slim model, report) again (an "
        "unfinished run just resumes)",
    )
    p.set_defaults(handler=run)


def add_run_options(p: Any) -> None:
    """Options of the run itself, shared with ``chase train-reference``."""
    p.add_argument("--out", help="run folder (default: runs/<preset or model-dataset-method>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument(
        "--stop-after-steps",
        type=int,
        metavar="K",
        help="stop once the run has taken K steps, as if interrupted (checkpointed)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")


def sources(args: argparse.Namespace) -> Any:
    """The settings sources ``chase train``'s arguments name."""
    from chase.train.run import Sources

    flags = {key: getattr(args, flag) for flag, key in FLAGS.items()}
    return Sources(args.preset, None, args.config, list(args.sets), flags)


def run(args: argparse.Namespace) -> int:
    from chase.train.config import RunConfig
    from chase.train.run import check_stop_after, default_run_dir, resolve_config

    check_stop_after(args.stop_after_steps)
    if args.resume:
        used = [
            f"--{f.replace('_', '-')}"
            for f in (*FLAGS, "preset", "config", "out")
            if getattr(args, f, None) is not None
        ] + (["--set"] if args.sets else [])
        if used:
            raise ConfigError(
                f"--resume continues a run with its saved configuration; drop {', '.join(used)}"
            )
        return execute(None, args.resume, args, resume=True)
    if args.redo_end:
        raise ConfigError("--redo-end only applies with --resume RUN_DIR of a finished run")
    cfg = RunConfig.from_dict(resolve_config(sources(args)))
    return execute(cfg, args.out or default_run_dir(cfg, args.preset), args)


def execute(cfg: Any, out: Any, args: argparse.Namespace, resume: bool = False) -> int:
    """Run ``cfg`` (None: resume) in ``out`` with the run options of ``args``; print the
    outcome; return the exit code."""
    from chase.train.run import exit_code, run_training

    main = int(os.environ.get("RANK", "0")) == 0
    show = main and not args.quiet

    def started(trainer: Any) -> None:
        if show:
            console.print(
                f"run folder: {trainer.run.path}  ({trainer.total} steps, "
                f"{trainer.steps_per_epoch} per epoch)"
            )

    outcome = run_training(
        cfg, out, resume=resume, overwrite=args.overwrite, stop_after=args.stop_after_steps,
        progress=ConsoleProgress(enabled=show), on_start=started,
        redo_end=getattr(args, "redo_end", False),
    )  # fmt: skip
    if outcome.already_finished:
        if main:
            console.print(
                f"{outcome.run_dir.path} already finished (step {outcome.step}, report.json "
                "written): nothing to do; --redo-end runs its end of run again",
                soft_wrap=True,
            )
        return 0
    if not outcome.finished:
        if main:
            print(stop_message(outcome, args.stop_after_steps), file=sys.stderr)
        return exit_code(outcome.reason)
    if show and outcome.report is not None:
        console.print(report_table(outcome.report))
        for problem in outcome.report.get("warnings", []):
            console.print(warning_line(f"warning: {problem}"), soft_wrap=True)
        console.print(
            f"slim model: {outcome.run_dir.slim_path}\nreport: {outcome.run_dir.report_path}"
        )
    return 0


def stop_message(outcome: Any, stop_after: int | None) -> str:
    """The one line a stopped run ends with: where it stopped and how to go on."""
    reason = outcome.reason.value
    if reason == "--stop-after-steps":
        reason = f"--stop-after-steps {stop_after}"
    run = outcome.run_dir
    where = f"after step {outcome.step}" if outcome.step is not None else "before training began"
    if not run.is_run():
        return f"chase: stopped {where} ({reason}); no run was started in {run.path}"
    return f"chase: stopped {where} ({reason}); resume with: chase train --resume {run.path}"
