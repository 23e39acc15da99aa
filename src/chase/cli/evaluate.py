"""``chase eval``: test accuracy of a run's slim model (or any ``slim.pt``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from chase.cli.console import console
from chase.errors import ConfigError


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
    from chase.train.config import RunConfig
    from chase.train.distributed import resolve_device
    from chase.train.rundir import RunDir

    device = resolve_device(args.device, "--device")  # before any loading
    target = Path(args.target)
    options: dict[str, Any] = {"batch_size": 1, "eval_batch_size": args.batch_size, "workers": 0}
    dataset, data_dir = args.dataset, args.data_dir
    if target.is_dir():  # the run's own data settings (synthetic data is seeded by them)
        cfg = RunConfig.from_dict(RunDir(target).read_config())
        if dataset is None:
            d = cfg.data
            dataset, data_dir = d.name, data_dir or d.dir
            options.update(
                seed=cfg.seed,
                synthetic_like=d.synthetic_like,
                synthetic_size=d.synthetic_size,
                image_size=d.image_size,
            )
        target = RunDir(target).slim
    if dataset is None:
        raise ConfigError("--dataset is needed when evaluating a bare slim.pt file")
    loaded = load_slim(target)
    data = build_data(dataset, data_dir, **options)
    model = loaded.model.to(device).eval()
    correct = count = 0
    with torch.no_grad():
        for x, y in data.test.epoch(0):
            out = model(x.to(device))
            correct += int((out.argmax(1).cpu() == y).sum())
            count += y.numel()
    result = {
        "target": str(target),
        "dataset": data.name,
        "test_accuracy": correct / count,
        "examples": count,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if args.json:
        print(json.dumps(result))
    else:
        console.print(
            f"{target}: test accuracy {result['test_accuracy']:.2%} on "
            f"{count} {data.name} examples ({result['parameters']:,} parameters)"
        )
    return 0
