"""A tiny finished Chase run shared by the measuring-command tests, and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from chase.cli.main import main

TRAIN = [
    "train", "--model", "cifar_resnet20", "--dataset", "synthetic", "--method", "chase",
    "--epochs", "2", "--batch-size", "16", "--set", "data.synthetic_size=64",
    "--set", "data.val_split=16", "--set", "sparsity.update_every=2",
    "--set", "sparsity.channels.every=2", "--set", "sparsity.channels.sparsity=0.5",
    "--set", "log_every=1", "--set", "bench.repeats=0", "--set", "bench.batch_sizes=[3]",
    "--set", "recalibrate_bn_steps=2", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch Chase run (6 steps, channels removed, ``bench.batch_sizes`` [3]);
    tests must not modify it."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``chase ARGS...`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: object) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
