"""Command-line settings for runs that take seconds, and what tests read back from their
folders (shared by the CLI tests)."""

import hashlib
import json
from pathlib import Path

#: Tiny synthetic CIFAR-shaped data and a small ResNet.
TINY = [
    "--model", "cifar_resnet20", "--dataset", "synthetic", "--batch-size", "16",
    "--set", "data.synthetic_size=64", "--set", "log_every=1", "--set", "bench.repeats=2",
    "--set", "bench.warmup=1", "--set", "recalibrate_bn_steps=2", "--quiet",
]  # fmt: skip

#: Two gloo processes on CPU (``torchrun``): small_cnn without BatchNorm, whose batch statistics
#: would differ between a 32-example batch and two halves; Chase with events every 2 steps.
DDP_RUN = [
    "--model", "small_cnn", "--set", "model_kwargs.batch_norm=false",
    "--dataset", "synthetic", "--set", "data.synthetic_like=fashion-mnist",
    "--set", "data.synthetic_size=128", "--set", "data.augment=false", "--batch-size", "32",
    "--epochs", "2", "--method", "chase", "--lr", "0.05",
    "--set", "sparsity.update_every=2", "--set", "sparsity.channels.every=2",
    "--set", "sparsity.channels.offset=1", "--set", "sparsity.channels.end=6",
    "--set", "bench.repeats=0", "--set", "recalibrate_bn_steps=0", "--set", "log_every=1",
    "--quiet",
]  # fmt: skip


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` → the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def metrics_records(run: Path) -> list[dict]:
    """A run's metrics records without their wall-clock ``seconds``."""
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("seconds", None)
        out.append(record)
    return out
