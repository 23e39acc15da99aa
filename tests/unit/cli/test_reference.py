"""``chase train-reference``: the authors' README command lines parse, map and train."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from chase.cli.main import main
from chase.cli.reference import parse, resolve, to_sets
from chase.errors import ConfigError
from chase.train.config import RunConfig, to_steps
from chase.train.presets import preset
from chase.train.reference import CIFAR, IMAGENET, SCRIPTS, translate
from chase.train.sources import deep_merge, parse_assignment

# Pasted from their README (github.com/luuyin/chase), minus the launcher lines.
README_VGG19 = r"""
--stop_gmp_epochs  130 \
--minumum_ratio 0.2 \
--gpm_filter_pune \
--mest \
--mest_dst \
--filter_dst \
--mag_wise \
--layer_interval 8000 --start_layer_rate 0.5 \
--sparse \
--indicate_method test \
--model vgg19 --data cifar100 --decay-schedule cosine --seed 41 \
--sparse_init fixed_ERK --update_frequency 1000 --batch-size 100 --death-rate 0.05 \
--growth global_gradients --death global_magnitude  \
--redistribution none --epochs 160 --density 0.1 
"""  # noqa: W291 - their trailing spaces, kept
README_RESNET50 = r"""
--stop_gmp_epochs  130 \
--minumum_ratio 0.5 \
--gpm_filter_pune \
--mest \
--mest_dst \
--filter_dst \
--comparision \
--mag_wise \
--layer_interval 1000 --start_layer_rate 0.5 \
--new_zero --sparse \
--indicate_method test \
--model ResNet50 --data cifar100 --decay-schedule cosine --seed 41 \
--sparse_init fixed_ERK --update_frequency 1000 --batch-size 100 --death-rate 0.05 \
--growth global_gradients --death global_magnitude  \
--redistribution none --epochs 160 --density 0.1 
"""  # noqa: W291
# The ImageNet script's lines after `python $1multiproc.py --nproc_per_node 4 $main.py`, and
# the shell variables set above it in the README; `$data` is the dataset path (left out).
README_IMAGENET = r"""
--sparse --sparse-init ERK \
        --minumum_ratio 0.2 \
        --mest \
        --mest_dst \
        --filter_dst \
        --mag_wise \
        --cosine_lr \
        --stop_dst_epochs $stop_dst_epochs --stop_gmp_epochs $stop_gmp_epochs\
        --layer_interval 2 --start_layer_rate 0.4  \
        --prune-rate 0.05 \
        --first_m 30 --second_m 60 --third_m 85 \
        --method DST --init-prune-epoch 0 --final-prune-epoch 30 --init-density $density  --final-density $density  \
        --multiplier 1  --seed 17 --master_port 8020 -j72 -p 500 --arch $model -c fanin \
        --update-frequency 1000 --label_smoothing 0.1 -b 128 --lr 0.512 \
        --warmup 8 --density $density  $2 $data --total_epochs $total_epochs  \
        --indicate_method $name 
