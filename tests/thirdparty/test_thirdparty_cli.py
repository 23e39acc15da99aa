"""The CLI on third-party models: ``chase groups`` and a short ``chase train`` run by name."""

from __future__ import annotations

import json

import pytest

import chase
import vision_support
from chase.cli.main import main

vision_support.require("torchvision")
vision_support.require("timm")


@pytest.fixture
def cli(capsys):
    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_groups_command_prints_the_groups_and_reasons(cli) -> None:
    code, out, _ = cli("groups", "--model", "timm:regnetx_002", "--dataset", "cifar10")
    assert code == 0
    assert out.startswith("32 channel groups: 31 prunable")
    assert "reaches the model output" in out  # the classifier
    code, out, _ = cli("groups", "--model", "tv:resnet18", "--dataset", "cifar10", "--json")
    rows = json.loads(out)
    assert code == 0 and {r["name"] for r in rows} >= {"conv1:out", "fc:out"}
    assert all(r["shrink_only"] == [] for r in rows)  # no LayerNorm in a ResNet
    code, _, err = cli("groups", "--model", "timm:efficientnet_bO", "--dataset", "cifar10")
    assert code == 2 and "did you mean 'timm:efficientnet_b" in err and len(err.splitlines()) == 1


def test_train_runs_a_timm_model_by_name_and_slim_pt_loads(cli, tmp_path) -> None:
    out = tmp_path / "run"
    code, _, err = cli(
        "train", "--model", "timm:regnetx_002", "--dataset", "synthetic", "--batch-size", "8",
        "--set", "data.synthetic_size=16", "--set", "bench.repeats=1", "--set", "bench.warmup=0",
        "--set", "recalibrate_bn_steps=1", "--epochs", "2", "--method", "chase",
        "--set", "sparsity.update_every=2", "--set", "sparsity.channels.every=2",
        "--set", "sparsity.channels.sparsity=0.5", "--quiet", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["channel_sparsity"] > 0.3
    assert report["params_slim"] < report["params_dense"]
    assert report["equivalence_max_abs_diff"] < 1e-4
    slim = chase.load_slim(out / "slim.pt")  # rebuilt through create_model("timm:...")
    assert slim.arch is not None and slim.arch["name"] == "timm:regnetx_002"
    assert vision_support.n_params(slim.model) == report["params_slim"]
