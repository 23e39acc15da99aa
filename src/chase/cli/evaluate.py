"""``chase eval``: test accuracy of a run's slim model (or any ``slim.pt``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from chase.cli.console import console
from chase.errors import CheckpointError, ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate a run's slim model on a test set")
    p.add_argument("target", help="run folder or slim.pt file")
    p.add_argument("--dataset", help="dataset (default: the run's)")
    p.add_argument("--data-dir", help="dataset folder (default: the run's)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from chase.data import build_data
    from chase.structure import load_slim
    from chase.train.distributed import resolve_device
    from chase.train.evaluate import evaluate
    from chase.train.rundir import RunDir

    device = resolve_device(args.device, "--device")  # before any loading
    target = Path(args.target)
    if not target.exists():
        raise ConfigError(f"{target} does not exist: give a run folder or a slim.pt file")
    options: dict[str, Any] = {"batch_size": 1, "eval_batch_size": args.batch_size, "workers": 0}
    dataset, data_dir = args.dataset, args.data_dir
    loaded = None
    if target.is_dir():  # the run's own data settings (synthetic data is seeded by them)
        run = RunDir(target)
        if dataset is None:
            d, seed = run.config.data, run.config.seed
            dataset, data_dir = d.name, data_dir or d.dir
            options.update(seed=seed, synthetic_like=d.synthetic_like,
                           synthetic_size=d.synthetic_size, image_size=d.image_size)  # fmt: skip
        target, loaded = run.slim_path, run.slim
        if loaded is None:
            raise CheckpointError(
                f"{target} does not exist: the run has not finished (chase train --resume "
                f"{run.path} finishes it)"
            )
    if dataset is None:
        raise ConfigError("--dataset is needed when evaluating a bare slim.pt file")
    loaded = loaded or load_slim(target)
    data = build_data(dataset, data_dir, **options)
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
