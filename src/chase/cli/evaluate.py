"""``chase eval``: test accuracy of a run's slim model (or any ``slim.pt``). A run folder, or a
``.pt`` file inside one (``RUN/slim.pt``), is scored on the run's own data settings; a file
elsewhere needs ``--dataset``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chase.checks import check_int
from chase.cli.console import console
from chase.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from chase.data import DataConfig
    from chase.train.rundir import RunDir


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate a run's slim model on a test set")
    p.add_argument(
        "target",
        help="run folder, or a slim.pt file (in a run folder: scored on the run's data; "
        "elsewhere: give --dataset)",
    )
    p.add_argument("--dataset", help="dataset (default: the run's)")
    p.add_argument("--data-dir", help="dataset folder (default: the run's)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="evaluation batch (default: the run's evaluation batch, so the report's accuracy "
        "is reproduced exactly; 256 for a file outside a run folder)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from chase.data import DataConfig, build_data
    from chase.structure import load_slim
    from chase.train.distributed import resolve_device
    from chase.train.evaluate import evaluate
    from chase.train.rundir import RunDir

    device = resolve_device(args.device, "--device")  # before any loading
    if args.batch_size is not None:
        check_int("--batch-size", args.batch_size, 1)
    target = Path(args.target)
    if not target.exists():
        raise ConfigError(f"{target} does not exist: give a run folder or a slim.pt file")
    loaded = None
    if target.is_dir():
        run = RunDir(target)
        data_cfg, seed = _data_settings(run, args)
        target, loaded = run.slim_path, run.slim
        if loaded is None:
            raise CheckpointError(
                f"{target} does not exist: the run has not finished (chase train --resume "
                f"{run.path} finishes it)"
            )
    elif RunDir(target.parent).is_run():  # RUN/slim.pt: the file of a run folder
        data_cfg, seed = _data_settings(RunDir(target.parent), args)
    elif args.dataset is None:
        raise ConfigError(
            f"--dataset is needed to evaluate {target}: it is not in a run folder "
            "(no config.yaml next to it)"
        )
    else:
        data_cfg, seed = DataConfig(name=args.dataset, dir=args.data_dir, batch_size=256), 0
    loaded = loaded or load_slim(target)
    batch: int = args.batch_size or data_cfg.eval_batch_size or data_cfg.batch_size
    data_cfg = dataclasses.replace(data_cfg, batch_size=1, eval_batch_size=batch, workers=0)
    data = build_data(data_cfg, seed=seed)
    model = loaded.model.to(device).eval()
    result = evaluate(model, data.test, device)
    out = {
        "target": str(target),
        "dataset": data.name,
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "examples": result.count,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if args.json:
        print(json.dumps(out))
    else:
        console.print(
            f"{target}: test accuracy {result.accuracy:.2%} on "
            f"{result.count} {data.name} examples ({out['parameters']:,} parameters)"
        )
    return 0


def _data_settings(run: RunDir, args: argparse.Namespace) -> tuple[DataConfig, int]:
    """The data settings and seed to score a run's model on: the run's own (synthetic data is
    seeded by them; ``--data-dir`` moves its folder), or, with ``--dataset``, another
    dataset's name and folder only."""
    from chase.data import DataConfig

    if args.dataset is not None:
        return DataConfig(name=args.dataset, dir=args.data_dir), 0
    data_cfg = run.config.data
    if args.data_dir is not None:
        data_cfg = dataclasses.replace(data_cfg, dir=args.data_dir)
    return data_cfg, run.config.seed
