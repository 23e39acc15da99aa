"""``chase train`` in-process: configuration precedence, the run folder and its report."""

import json

import pytest
import torch
import yaml

import chase
from chase.train.config import RunConfig
from chase.train.presets import list_presets, preset
from chase.train.rundir import RUN_DIRS, RUN_FILES
from chase.train.sources import deep_merge
from runs import TINY


def test_short_chase_run_writes_a_complete_run_folder(cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli("train", *TINY, "--epochs", "2", "--method", "chase",
                       "--set", "sparsity.update_every=2", "--set", "sparsity.channels.every=2",
                       "--set", "sparsity.channels.sparsity=0.5", "--out", out)  # fmt: skip
    assert code == 0, err
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "slim.pt",
                 "report.json", "channels.json"):  # fmt: skip
        assert (out / name).is_file(), name
    # --overwrite removes what a run writes: everything here must be on that list
    assert {p.name for p in out.iterdir() if p.is_file()} <= set(RUN_FILES)
    assert {p.name for p in out.iterdir() if p.is_dir()} <= set(RUN_DIRS)
    report = json.loads((out / "report.json").read_text())
    for key in ("test_accuracy", "test_accuracy_masked", "density", "channel_sparsity",
                "params_dense", "params_nonzero", "params_slim", "params_slim_nonzero", "flops",
                "equivalence_max_abs_diff", "steps", "seconds"):  # fmt: skip
        assert key in report, key
    assert set(report["flops"]) >= {
        "dense",
        "sparse",
        "gpu_supported",
        "train",
        "sparse_ratio",
        "gpu_supported_ratio",
        "train_ratio",
    }
    assert report["channel_sparsity"] > 0.3
    assert report["params_slim"] < report["params_dense"]
    assert report["params_slim_nonzero"] < report["params_slim"]
    assert report["params_slim_nonzero"] < report["params_nonzero"] < report["params_dense"]
    assert report["flops"]["gpu_supported"] < report["flops"]["dense"]
    assert report["flops"]["sparse"] < report["flops"]["gpu_supported"]
    assert 0 < report["flops"]["train_ratio"] < 1
    assert report["equivalence_max_abs_diff"] < 1e-4
    assert report["density"] == pytest.approx(0.1, abs=0.002)
    assert report["steps"] == 8
    ckpt = torch.load(out / "checkpoints/last.pt", weights_only=True)
    assert {"model", "optimizer", "engine", "step"} <= set(ckpt)
    slim = chase.load_slim(out / "slim.pt")
    assert sum(p.numel() for p in slim.model.parameters()) == report["params_slim"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 9))
    assert any(r["kind"] == "channels" for r in records)


def test_precedence_flags_over_set_over_yaml_over_preset(cli, tmp_path):
    yaml_file = tmp_path / "cfg.yaml"
    yaml_file.write_text(yaml.safe_dump({
        "optim": {"lr": 0.3, "momentum": 0.5},
        "seed": 11,
        "sparsity": {"density": 0.3, "update_every": 7},
    }))  # fmt: skip
    out = tmp_path / "run"
    code, _, err = cli(
        "train", "--preset", "fmnist-demo", "--config", yaml_file,
        "--set", "optim.momentum=0.8", "--set", "seed=12", "--set", "sparsity.density=0.4",
        "--lr", "0.05", "--density", "0.2",
        "--dataset", "synthetic", "--set", "data.synthetic_like=fashion-mnist",
        "--set", "data.synthetic_size=32", "--batch-size", "16",
        "--stop-after-steps", "1", "--quiet", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["optim"]["lr"] == 0.05  # flag beats YAML
    assert cfg["optim"]["momentum"] == 0.8  # --set beats YAML
    assert cfg["seed"] == 12  # --set beats YAML
    assert cfg["sparsity"]["density"] == 0.2  # flag beats --set and YAML
    assert cfg["sparsity"]["update_every"] == 7  # YAML beats preset (100)
    assert cfg["model"] == "small_cnn"  # from the preset
    assert cfg["optim"]["nesterov"] is True  # preset beats defaults
    assert cfg["data"]["name"] == "synthetic"


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_parses_and_validates(name):
    cfg = RunConfig.from_dict(deep_merge(RunConfig().to_dict(), preset(name)))
    steps = 1000
    scfg = cfg.sparsity_config(steps_per_epoch=10, total_steps=steps)
    if cfg.method == "dense":
        assert scfg is None
    else:
        assert scfg.density == pytest.approx(0.1)
        assert (scfg.channels is not None) == (cfg.method == "chase")


def test_paper_settings_are_in_the_presets():
    vgg = RunConfig.from_dict(deep_merge(RunConfig().to_dict(), preset("cifar100-vgg19-chase")))
    assert (vgg.epochs, vgg.data.batch_size, vgg.optim.lr) == (160, 100, 0.1)
    s = vgg.sparsity_config(steps_per_epoch=500, total_steps=80_000)
    assert (s.updater, s.scope, s.update_every, s.mest_overshoot) == ("mest", "global", 1000, 0.05)
    assert s.mest_end == 130 * 500
    assert (s.channels.sparsity, s.channels.every, s.channels.min_keep_ratio) == (0.5, 8000, 0.2)
    assert s.channels.exclude == ("last",)  # the paper keeps the last conv of its VGG
    assert s.channels.end == 130 * 500
    imagenet = RunConfig.from_dict(
        deep_merge(RunConfig().to_dict(), preset("imagenet-resnet50-chase-sc0.3"))
    )
    s = imagenet.sparsity_config(steps_per_epoch=2502, total_steps=250_200)
    assert (s.scope, s.channels.sparsity, s.channels.every) == ("layer", 0.3, 2 * 2502)
    assert imagenet.optim.label_smoothing == 0.1
    assert imagenet.schedule.warmup_epochs == 8


def test_presets_command_lists_and_shows(cli):
    code, out, _ = cli("presets")
    assert code == 0 and "fmnist-demo" in out and "imagenet-resnet50-chase-sc0.4" in out
    code, out, _ = cli("presets", "fmnist-demo")
    assert code == 0 and yaml.safe_load(out)["model"] == "small_cnn"


def test_eval_command_scores_the_slim_model(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", *TINY, "--epochs", "1", "--out", out)[0] == 0
    code, stdout, err = cli("eval", out, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    report = json.loads((out / "report.json").read_text())
    assert result["test_accuracy"] == pytest.approx(report["test_accuracy"])
    # slim.pt is the very model report.json scored (recalibrated BatchNorm included): the
    # loss, a continuous number, agrees too, and differs from the unrecalibrated slim copy's
    assert result["test_loss"] == pytest.approx(report["test_loss"], rel=1e-5)
    assert result["test_loss"] != pytest.approx(report["test_loss_masked"], rel=1e-5)
