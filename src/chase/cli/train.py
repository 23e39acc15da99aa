"""``chase train``: a run from a preset, a YAML file, ``--set`` and flags; or ``--resume``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from chase.cli.console import ConsoleProgress, console, report_table
from chase.errors import ConfigError
from chase.train.config import RunConfig
from chase.train.presets import preset
from chase.train.sources import deep_merge, load_yaml, nested, parse_assignment

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
    p.add_argument("--method", help="dense, static, set, rigl, snfs, mest or chase")
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
    p.add_argument("--out", help="run folder (default: runs/<preset or model-dataset-method>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument(
        "--stop-after-steps",
        type=int,
        metavar="K",
        help="stop once the run has taken K steps, as if interrupted (checkpointed)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=run)


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults < preset < --config YAML < --set < flags, as one plain dict."""
    cfg: dict[str, Any] = RunConfig().to_dict()
    if args.preset:
        cfg = deep_merge(cfg, preset(args.preset))
    if args.config:
        cfg = deep_merge(cfg, load_yaml(args.config))
    for assignment in args.sets:
        cfg = deep_merge(cfg, parse_assignment(assignment))
    for flag, key in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            cfg = deep_merge(cfg, nested(key, value))
    return cfg


def _default_out(args: argparse.Namespace, cfg: RunConfig) -> Path:
    name = args.preset or f"{cfg.model}-{cfg.data.name}-{cfg.method}"
    return Path("runs") / name


def run(args: argparse.Namespace) -> int:
    from chase.train import distributed

    try:
        code = _train(args)
    except BaseException:
        distributed.teardown(together=False)  # leave the process group on every path
        raise
    distributed.teardown()
    return code


def _train(args: argparse.Namespace) -> int:
    from chase.train.loop import Trainer
    from chase.train.report import finish
    from chase.train.rundir import RunDir

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
        rundir = RunDir(args.resume)
        cfg = RunConfig.from_dict(rundir.read_config())
    else:
        cfg = RunConfig.from_dict(resolve_config(args))
        rundir = RunDir(args.out or _default_out(args, cfg))
        if rundir.is_run() and not args.overwrite:  # refuse before any expensive setup
            rundir.create(cfg.to_dict(), overwrite=False)
    main = int(os.environ.get("RANK", "0")) == 0
    progress = ConsoleProgress(enabled=main and not args.quiet)
    trainer = Trainer(cfg, rundir, progress)
    if not args.resume and main:
        rundir.create(cfg.to_dict(), overwrite=args.overwrite)
    if main and not args.quiet:
        console.print(
            f"run folder: {rundir.path}  ({trainer.total} steps, "
            f"{trainer.steps_per_epoch} per epoch)"
        )
    with _StopOnSignals(trainer):
        finished = trainer.fit(resume=bool(args.resume), stop_after=args.stop_after_steps)
    if not finished:
        reason = trainer.stop_reason or "a stop request"
        if main:
            print(
                f"chase: stopped after step {trainer.clock.it} ({reason}); resume with: "
                f"chase train --resume {rundir.path}",
                file=sys.stderr,
            )
        return 0 if reason.startswith("--stop-after-steps") else 128 + _SIGNALS.get(reason, 1)
    report = finish(trainer)
    if main and not args.quiet:
        console.print(report_table(report))
        console.print(f"slim model: {rundir.slim}\nreport: {rundir.report}")
    return 0


_SIGNALS = {"SIGINT": int(signal.SIGINT), "SIGTERM": int(signal.SIGTERM)}


class _StopOnSignals:
    """First SIGINT/SIGTERM: finish the step, checkpoint, stop. Second: exit at once (the last
    checkpoint stays intact because checkpoints are written atomically)."""

    def __init__(self, trainer: Any):
        self.trainer = trainer
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.trainer.stop_reason is not None:
            os._exit(128 + signum)
        self.trainer.request_stop(name)

    def __enter__(self) -> _StopOnSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
