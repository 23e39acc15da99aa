"""Run folders that nothing can corrupt: one run per folder (the lock), a run killed at any
moment finishes with ``chase train --resume`` exactly as if never interrupted, a full disk
costs one line and no checkpoint, a signal in the end of the run stops it cleanly."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from chase.files import TEMPORARY
from chase.train.checkpoint import load_checkpoint
from chase.train.lock import LOCK_NAME
from killpoint import run_killed
from runs import TINY, metrics_records

# 2 epochs of 4 steps; weight updates after steps 2, 4, 6, 8; channel events after 1, 3, 5, 7;
# checkpoints after steps 3, 6 and 8 (the last); a short speed measurement in the end phase.
RUN = [
    *TINY, "--epochs", "2", "--method", "chase", "--set", "sparsity.update_every=2",
    "--set", "sparsity.channels.every=2", "--set", "sparsity.channels.offset=1",
    "--set", "sparsity.channels.end=6", "--set", "sparsity.channels.sparsity=0.5",
    "--set", "checkpoint_every=3", "--set", "bench.batch_sizes=[2]",
]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The run, uninterrupted and uncontested."""
    from chase.cli.main import main

    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *RUN, "--out", str(out)]) == 0
    return out


def assert_equal_states(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            assert_equal_states(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_states(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def assert_same_run(expected: Path, run: Path) -> None:
    """Bit for bit: every tensor of the final checkpoint, the metrics, the test accuracies."""
    a = load_checkpoint(expected / "checkpoints" / "last.pt")
    b = load_checkpoint(run / "checkpoints" / "last.pt")
    for key in (
        "step",
        "epoch",
        "position",
        "model",
        "optimizer",
        "scheduler",
        "engine",
        "rng",
        "config",
    ):  # fmt: skip  (not metrics_offset: the records' "seconds" vary)
        assert_equal_states(a[key], b[key], key)
    assert metrics_records(expected) == metrics_records(run)
    ra = json.loads((expected / "report.json").read_text())
    rb = json.loads((run / "report.json").read_text())
    for key in ("test_accuracy", "test_loss", "test_accuracy_masked", "params_slim",
                "params_slim_nonzero", "channel_sparsity", "flops", "steps"):  # fmt: skip
        assert ra[key] == rb[key], key
    assert json.loads((expected / "channels.json").read_text()) == json.loads(
        (run / "channels.json").read_text()
    )


def leftovers(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if TEMPORARY.match(p.name) or p.name == LOCK_NAME]


def chase_process(*args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "chase", "train", *map(str, args)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- one run per folder ----------------------------------------------------------------------
def cpu_seconds(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def test_two_runs_on_one_folder_one_runs_the_other_fails_at_once(tmp_path, reference):
    out = tmp_path / "run"
    procs = [chase_process(*RUN, "--out", out) for _ in range(2)]
    ended: dict = {}
    while not ended:
        for p in procs:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                ended[p] = usage
        time.sleep(0.01)
    [(loser, usage)] = ended.items()
    [winner] = [p for p in procs if p is not loser]
    assert winner.poll() is None  # the loser did not wait for the lock: the winner still runs
    _, err = loser.communicate(timeout=60)
    assert loser.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chase: error: run folder"), lines
    assert f"pid {winner.pid} on " in lines[0] and "started 20" in lines[0]
    # ... and did no setup: its CPU time is that of a command refused as soon as its
    # arguments are read (Python, torch and chase imported, settings merged), within a second
    baseline = chase_process(*RUN, "--out", tmp_path / "other", "--stop-after-steps", "0")
    _, status, base_usage = os.wait4(baseline.pid, 0)
    baseline.returncode = os.waitstatus_to_exitcode(status)
    assert baseline.returncode == 2
    assert cpu_seconds(usage) < cpu_seconds(base_usage) + 1.0
    _, err = winner.communicate(timeout=300)
    assert winner.returncode == 0, err
    assert_same_run(reference, out)
    assert leftovers(out) == []


# -- kills -----------------------------------------------------------------------------------
def kill_and_resume(tmp_path: Path, reference: Path, point: str) -> None:
    from chase.cli.main import main

    out = tmp_path / "run"
    code = run_killed(point, ["train", *RUN, "--out", out])
    assert code == -signal.SIGKILL, (point, code)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0, point
    assert_same_run(reference, out)
    assert leftovers(out) == [], point


KILLS = [
    "write:last.pt:1",  # inside the first checkpoint write: no checkpoint yet, from step 0
    "write:last.pt:2:half",  # a torn checkpoint write; the one of step 3 is the last whole
    "call:chase.train.report:recalibrate_bn:1",  # in the end of the run
]
KILLS_SLOW = [
    *(f"line:{k}" for k in range(1, 11)),  # inside every metrics line (8 train, 2 channels),
    # before and after each checkpoint
    "write:config.yaml:1:half",  # leaves no config.yaml: see test_kill_while_creating
    "write:last.pt:3",  # the final checkpoint
    *(f"call:chase.train.report:{name}:1" for name in (
        "_slim", "recalibrate_bn", "_flops_and_params", "benchmark", "_save")),
    "write:slim.pt:1", "write:channels.json:1", "write:report.json:1:half", "exit",
]  # fmt: skip


@pytest.mark.parametrize("point", KILLS)
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, reference, point):
    kill_and_resume(tmp_path, reference, point)


@pytest.mark.slow
@pytest.mark.parametrize("point", [p for p in KILLS_SLOW if not p.startswith("write:config")])
def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_result(tmp_path, reference, point):
    kill_and_resume(tmp_path, reference, point)


@pytest.mark.slow
def test_kill_while_creating_the_folder_leaves_no_run_and_the_same_command_starts_it(
    tmp_path, reference
):
    from chase.cli.main import main

    out = tmp_path / "run"
    assert run_killed("write:config.yaml:1:half", ["train", *RUN, "--out", out]) < 0
    assert not (out / "config.yaml").exists()  # no run yet: the original command starts it
    assert main(["train", *RUN, "--out", str(out)]) == 0
    assert_same_run(reference, out)
    assert leftovers(out) == []


# -- no dead ends ----------------------------------------------------------------------------
def test_a_folder_without_a_checkpoint_resumes_from_step_0_and_a_fresh_start_says_so(
    cli, tmp_path, reference
):
    out = tmp_path / "run"
    assert run_killed("line:2", ["train", *RUN, "--out", out]) == -signal.SIGKILL
    assert not (out / "checkpoints" / "last.pt").exists()
    code, _, err = cli("train", *RUN, "--out", out)
    assert code == 2 and f"--resume {out}" in err  # the advice it gives works:
    assert cli("train", "--resume", out, "--quiet")[0] == 0
    assert_same_run(reference, out)


# -- full disk -------------------------------------------------------------------------------
def _full_disk_on(monkeypatch, name: str, after: int) -> None:
    """``fsync`` of the ``after``-th file whose name contains ``name`` fails with ENOSPC."""
    real = os.fsync
    seen = []

    def fsync(fd: int) -> None:
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            seen.append(fd)
            if len(seen) >= after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_costs_one_line_and_keeps_the_last_checkpoint(
    cli, tmp_path, reference, monkeypatch
):
    out = tmp_path / "run"
    _full_disk_on(monkeypatch, ".last.pt.", after=2)  # the checkpoint of step 6
    code, _, err = cli("train", *RUN, "--out", out)
    monkeypatch.undo()
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{out / 'checkpoints' / 'last.pt'}: No space left on device" in err
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3
    assert leftovers(out) == []
    assert cli("train", "--resume", out, "--quiet")[0] == 0
    assert_same_run(reference, out)


@pytest.mark.parametrize(("name", "path"), [("metrics.jsonl", "metrics.jsonl"),
                                            (".config.yaml.", "config.yaml")])  # fmt: skip
def test_a_full_disk_on_other_run_files_is_one_line_too(cli, tmp_path, monkeypatch, name, path):
    out = tmp_path / "run"
    _full_disk_on(monkeypatch, name, after=1)
    code, _, err = cli("train", *RUN, "--out", out)
    monkeypatch.undo()
    assert code == 2 and err.count("\n") == 1, err
    assert f"{out / path}: No space left on device" in err
    assert leftovers(out) == [] if out.exists() else True


# -- signals outside the training loop -------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_in_the_end_of_the_run_stops_it_resumably(
    cli, tmp_path, reference, monkeypatch, sig
):
    import chase.train.report

    real = chase.train.report.recalibrate_bn

    def recalibrate_bn(*args, **kwargs):
        os.kill(os.getpid(), sig)  # our handler raises here, inside the end of the run
        return real(*args, **kwargs)

    monkeypatch.setattr(chase.train.report, "recalibrate_bn", recalibrate_bn)
    out = tmp_path / "run"
    code, _, err = cli("train", *RUN, "--out", out)
    monkeypatch.undo()
    assert code == 128 + int(sig), err
    assert err.strip() == (
        f"chase: stopped after step 8 ({sig.name}); resume with: chase train --resume {out}"
    )
    assert not (out / "report.json").exists() and leftovers(out) == []
    assert cli("train", "--resume", out, "--quiet")[0] == 0
    assert_same_run(reference, out)


def test_a_signal_during_setup_stops_at_once_and_leaves_nothing(cli, tmp_path, monkeypatch):
    import chase.train.loop

    def build_engine(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal should have stopped the run")

    monkeypatch.setattr(chase.train.loop, "build_engine", build_engine)
    out = tmp_path / "run"
    code, _, err = cli("train", *RUN, "--out", out)
    assert code == 128 + int(signal.SIGTERM)
    assert err.strip() == (
        f"chase: stopped before training began (SIGTERM); no run was started in {out}"
    )
    assert not out.exists()


def test_readers_do_not_need_the_lock(cli, reference):
    from chase.train.lock import RunLock

    with RunLock(reference):  # as if a run were holding it
        code, _, err = cli("eval", reference, "--json")
        assert code == 0, err
        code, _, err = cli("train", "--resume", reference)
        assert code == 2 and "is in use by another chase run" in err
    assert not (reference / LOCK_NAME).exists()
