"""Exact resume: a run stopped anywhere and resumed equals the uninterrupted run, bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from chase.train.checkpoint import load_checkpoint
from runs import TINY, metrics_records

# 2 epochs of 4 steps; weight updates after steps 2, 4, 6, 8; channel events after 1, 3, 5, 7
CHASE = [
    *TINY, "--epochs", "2", "--method", "chase", "--set", "sparsity.update_every=2",
    "--set", "sparsity.channels.every=2", "--set", "sparsity.channels.offset=1",
    "--set", "sparsity.channels.end=6", "--set", "sparsity.channels.sparsity=0.5",
]  # fmt: skip


def final_state(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")


def assert_same_run(a: Path, b: Path) -> None:
    sa, sb = final_state(a), final_state(b)
    assert sa["step"] == sb["step"]
    for key, value in sa["model"].items():
        assert torch.equal(value, sb["model"][key]), key
    ea, eb = sa["engine"], sb["engine"]
    for name, mask in ea["masks"].items():
        assert torch.equal(mask, eb["masks"][name]), name
    assert torch.equal(ea["channels"]["alive"], eb["channels"]["alive"])
    assert ea["trajectory"] == eb["trajectory"]

    assert metrics_records(a) == metrics_records(b)
    ra = json.loads((a / "report.json").read_text())
    rb = json.loads((b / "report.json").read_text())
    for key in ("test_accuracy", "test_accuracy_masked", "params_slim", "channel_sparsity"):
        assert ra[key] == rb[key], key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from chase.cli.main import main

    out = tmp_path_factory.mktemp("full") / "run"
    assert main(["train", *CHASE, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("stop", [3, 4, 5])  # mid-epoch, at the epoch boundary, mid-epoch 2
def test_stop_and_resume_is_bit_identical(cli, tmp_path, uninterrupted, stop):
    out = tmp_path / "run"
    code, _, err = cli("train", *CHASE, "--out", out, "--stop-after-steps", stop)
    assert code == 0
    assert f"resume with: chase train --resume {out}" in err
    assert final_state(out)["step"] == stop
    assert not (out / "report.json").exists()
    code, _, err = cli("train", "--resume", out, "--quiet")
    assert code == 0, err
    assert_same_run(uninterrupted, out)


def test_resume_twice_with_stops_on_either_side_of_events(cli, tmp_path, uninterrupted):
    out = tmp_path / "run"
    assert cli("train", *CHASE, "--out", out, "--stop-after-steps", 2)[0] == 0
    assert cli("train", "--resume", out, "--stop-after-steps", 7, "--quiet")[0] == 0
    assert final_state(out)["step"] == 7
    assert cli("train", "--resume", out, "--quiet")[0] == 0
    assert_same_run(uninterrupted, out)


def _chase_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "chase", "train", *args]


def _wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    metrics = run / "metrics.jsonl"
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read()}")
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            if any(json.loads(x).get("step", 0) >= step for x in lines if x.strip()):
                return
        time.sleep(0.05)
    raise AssertionError("training did not reach the step in time")


LONG = [*CHASE[: CHASE.index("--epochs")], "--epochs", "6",
        *CHASE[CHASE.index("--epochs") + 2 :]]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted_long(tmp_path_factory):
    from chase.cli.main import main

    out = tmp_path_factory.mktemp("full-long") / "run"
    assert main(["train", *LONG, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_the_run_resumes_to_the_same_result(
    cli, tmp_path, sig, uninterrupted_long
):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    proc = subprocess.Popen(_chase_cmd(*LONG, "--out", str(out)), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_step(out, 3, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + int(sig), err
    assert "resume with: chase train --resume" in err
    assert "Traceback" not in err
    stopped = final_state(out)["step"]
    assert 3 <= stopped < 24
    assert cli("train", "--resume", out, "--quiet")[0] == 0
    assert_same_run(uninterrupted_long, out)


def test_second_signal_exits_at_once_and_keeps_the_checkpoint_loadable(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _chase_cmd(*LONG, "--set", "checkpoint_every=1", "--out", str(out)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_step(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + int(signal.SIGINT)
    state = final_state(out)  # raises if the file were damaged
    assert state["step"] >= 1
