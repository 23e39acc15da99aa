"""The newcomer's demo: real Fashion-MNIST, 90% weight sparsity, half the channels removed."""

import json
from pathlib import Path

import pytest

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST.exists(), reason="dataset-fashion-mnist is not installed")
def test_fmnist_demo_reaches_88_percent_slim(cli, tmp_path):
    out = tmp_path / "demo"
    code, _, err = cli("train", "--preset", "fmnist-demo", "--out", out, "--quiet")
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["test_accuracy"] >= 0.88
    assert report["density"] == pytest.approx(0.1, abs=1e-3)
    assert report["channel_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert report["params_slim"] < report["params_dense"]
    assert report["flops"]["gpu_supported_ratio"] < 0.6