"""  # noqa: E501, W291
IMAGENET_VARS = {"model": "resnet50", "name": "Imagenet_resnet50", "cycle": "2",
                 "total_epochs": "100", "stop_dst_epochs": "20", "stop_gmp_epochs": "80",
                 "density": "0.1", "2": "", "data": ""}  # fmt: skip


def tokens(text: str, variables: dict[str, str] | None = None) -> list[str]:
    """The words the shell would pass (line continuations joined, variables expanded)."""
    text = text.replace("\\\n", "")
    if variables is not None:
        text = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], text)
    return shlex.split(text)


VGG19 = tokens(README_VGG19)
RESNET50 = tokens(README_RESNET50)
IMAGENET_CMD = tokens(README_IMAGENET, IMAGENET_VARS)


def mapped(argv: list[str], procs: int = 1) -> dict:
    _, given, script = parse(argv)
    return translate(script, given, procs).config


def test_readme_vgg19_maps_onto_the_paper_setting():
    _, tr, _ = resolve(VGG19)
    cfg, s = tr.config, tr.config["sparsity"]
    assert tr.script is CIFAR
    assert (cfg["model"], cfg["method"], cfg["data"]["name"]) == ("vgg19", "chase", "cifar100")
    assert (cfg["epochs"], cfg["data"]["batch_size"], cfg["seed"]) == (160, 100, 41)
    assert cfg["schedule"]["milestones"] == [0.5, 0.75]
    assert (s["density"], s["allocation"], s["scope"], s["updater"]) == (
        0.1,
        "erk",
        "global",
        "mest",
    )
    assert (s["update_every"], s["mest_overshoot"], s["mest_end"]) == (1000, 0.05, "130ep")
    assert "dst_end" not in s  # --mest_dst: plain RigL updates after MEST's phase
    ch = s["channels"]
    assert (ch["sparsity"], ch["every"], ch["end"], ch["min_keep_ratio"]) == (
        0.5,
        8000,
        "130ep",
        0.2,
    )
    assert ch["score"] == "umm" and ch["offset"] == 7500  # their (t + 500) % 8000 == 0
    assert ch["exclude"] == ["last"]  # their VGG never prunes its last conv
    assert tr.no_effect == ["--redistribution", "--indicate_method"]


def test_readme_resnet50_maps_and_names_its_dead_flags():
    _, tr, _ = resolve(RESNET50)
    cfg, ch = tr.config, tr.config["sparsity"]["channels"]
    assert (cfg["model"], cfg["method"]) == ("resnet50_cifar", "chase")
    assert (ch["every"], ch["offset"], ch["min_keep_ratio"], ch["sparsity"]) == (
        1000,
        500,
        0.5,
        0.5,
    )
    assert "exclude" not in ch
    assert set(tr.no_effect) == {"--comparision", "--new_zero", "--redistribution",
                                 "--indicate_method"}  # fmt: skip


def test_readme_imagenet_maps_per_gpu_batch_epochs_and_cosine_warmup():
    cfg = mapped(IMAGENET_CMD, procs=4)
    s, ch = cfg["sparsity"], cfg["sparsity"]["channels"]
    assert (cfg["model"], cfg["method"], cfg["data"]["name"]) == ("resnet50", "chase", "imagenet")
    assert (cfg["epochs"], cfg["data"]["batch_size"], cfg["data"]["workers"]) == (100, 512, 72)
    assert cfg["optim"] == {"lr": 0.512, "momentum": 0.9, "weight_decay": 1e-4,
                            "decay_norm_and_bias": False, "label_smoothing": 0.1,
                            "name": "sgd", "nesterov": False}  # fmt: skip
    assert cfg["schedule"] == {"warmup_epochs": 8, "name": "cosine"}
    assert (s["scope"], s["updater"], s["mest_end"], s["mest_overshoot"]) == (
        "layer",
        "mest",
        "80ep",
        0.05,
    )
    assert (ch["sparsity"], ch["every"], ch["end"], ch["min_keep_ratio"]) == (
        0.4,
        "2ep",
        "80ep",
        0.2,
    )
    assert "offset" not in ch
    assert mapped(IMAGENET_CMD)["data"]["batch_size"] == 128  # one process: -b is the batch


def test_imagenet_batch_is_per_process_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve(IMAGENET_CMD)[1].config["data"]["batch_size"] == 256
    assert resolve([*IMAGENET_CMD, "--nproc_per_node", "4"])[1].config["data"]["batch_size"] == 512
    with pytest.raises(ConfigError, match="ImageNet script only"):
        resolve([*VGG19, "--nproc-per-node", "4"])
    with pytest.raises(ConfigError, match=r"^--nproc-per-node 0 is not allowed"):
        resolve([*IMAGENET_CMD, "--nproc_per_node", "0"])
    monkeypatch.setenv("WORLD_SIZE", "0")
    with pytest.raises(ConfigError, match=r"^\$WORLD_SIZE 0 is not allowed"):
        resolve(IMAGENET_CMD)


def test_readme_imagenet_note_names_the_flags_without_effect(capsys):
    code = main(["train-reference", *IMAGENET_CMD, "/data/imagenet", "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0
    note = [line for line in err.splitlines() if "no effect" in line]
    assert len(note) == 1
    for flag in ("--first_m", "--third_m", "--method", "--init-prune-epoch",
                 "--final-prune-epoch", "--final-density", "--multiplier", "--master_port",
                 "-c", "--indicate_method"):  # fmt: skip
        assert f" {flag} " in note[0] or note[0].endswith(f" {flag}"), flag
    for flag in ("--seed", "-j", "-p", "-b", "--lr", "--warmup", "--mag_wise"):
        assert f" {flag} " not in note[0], flag
    assert "data.dir=/data/imagenet" in out


@pytest.mark.parametrize("argv", [VGG19, RESNET50, IMAGENET_CMD], ids=["vgg19", "r50", "in"])
def test_readme_commands_agree_with_our_presets(argv):
    cfg = mapped(argv)
    name = {"vgg19": "cifar100-vgg19-chase", "resnet50_cifar": "cifar100-resnet50-chase",
            "resnet50": "imagenet-resnet50-chase-sc0.4"}  # fmt: skip
    ours = preset(name[resolve(argv)[1].config["model"]])
    total = round(ours["epochs"] * 1000)  # milestones compared in steps, at 1000 per epoch

    def steps(value, key):  # their flags give epochs, our presets percentages of the run
        timed = key in ("update_every", "mest_end", "every", "end") and isinstance(value, str)
        return to_steps(value, 1000, key, total) if timed else value

    for key in ("density", "allocation", "scope", "update_every", "mest_overshoot", "mest_end"):
        assert steps(cfg["sparsity"][key], key) == steps(ours["sparsity"][key], key), key
    for key in ("sparsity", "every", "end", "min_keep_ratio"):
        theirs, mine = cfg["sparsity"]["channels"][key], ours["sparsity"]["channels"][key]
        assert steps(theirs, key) == steps(mine, key), key
    for key in ("epochs", "method"):
        assert cfg[key] == ours[key], key
    assert cfg["optim"]["lr"] == ours["optim"]["lr"]


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (VGG19, ["--set", "data.batch_size=4"]),
        (RESNET50, ["--set", "data.batch_size=4"]),
        (IMAGENET_CMD, ["--set", "data.batch_size=2", "--set", "data.image_size=64"]),
    ],
    ids=["vgg19", "resnet50", "imagenet"],
)
def test_readme_commands_train_two_steps_on_synthetic_data(argv, extra, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train-reference", *argv, "--synthetic", "--stop-after-steps", "2",
                 "--set", "data.synthetic_size=16", *extra, "--device", "cpu", "--quiet",
                 "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "stopped after step 2" in err
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 2
    cfg = RunConfig.from_dict(_saved(out))
    assert cfg.data.name == "synthetic"
    assert cfg.data.synthetic_like == ("imagenet" if argv is IMAGENET_CMD else "cifar100")


def _saved(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def test_unknown_flag_is_one_line_and_exit_2(capsys, tmp_path):
    code = main(["train-reference", *VGG19, "--death_rate", "0.1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "--death_rate" in err[0] and "--death-rate" in err[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--epochs", "many"], "invalid int value"),
        (["--optimizer", "adam"], "--optimizer"),
        (["--growth", "momentum"], "--growth"),
        (["--resume", "old/"], "--resume"),
        (["--iters", "3"], "--iters"),
        (["--kernal_wise"], None),  # --mag_wise given too: theirs picks mask/mag first
    ],
)
def test_unsupported_values_are_config_errors(flags, words, capsys):
    code = main(["train-reference", *VGG19, *flags, "--dry-run"])
    err = capsys.readouterr().err
    if words is None:
        assert code == 0 and "--kernal_wise" in err
        return
    assert code == 2 and words in err and "Traceback" not in err


def test_without_sparse_the_run_is_dense_and_sparse_flags_are_named():
    argv = [t for t in VGG19 if t != "--sparse"]
    _, tr, _ = resolve(argv)
    assert tr.config["method"] == "dense" and "sparsity" not in tr.config
    assert {"--mest", "--filter_dst", "--density", "--layer_interval"} <= set(tr.no_effect)


def test_imagenet_init_density_must_match_density():
    argv = [t if t != "--init-density" else "--final-density" for t in IMAGENET_CMD]
    with pytest.raises(Exception, match="--init-density"):
        mapped(argv)


def test_mapped_values_survive_the_set_round_trip():
    cfg = mapped(VGG19)
    rebuilt: dict = {}
    for assignment in to_sets(cfg):
        rebuilt = deep_merge(rebuilt, parse_assignment(assignment))
    assert rebuilt == cfg


@pytest.mark.parametrize("script", list(SCRIPTS.values()), ids=list(SCRIPTS))
def test_flag_tables_are_unambiguous_and_documented(script):
    dests = [f.dest for f in script.flags]
    assert len(dests) == len(set(dests))
    docs = (Path(__file__).parents[3] / "docs" / "reference-flags.md").read_text()
    for flag in script.flags:
        assert f"`{flag.name}" in docs, flag.name
    assert IMAGENET.spellings() - CIFAR.spellings()
