"""``chase flops``: JSON keys and values, agreement with torch's counter and with the run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from chase.models import create_model

KEYS = {"flops", "params_dense", "params_nonzero", "per_layer"}
FLOPS = {"dense", "sparse", "sparse_ratio", "gpu_supported", "gpu_supported_ratio"}
TRAIN = {"train", "train_dense", "train_ratio", "train_gpu_supported", "train_gpu_supported_ratio"}


def flops_json(cli, *args: object) -> dict:
    code, out, err = cli("flops", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_model_json_keys_and_values(cli) -> None:
    d = flops_json(cli, "--model", "cifar_resnet20", "--dataset", "cifar10", "--density", "0.2")
    assert set(d) == KEYS and set(d["flops"]) == FLOPS
    layers, f = d["per_layer"], d["flops"]
    assert all(set(row) == {"name", "dense_flops", "density", "sparse_flops"} for row in layers)
    assert f["sparse"] == pytest.approx(sum(r["sparse_flops"] for r in layers), rel=1e-12)
    independent = sum(r["dense_flops"] * r["density"] for r in layers)
    assert f["sparse"] == pytest.approx(independent, rel=1e-9)
    assert f["dense"] == sum(r["dense_flops"] for r in layers)
    assert 0 < f["sparse_ratio"] < 1 and 0 < f["gpu_supported_ratio"] <= 1
    assert f["gpu_supported"] == f["dense"]  # no channel is removed at init
    assert 0 < d["params_nonzero"] < d["params_dense"]
    model = create_model("cifar_resnet20", num_classes=10)
    assert d["params_dense"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["cifar_resnet20", "vgg11"])
def test_dense_flops_match_torch_flop_counter(cli, name: str) -> None:
    d = flops_json(cli, "--model", name, "--dataset", "cifar10")
    model = create_model(name, num_classes=10).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert d["flops"]["dense"] == pytest.approx(counter.get_total_flops(), rel=0.01)


def test_allocations_and_keep_dense(cli) -> None:
    uniform = flops_json(cli, "--model", "vgg11", "--density", "0.3", "--allocation", "uniform")
    assert {round(r["density"], 2) for r in uniform["per_layer"]} == {0.3}
    kept = flops_json(cli, "--model", "vgg11", "--density", "0.3", "--keep-dense", "first,last")
    layers = kept["per_layer"]
    assert layers[0]["density"] == 1.0 and layers[-1]["density"] == 1.0
    assert 0 < kept["flops"]["sparse_ratio"] < 1


def test_run_json_matches_the_run_report(cli, run_dir: Path) -> None:
    d = flops_json(cli, run_dir)
    assert set(d) == KEYS | {"params_slim", "params_slim_nonzero"}
    assert set(d["flops"]) == FLOPS | TRAIN
    report = json.loads((run_dir / "report.json").read_text())
    assert 0 < d["flops"]["train_ratio"] < 1
    assert d["flops"] == pytest.approx(report["flops"])  # one vocabulary, the same numbers
    assert d["flops"]["gpu_supported_ratio"] < 1  # channels were removed
    for key in ("params_dense", "params_nonzero", "params_slim", "params_slim_nonzero"):
        assert d[key] == report[key], key
    assert report["params_slim_nonzero"] < report["params_nonzero"]  # removed biases and norms


def test_unfinished_run_slims_from_the_checkpoint(cli, run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "unfinished"
    shutil.copytree(run_dir, copy)
    for name in ("slim.pt", "report.json", "channels.json"):
        (copy / name).unlink()
    assert flops_json(cli, copy) == flops_json(cli, run_dir)


def test_table_output(cli, run_dir: Path) -> None:
    code, out, _ = cli("flops", run_dir)
    assert code == 0
    assert "GPU-supported FLOPs" in out and "training FLOPs" in out and "layer1.0.conv1" in out
    assert "training FLOPs on dense hardware" in out  # the run report's train_gpu_supported


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "no_such_net"],
        ["--model", "cifar_resnet20", "--density", "1.5"],
        ["--model", "cifar_resnet20", "--dataset", "nope"],
        ["--model", "cifar_resnet20", "--keep-dense", "no_such_layer"],
        ["/no/such/run"],
        [],
    ],
)
def test_bad_input_exits_2_with_one_line(cli, args: list[str]) -> None:
    code, out, err = cli("flops", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("chase: error:")
