"""Bad input costs one clear line on stderr, exit code 2, no traceback, and never touches an
existing run folder."""

import shutil

import pytest
import torch

from runs import TINY, snapshot


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    from chase.cli.main import main

    out = tmp_path_factory.mktemp("existing") / "run"
    args = ["train", *TINY, "--epochs", "1", "--stop-after-steps", "2", "--out", str(out)]
    assert main(args) == 0
    return out


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("chase: error:")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


BAD_TRAIN_ARGS = {
    "density above 1": (["--density", "1.5"], ["density", "1.5"]),
    "density zero": (["--density", "0"], ["density"]),
    "channel sparsity 1": (["--method", "chase", "--channel-sparsity", "1.0"], ["sparsity", "1.0"]),
    "channel sparsity negative": (["--channel-sparsity", "-0.1"], ["sparsity", "-0.1"]),
    "beta zero": (["--set", "sparsity.channels.min_keep_ratio=0"], ["min_keep_ratio"]),
    "beta above 1": (["--set", "sparsity.channels.min_keep_ratio=1.5"], ["min_keep_ratio"]),
    "unknown model": (["--model", "resnet9000"], ["resnet9000"]),
    "unknown model keyword": (["--set", "model_kwargs.depth=3"], ["model_kwargs", "depth"]),
    "unknown --set key": (["--set", "optim.lrr=0.1"], ["optim.lrr", "optim.lr"]),
    "unknown sparsity key": (["--set", "sparsity.densty=0.1"], ["sparsity.densty"]),
    "unknown method": (["--method", "magic"], ["method", "magic"]),
    "bad --set syntax": (["--set", "optim.lr"], ["key=value"]),
    "unknown device": (["--device", "foo"], ["device = 'foo'", "'cuda:N'"]),
    "device index with a leading zero": (["--device", "cuda:01"], ["device", "cuda:01"]),
    "recalibrate_bn_steps negative": (["--set", "recalibrate_bn_steps=-3"],
                                      ["recalibrate_bn_steps", "-3"]),
    "recalibrate_bn_steps not an integer": (["--set", "recalibrate_bn_steps=all"],
                                            ["recalibrate_bn_steps", "all"]),
    "gamma zero": (["--set", "schedule.gamma=0"], ["schedule.gamma", "(0, 1]"]),
    "gamma not a number": (["--set", "schedule.gamma=abc"], ["schedule.gamma", "abc"]),
    "milestones not a list": (["--set", "schedule.milestones=0.5"], ["schedule.milestones"]),
    "betas one value": (["--set", "optim.betas=[0.9]"], ["optim.betas", "[0.9]"]),
    "betas of one": (["--set", "optim.betas=[0.9,1.0]"], ["optim.betas", "[0, 1)"]),
    "nesterov without momentum": (["--set", "optim.nesterov=true", "--set", "optim.momentum=0"],
                                  ["optim.nesterov", "momentum"]),
    "lr zero": (["--lr", "0"], ["optim.lr", "0"]),
    "momentum 1": (["--set", "optim.momentum=1"], ["optim.momentum"]),
    "weight decay negative": (
        ["--set", "optim.weight_decay=-1e-4"],
        ["optim.weight_decay = -0.0001", ">= 0"],
    ),
    "channels_last not a bool": (["--set", "channels_last=maybe"], ["channels_last", "maybe"]),
    "augment not a bool": (["--set", "data.augment=maybe"], ["data.augment", "maybe"]),
    "nesterov not a bool": (["--set", "optim.nesterov=2"], ["optim.nesterov", "2"]),
    "decay_norm_and_bias not a bool": (["--set", "optim.decay_norm_and_bias=sometimes"],
                                       ["optim.decay_norm_and_bias"]),
    "section set to a scalar": (["--set", "data.batch_size=8", "--set", "data=5"],
                                ["data = 5", "mapping"]),
    "section set to null": (["--set", "sparsity=null"], ["sparsity = None", "mapping"]),
    "nested section set to a scalar": (["--set", "sparsity.channels.every=2",
                                        "--set", "sparsity.channels=3"],
                                       ["sparsity.channels = 3"]),
    "bench batch sizes empty": (["--set", "bench.batch_sizes=[]"], ["bench.batch_sizes", "[]"]),
    "bench batch size zero": (["--set", "bench.batch_sizes=[1,0]"], ["bench.batch_sizes"]),
    "bench repeats negative": (["--set", "bench.repeats=-1"], ["bench.repeats", "-1"]),
    "bench warmup fraction": (["--set", "bench.warmup=1.5"], ["bench.warmup", "1.5"]),
    "seed a bool": (["--set", "seed=true"], ["seed", "True"]),
    "seed above 2**63": (["--seed", str(2**63)], ["seed", str(2**63)]),
    "epochs infinite": (["--set", "epochs=.inf"], ["epochs", "inf"]),
    "eval_batch_size zero": (["--set", "data.eval_batch_size=0"], ["data.eval_batch_size"]),
    "val_split above 1 as a fraction": (["--set", "data.val_split=1.5"], ["data.val_split"]),
    "synthetic_like synthetic": (["--set", "data.synthetic_like=synthetic"],
                                 ["data.synthetic_like"]),
    "model_kwargs a scalar": (["--set", "model_kwargs=5"], ["model_kwargs = 5"]),
    "image_size too small for the model": (["--model", "small_cnn", "--set",
                                            "data.synthetic_like=fashion-mnist", "--set",
                                            "data.image_size=1"],
                                           ["data.image_size = 1", "'small_cnn'"]),
    "stop after 0 steps": (["--stop-after-steps", "0"],
                           ["--stop-after-steps 0 is not allowed: an integer >= 1"]),
    "stop after -1 steps": (["--stop-after-steps", "-1"], ["--stop-after-steps -1", ">= 1"]),
    "augment yes": (["--set", "data.augment=yes"], ["data.augment = 'yes'", "true or false"]),
    "nesterov on": (["--set", "optim.nesterov=on"], ["optim.nesterov = 'on'"]),
    "channels_last off": (["--set", "channels_last=off"], ["channels_last = 'off'"]),
    "decay_norm_and_bias no": (["--set", "optim.decay_norm_and_bias=no"],
                               ["optim.decay_norm_and_bias = 'no'"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_TRAIN_ARGS))
def test_bad_settings_fail_cleanly_and_leave_the_run_alone(cli, existing_run, case):
    args, needles = BAD_TRAIN_ARGS[case]
    before = snapshot(existing_run)
    code, _, err = cli("train", *TINY, *args, "--out", existing_run, "--overwrite")
    assert_one_line_error(code, err, *needles)
    assert snapshot(existing_run) == before


def test_eval_with_an_unknown_device(cli, existing_run):
    before = snapshot(existing_run)
    code, _, err = cli("eval", existing_run, "--device", "foo")
    assert_one_line_error(code, err, "--device 'foo'", "'cuda:N'")
    assert snapshot(existing_run) == before


def test_unknown_preset(cli, tmp_path):
    code, _, err = cli("train", "--preset", "fmnist-dem", "--out", tmp_path / "x")
    assert_one_line_error(code, err, "fmnist-dem", "fmnist-demo")
    assert not (tmp_path / "x").exists()


def test_missing_data_folder(cli, tmp_path):
    code, _, err = cli("train", "--dataset", "cifar10", "--data-dir", tmp_path / "nope",
                       "--out", tmp_path / "run", "--quiet")  # fmt: skip
    assert_one_line_error(code, err, str(tmp_path / "nope"))
    assert not (tmp_path / "run").exists()


def test_wrong_format_data_folder(cli, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch", "batches.meta"]:  # fmt: skip
        (folder / name).write_bytes(b"this is not a pickle")
    code, _, err = cli("train", "--dataset", "cifar10", "--data-dir", folder,
                       "--out", tmp_path / "run", "--quiet")  # fmt: skip
    assert_one_line_error(code, err)
    assert not (tmp_path / "run").exists()


def test_missing_config_file(cli, tmp_path):
    code, _, err = cli("train", "--config", tmp_path / "none.yaml", "--out", tmp_path / "r")
    assert_one_line_error(code, err, "none.yaml")


def test_out_pointing_at_a_run_needs_resume_or_overwrite(cli, existing_run):
    before = snapshot(existing_run)
    code, _, err = cli("train", *TINY, "--out", existing_run)
    assert_one_line_error(code, err, "--resume", "--overwrite")
    assert snapshot(existing_run) == before


def test_resume_of_a_folder_that_is_not_a_run(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("train", "--resume", tmp_path / "empty")
    assert_one_line_error(code, err, "not a chase run folder")
    code, _, err = cli("train", "--resume", tmp_path / "missing")
    assert_one_line_error(code, err, "does not exist")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("x")
    code, _, err = cli("train", "--resume", tmp_path / "file")
    assert_one_line_error(code, err, f"{tmp_path / 'file'} is a file, not a run folder")


def test_stop_after_steps_is_checked_when_parsed(cli, tmp_path):
    code, _, err = cli("train", "--preset", "no-such-preset", "--stop-after-steps", "0")
    assert_one_line_error(code, err, "--stop-after-steps 0 is not allowed")  # before the preset
    code, _, err = cli("train-reference", "--stop-after-steps", "-1", "--out", tmp_path / "r")
    assert_one_line_error(code, err, "--stop-after-steps -1 is not allowed: an integer >= 1")
    assert not (tmp_path / "r").exists()


def test_eval_of_a_missing_path_says_it_does_not_exist(cli, tmp_path):
    code, _, err = cli("eval", tmp_path / "nope")
    assert_one_line_error(code, err, f"{tmp_path / 'nope'} does not exist")


def test_plot_out_pointing_at_a_file(cli, existing_run, tmp_path):
    (tmp_path / "file.png").write_text("x")
    before = snapshot(existing_run)
    code, _, err = cli("plot", existing_run, "--out", tmp_path / "file.png")
    assert_one_line_error(code, err, "--out", "not a folder")
    assert snapshot(existing_run) == before


@pytest.mark.parametrize("where", ["/proc/chase-run", "/proc/self/status/run"])
def test_out_in_an_unwritable_place(cli, where):
    code, _, err = cli("train", *TINY, "--out", where)
    assert_one_line_error(code, err, where, "cannot create the run folder")


def test_a_config_file_that_is_not_utf8(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"optim:\n  lr: \xff\xfe\n")
    code, _, err = cli("train", "--config", bad, "--out", tmp_path / "r")
    assert_one_line_error(code, err, str(bad), "not UTF-8")
    assert not (tmp_path / "r").exists()


def test_resume_with_other_flags_is_refused(cli, existing_run):
    code, _, err = cli("train", "--resume", existing_run, "--lr", "0.5")
    assert_one_line_error(code, err, "--lr")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_checkpoint(cli, existing_run, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(existing_run, run)
    ckpt = run / "checkpoints" / "last.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes({"garbage": b"\x00not a checkpoint" * 50, "truncated": data[: len(data) // 2],
                      "empty": b""}[damage])  # fmt: skip
    before = snapshot(run)
    code, _, err = cli("train", "--resume", run, "--quiet")
    assert_one_line_error(code, err, "corrupt")
    assert snapshot(run) == before


def test_checkpoint_of_an_incompatible_version(cli, existing_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(existing_run, run)
    ckpt = run / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=True)
    state["version"] = 99
    torch.save(state, ckpt)
    before = snapshot(run)
    code, _, err = cli("train", "--resume", run, "--quiet")
    assert_one_line_error(code, err, "version 99")
    assert snapshot(run) == before


def test_run_folder_written_by_a_future_version(cli, existing_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(existing_run, run)
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text() + "future_setting: 3\n")
    before = snapshot(run)
    code, _, err = cli("train", "--resume", run, "--quiet")
    assert_one_line_error(code, err, "future_setting")
    assert snapshot(run) == before


def test_debug_shows_the_traceback(cli, tmp_path):
    from chase.errors import ConfigError

    with pytest.raises(ConfigError):
        cli("--debug", "train", "--density", "2", "--out", tmp_path / "r")
