"""``torchrun`` with 2 gloo processes on CPU: same masks everywhere, same result as one
process with the same global batch, and resumable with a different process count."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from chase.train.checkpoint import load_checkpoint
from runs import DDP_RUN

RUN = DDP_RUN


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "chase", "train", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def chase_train(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "chase", "train", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "run"
    result = chase_train(*RUN, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def compare(a: Path, b: Path) -> None:
    sa = load_checkpoint(a / "checkpoints" / "last.pt")
    sb = load_checkpoint(b / "checkpoints" / "last.pt")
    assert sa["step"] == sb["step"] == 8
    for key, value in sa["model"].items():
        assert torch.allclose(value, sb["model"][key], atol=1e-5, rtol=1e-4), key
    for name, mask in sa["engine"]["masks"].items():
        assert torch.equal(mask, sb["engine"]["masks"][name]), name
    assert torch.equal(sa["engine"]["channels"]["alive"], sb["engine"]["channels"]["alive"])
    ra = json.loads((a / "report.json").read_text())
    rb = json.loads((b / "report.json").read_text())
    assert ra["test_accuracy"] == pytest.approx(rb["test_accuracy"], abs=1e-6)
    assert ra["channel_sparsity"] == rb["channel_sparsity"]


def test_two_processes_match_one_process(tmp_path, single):
    out = tmp_path / "ddp"
    result = torchrun(2, *RUN, "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["world_size"] == 2
    assert report["shrink"]["events"] >= 2  # both ranks shrank (checked equal) and trained on
    assert report["shrink"]["steps_after_first"] > 0
    compare(single, out)  # equal weights: every rank ended with the single process's shapes


def test_two_process_run_resumes_with_one_process(tmp_path, single):
    out = tmp_path / "ddp"
    result = torchrun(2, *RUN, "--out", str(out), "--stop-after-steps", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_checkpoint(out / "checkpoints" / "last.pt")["world_size"] == 2
    result = chase_train("--resume", str(out), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    compare(single, out)
