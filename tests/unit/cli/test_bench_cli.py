"""``chase bench``: every key with sane values, from a pruned registry model and from a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import chase
from chase.data.synthetic import example_batch
from chase.metrics.fresh import fresh_model

ROW_KEYS = {
    "batch_size", "dense_ms", "slim_ms", "speedup", "flops_ratio", "efficiency",
    "dense_ms_p10", "dense_ms_p90", "slim_ms_p10", "slim_ms_p90", "dense_ms_min", "slim_ms_min",
    "throughput_dense", "throughput_slim", "repeats_dense", "repeats_slim", "dense_flops",
    "slim_flops", "device", "channels_last", "compile", "fuse_bn", "amp",
    "load_before", "load_after", "cpus", "threads", "busy",
}  # fmt: skip
FAST = ["--warmup", "1", "--repeats", "2", "--json"]


def bench_json(cli, *args: object) -> dict:
    code, out, err = cli("bench", *args)
    assert code == 0, err
    return json.loads(out)


def check_row(row: dict, batch: int) -> None:
    assert set(row) == ROW_KEYS
    assert row["batch_size"] == batch and row["device"] == "cpu"
    assert row["repeats_dense"] >= 2 and row["repeats_slim"] >= 2
    for key in ("dense_ms", "slim_ms", "throughput_dense", "throughput_slim"):
        assert math.isfinite(row[key]) and row[key] > 0
    assert row["dense_ms_p10"] <= row["dense_ms"] <= row["dense_ms_p90"]
    assert row["slim_ms_min"] <= row["slim_ms_p10"] <= row["slim_ms"] <= row["slim_ms_p90"]
    assert row["speedup"] == pytest.approx(row["dense_ms"] / row["slim_ms"])
    assert row["flops_ratio"] == pytest.approx(row["dense_flops"] / row["slim_flops"])
    assert row["efficiency"] == pytest.approx(row["speedup"] / row["flops_ratio"])
    assert row["throughput_slim"] == pytest.approx(batch * 1e3 / row["slim_ms"])


def test_model_json_every_key_sane(cli) -> None:
    d = bench_json(cli, "--model", "small_cnn", "--dataset", "mnist", "--channel-sparsity", "0.5",
                   "--batch-sizes", "1,3", *FAST)  # fmt: skip
    assert d["model"] == "small_cnn" and d["input_shape"] == [1, 28, 28]
    assert d["channel_sparsity"] == pytest.approx(0.5, abs=0.02)
    assert [r["batch_size"] for r in d["rows"]] == [1, 3]
    for row, batch in zip(d["rows"], (1, 3)):
        check_row(row, batch)
        assert row["flops_ratio"] > 1.5  # half the channels of every prunable layer are gone


def test_run_json_uses_the_runs_slim_model(cli, run_dir: Path) -> None:
    d = bench_json(cli, run_dir, "--batch-sizes", "2", *FAST)
    report = json.loads((run_dir / "report.json").read_text())
    check_row(d["rows"][0], 2)
    assert d["channel_sparsity"] == report["channel_sparsity"]
    ratio = report["flops"]["dense"] / report["flops"]["gpu_supported"]
    assert d["rows"][0]["flops_ratio"] == pytest.approx(ratio)


def test_run_is_timed_at_its_own_batch_sizes(cli, run_dir: Path) -> None:
    assert "batch_sizes: [3]" in (run_dir / "config.yaml").read_text()
    d = bench_json(cli, run_dir, *FAST)
    assert [r["batch_size"] for r in d["rows"]] == [3]
    assert d["slim_equals_dense"] is False  # the run removed channels


def test_model_is_timed_at_1_and_64_by_default(cli) -> None:
    d = bench_json(cli, "--model", "small_cnn", "--dataset", "mnist", "--channel-sparsity", "0.5",
                   "--warmup", "0", "--repeats", "1", "--json")  # fmt: skip
    assert [r["batch_size"] for r in d["rows"]] == [1, 64]


def test_no_speedup_when_slim_equals_dense(cli) -> None:
    args = ["--model", "small_cnn", "--dataset", "mnist", "--channel-sparsity", "0",
            "--batch-sizes", "2", "--warmup", "0", "--repeats", "1"]  # fmt: skip
    d = bench_json(cli, *args, "--json")
    assert d["channel_sparsity"] == 0.0 and d["slim_equals_dense"] is True
    code, out, _ = cli("bench", *args)
    assert code == 0
    assert "slim equals dense (no channels removed): there is no speedup to measure" in out
    assert "speedup" not in out.replace("no speedup to measure", "")


@pytest.mark.parametrize("load", [(99.0, 1.0, 1.0), (0.0, 0.0, 0.0)])
def test_busy_machine_warning_line(cli, monkeypatch, load) -> None:
    from chase.metrics import speed

    monkeypatch.setattr(speed, "read_loadavg", lambda: load)
    monkeypatch.setattr(speed, "available_cpus", lambda: 4)
    code, out, _ = cli("bench", "--model", "small_cnn", "--dataset", "mnist",
                       "--channel-sparsity", "0.3", "--batch-sizes", "2", "--warmup", "0",
                       "--repeats", "1")  # fmt: skip
    assert code == 0
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    expected = "warning: timed on a busy machine (load 99.00 on 4 cores): speeds unreliable"
    assert warnings == ([expected] if load[0] > 4 else [])


def test_table_output(cli) -> None:
    code, out, _ = cli("bench", "--model", "small_cnn", "--dataset", "mnist",
                       "--channel-sparsity", "0.3", "--batch-sizes", "2", "--warmup", "0",
                       "--repeats", "1")  # fmt: skip
    assert code == 0 and "speedup" in out and "FLOPs" in out


def test_round_to_keeps_widths_multiples() -> None:
    model, shape = fresh_model("vgg11", "cifar10")
    engine = chase.prune_channels_once(model, example_batch(shape.input_shape, 2), 0.4, round_to=8)
    slim = chase.slim(model, engine)
    widths = [m.out_channels for m in slim.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w % 8 == 0 for w in widths)
    assert engine.channels is not None and engine.channels.summary()["sparsity"] > 0.3


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "small_cnn", "--dataset", "mnist"],  # no --channel-sparsity
        ["--model", "small_cnn", "--channel-sparsity", "1.5"],
        ["--model", "no_such_net", "--channel-sparsity", "0.5"],
        ["--model", "small_cnn", "--channel-sparsity", "0.5", "--batch-sizes", "0,x"],
        ["--model", "small_cnn", "--channel-sparsity", "0.5", "--device", "tpu"],
        ["--model", "small_cnn", "--channel-sparsity", "0.5", "--repeats", "0"],
        ["/no/such/run"],
    ],
)
def test_bad_input_exits_2_with_one_line(cli, args: list[str]) -> None:
    code, out, err = cli("bench", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("chase: error:")
