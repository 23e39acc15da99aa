"""Run folders under ``torchrun`` (2 gloo processes on CPU): rank 0 holds the lock and every
rank gets its refusal (none waits for a rank 0 that stopped); a rank whose peer died ends
with the one-line stop message and leaves a folder that one process resumes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chase.train.checkpoint import load_checkpoint
from chase.train.lock import RunLock
from runs import DDP_RUN

pytestmark = pytest.mark.slow

RUN = [*DDP_RUN, "--set", "checkpoint_every=2"]
KILLPOINT = Path(__file__).parent.parent / "killpoint.py"


def torchrun(logs: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--log-dir", str(logs), "--redirects", "3", str(KILLPOINT), "train", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def rank_stderr(logs: Path, rank: int) -> str:
    [path] = logs.rglob(f"attempt_0/{rank}/stderr.log")
    return path.read_text()


def test_a_locked_folder_refuses_every_rank_at_once(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        result = torchrun(tmp_path / "logs", *RUN, "--out", str(out))
    assert result.returncode != 0
    for rank in (0, 1):
        lines = rank_stderr(tmp_path / "logs", rank).strip().splitlines()
        assert len(lines) == 1 and "is in use by another chase run" in lines[0], lines
        assert f"pid {os.getpid()}" in lines[0]
    assert not out.exists()


def test_a_rank_whose_peer_died_ends_with_the_stop_line_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    kill = {"KILL_AT": "call:chase.train.loop:Trainer._step:3", "KILL_RANK": "1"}
    result = torchrun(tmp_path / "logs", *RUN, "--out", str(out), env=kill)
    assert result.returncode != 0
    err = rank_stderr(tmp_path / "logs", 0)
    assert "Traceback" not in err, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(
        rf"chase: stopped after step 2 \((another process stopped|SIGTERM)\); "
        rf"resume with: chase train --resume {re.escape(str(out))}",
        lines[0],
    ), lines  # its own failed collective, or torchrun's SIGTERM first: either way step 2
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "chase", "train", "--resume", str(out), "--quiet"]
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 8
    assert (out / "report.json").exists() and not (out / "run.lock").exists()
