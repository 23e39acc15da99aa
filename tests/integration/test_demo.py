"""The newcomer's demo: real Fashion-MNIST, 90% weight sparsity, half the channels removed."""

import json
from pathlib import Path

import pytest

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo as the README runs it (it shrinks while training) and the same run with
    ``sparsity.channels.shrink=false``: report.json of each."""
    from chase.cli.main import main

    out = {}
    for shrink in ("true", "false"):
        run = tmp_path_factory.mktemp(f"shrink-{shrink}") / "demo"
        args = ["train", "--preset", "fmnist-demo", "--out", str(run), "--quiet"]
        assert main([*args, "--set", f"sparsity.channels.shrink={shrink}"]) == 0
        out[shrink == "true"] = json.loads((run / "report.json").read_text())
    return out


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST.exists(), reason="dataset-fashion-mnist is not installed")
def test_fmnist_demo_reaches_88_percent_slim(demo):
    report = demo[True]
    assert report["shrink"]["events"] > 0
    assert report["test_accuracy"] >= 0.88
    assert report["density"] == pytest.approx(0.1, abs=1e-3)
    assert report["channel_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert report["params_slim"] < report["params_dense"]
    assert report["flops"]["gpu_supported_ratio"] < 0.6


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST.exists(), reason="dataset-fashion-mnist is not installed")
def test_shrinking_while_training_costs_no_accuracy(demo):
    shrunk, masked = demo[True], demo[False]
    assert masked["shrink"]["events"] == 0
    assert abs(shrunk["test_accuracy"] - masked["test_accuracy"]) <= 0.003  # 0.3 points
    assert shrunk["channel_sparsity"] == masked["channel_sparsity"]
    assert shrunk["flops"]["train_gpu_supported"] < masked["flops"]["train_gpu_supported"]
