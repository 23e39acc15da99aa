"""The console: the progress bar moves every step, and the end-of-run table tells the truth
about speed (its spread, slim = dense, a busy machine)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from chase.cli import console as console_module
from chase.cli.console import ConsoleProgress, report_table
from runs import TINY


def test_bar_moves_on_count_only_updates_and_keeps_the_last_stats() -> None:
    progress = ConsoleProgress()
    progress.tty = True  # a terminal: the rich bar
    progress.start(total=10, done=2, description="train")
    try:
        assert progress._bar is not None
        (task,) = progress._bar.tasks
        assert task.completed == 2
        progress.update(3, {"loss": 0.5, "acc": 0.25})
        progress.update(4, {})
        progress.update(5, {})
        assert task.completed == 5
        assert task.fields["stats"] == "loss 0.500  acc 25.0%"  # from the last log point
    finally:
        progress.stop()


def test_plain_output_prints_log_points_only(capsys: pytest.CaptureFixture[str]) -> None:
    progress = ConsoleProgress()
    progress.tty = False  # a pipe or a file: plain lines
    progress.start(total=4, done=0, description="train")
    for step in (1, 2, 3):
        progress.update(step, {})
    progress.update(4, {"loss": 1.25})
    progress.stop()
    assert capsys.readouterr().out.splitlines() == ["step 4/4  loss 1.250"]


def speed_row(**kw: Any) -> dict[str, Any]:
    row = {
        "batch_size": 1, "device": "cpu", "dense_ms": 4.0, "slim_ms": 2.0, "speedup": 2.0,
        "flops_ratio": 2.5, "dense_ms_p10": 3.8, "dense_ms_p90": 4.2, "slim_ms_p10": 1.9,
        "slim_ms_p90": 2.1, "dense_flops": 1000, "slim_flops": 400, "busy": False,
        "load_before": [0.5, 0.5, 0.5], "load_after": [1.0, 0.5, 0.5], "cpus": 2,
    }  # fmt: skip
    return {**row, **kw}


def report(speed: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": "small_cnn", "dataset": "synthetic", "method": "chase", "test_accuracy": 0.5,
        "test_accuracy_masked": 0.5, "density": 0.1, "channel_sparsity": 0.3,
        "params_dense": 100, "params_slim": 60, "params_slim_nonzero": 10,
        "equivalence_max_abs_diff": 0.0, "seconds": 3.0, "steps": 6, "speed": speed,
        "flops": {"dense": 1000, "sparse": 100, "sparse_ratio": 0.1, "gpu_supported": 400,
                  "gpu_supported_ratio": 0.4, "train_ratio": 0.2},
    }  # fmt: skip


def rendered(rep: dict[str, Any]) -> list[str]:
    out = Console(width=200, file=io.StringIO())
    out.print(report_table(rep))
    assert isinstance(out.file, io.StringIO)
    return [line.strip() for line in out.file.getvalue().splitlines()]


def test_speed_rows_carry_their_spread() -> None:
    lines = rendered(report([speed_row()]))
    (row,) = [line for line in lines if "batch 1" in line]
    # spread: the larger of dense (0.4 / 8 = 5%) and slim (0.2 / 4 = 5%)
    assert "4.00 / 2.00 ±5%  speedup 2.00x of 2.50x FLOPs" in row
    assert not any(line.startswith("warning:") for line in lines)
    assert not any("slim equals dense" in line for line in lines)


def test_no_speedup_row_when_no_channel_was_removed() -> None:
    rows = [speed_row(slim_flops=1000, slim_ms=4.1, speedup=0.98, flops_ratio=1.0),
            speed_row(batch_size=64, slim_flops=1000, slim_ms=40.0, dense_ms=40.0)]  # fmt: skip
    text = "\n".join(rendered(report(rows)))
    assert "slim equals dense (no channels removed): there is no speedup to measure" in text
    assert "speedup 0.98x" not in text
    assert "0.98x" not in text and "4.10" not in text  # neither the ratio nor the slim time
    assert "batch 1: dense = slim ms (cpu)" in text and "batch 64: dense = slim ms" in text


def test_busy_machine_adds_one_warning_line() -> None:
    busy = speed_row(busy=True, load_after=[3.5, 1.0, 1.0])
    lines = rendered(report([speed_row(), busy]))
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        "warning: timed on a busy machine (load 3.50 on 2 cores): speeds unreliable"
    ]


def test_a_report_without_speed_or_load_fields_still_prints() -> None:
    old = {k: v for k, v in speed_row().items() if k not in ("busy", "load_before", "cpus")}
    assert any("batch 1" in line for line in rendered(report([old])))
    lines = rendered(report([]))
    assert not any("batch" in line or "±" in line for line in lines)


@pytest.mark.parametrize("method", ["chase", "rigl"])
def test_a_real_runs_final_table(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Chase removes channels and gets a speedup row with its spread; RigL removes none and
    says so instead. Plain output (not a terminal): one line per log point, none between."""
    monkeypatch.setattr(console_module.console, "width", 200)  # table cells on one line

    args = [a for a in TINY if a != "--quiet"]
    code, out, err = cli("train", *args, "--epochs", "2", "--method", method,
                         "--set", "log_every=3", "--set", "sparsity.update_every=2",
                         "--set", "sparsity.channels.every=2",
                         "--set", "sparsity.channels.sparsity=0.5",
                         "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["3/8", "6/8", "8/8"]
    batch = [line for line in lines if "batch 1:" in line]
    assert len(batch) == 1 and "±" in batch[0]
    if method == "chase":
        assert "dense / slim ms" in batch[0] and "speedup" in batch[0]
        assert "slim equals dense" not in out
    else:
        assert "dense = slim ms" in batch[0] and "speedup" not in batch[0]
        assert "slim equals dense (no channels removed): there is no speedup to measure" in lines
