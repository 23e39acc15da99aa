"""Speed measurement, tested with fake clocks: nothing here asserts on wall time."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from chase.metrics import speed
from chase.metrics.speed import CompileError, benchmark, percentile, time_fn


class ScriptedClock:
    """Returns the given readings in order and records what happened before each read."""

    def __init__(self, readings: list[float], log: list[str] | None = None) -> None:
        self.readings = iter(readings)
        self.log = log if log is not None else []

    def __call__(self) -> float:
        self.log.append("clock")
        return next(self.readings)


class SteppingClock:
    """Fake time that only moves when ``advance`` is called (by fake work)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_warmup_calls_are_not_timed() -> None:
    calls = 0
    calls_at_read: list[int] = []

    def fn() -> None:
        nonlocal calls
        calls += 1

    def clock() -> float:
        calls_at_read.append(calls)
        return float(calls)

    timing = time_fn(fn, warmup=3, repeats=2, clock=clock)
    assert calls == 5
    assert calls_at_read == [3, 4, 4, 5]  # the first read comes after the 3 warm-up calls
    assert timing.repeats == 2
    assert timing.median_ms == 1000.0


def test_statistics_of_scripted_readings() -> None:
    # durations 1, 3, 2, 4, 1 s -> sorted ms 1000, 1000, 2000, 3000, 4000
    clock = ScriptedClock([0, 1, 1, 4, 4, 6, 6, 10, 10, 11])
    t = time_fn(lambda: None, warmup=2, repeats=5, clock=clock)
    assert t.repeats == 5
    assert t.median_ms == 2000.0
    assert t.p10_ms == 1000.0  # position 0.4 between 1000 and 1000
    assert t.p90_ms == pytest.approx(3600.0)  # position 3.6: 3000 + 0.6·1000
    assert t.mean_ms == pytest.approx(2200.0)
    assert t.min_ms == 1000.0


def test_percentile_matches_numpy() -> None:
    values = [5.0, 1.0, 9.5, 3.25, 7.0, 2.0, 8.0]
    for q in (0, 10, 25, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert percentile([4.0], 90) == 4.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_sync_called_before_every_clock_read() -> None:
    events: list[str] = []
    clock = ScriptedClock([0.0, 1.0, 2.0, 3.0], log=events)
    time_fn(
        lambda: events.append("fn"),
        warmup=1,
        repeats=2,
        clock=clock,
        sync=lambda: events.append("sync"),
    )
    timed = ["sync", "clock", "fn", "sync", "clock"]
    assert events == ["fn", *timed, *timed]


def work(clock: SteppingClock, seconds: float) -> Callable[[], None]:
    def fn() -> None:
        clock.now += seconds

    return fn


def test_adaptive_repeats_until_min_time() -> None:
    clock = SteppingClock()
    t = time_fn(work(clock, 0.125), warmup=0, repeats=3, clock=clock, min_time_s=1.0)
    assert t.repeats == 8  # 8 × 0.125 s reaches 1 s (binary-exact fake durations)
    clock = SteppingClock()
    t = time_fn(work(clock, 0.125), warmup=0, repeats=3, clock=clock, min_time_s=1.0, max_repeats=5)
    assert t.repeats == 5
    clock = SteppingClock()
    t = time_fn(work(clock, 2.0), warmup=0, repeats=3, clock=clock, min_time_s=1.0)
    assert t.repeats == 3  # slow functions still get the minimum number of samples


def test_time_fn_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="repeats"):
        time_fn(lambda: None, warmup=0, repeats=0)
    with pytest.raises(ValueError, match="max_repeats"):
        time_fn(lambda: None, warmup=0, repeats=5, max_repeats=2)


# ---------------------------------------------------------------- benchmark


class TickingNet(nn.Module):
    """A conv net whose forward advances a fake clock by a fixed time per image."""

    def __init__(self, width: int, tick: Callable[[int], None]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, 2)
        self.tick = tick  # a plain function: shared, not duplicated, by deepcopy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tick(x.shape[0])
        return self.fc(self.conv(x).mean((2, 3)))


def ticking_pair(clock: SteppingClock) -> tuple[nn.Module, nn.Module]:
    def dense_tick(batch: int) -> None:
        clock.now += 0.004 * batch

    def slim_tick(batch: int) -> None:
        clock.now += 0.001 * batch

    return TickingNet(8, dense_tick), TickingNet(4, slim_tick)


def test_benchmark_numbers_with_fake_clock() -> None:
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    rows = benchmark(
        dense, slim, input_shape=(3, 6, 6), batch_sizes=(1, 4), warmup=2, repeats=3, clock=clock
    )
    assert [r["batch_size"] for r in rows] == [1, 4]
    # FLOPs per example: conv 2·36·(8·27) + fc 2·(2·8) vs conv 2·36·(4·27) + fc 2·(2·4)
    dense_flops, slim_flops = 2 * 36 * 216 + 32, 2 * 36 * 108 + 16
    for r, batch in zip(rows, (1, 4), strict=True):
        assert r["dense_ms"] == pytest.approx(4.0 * batch)
        assert r["slim_ms"] == pytest.approx(1.0 * batch)
        assert r["dense_ms_p10"] == pytest.approx(4.0 * batch)
        assert r["slim_ms_p90"] == pytest.approx(1.0 * batch)
        assert r["speedup"] == pytest.approx(4.0)
        assert r["throughput_dense"] == pytest.approx(250.0)
        assert r["throughput_slim"] == pytest.approx(1000.0)
        assert (r["dense_flops"], r["slim_flops"]) == (dense_flops, slim_flops)
        assert r["flops_ratio"] == pytest.approx(dense_flops / slim_flops)
        assert r["efficiency"] == pytest.approx(4.0 / (dense_flops / slim_flops))
        assert r["repeats_dense"] == r["repeats_slim"] == 3


def test_benchmark_real_run_keys_and_types() -> None:
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    dense.train()
    weight = dense.conv.weight.detach().clone()
    rows = benchmark(
        dense, slim, input_shape=(3, 8, 8), batch_sizes=(2,), warmup=1, repeats=3
    )  # real clock: only keys, types and signs are checked
    expected_keys = {
        "batch_size", "dense_ms", "slim_ms", "speedup", "dense_ms_p10", "dense_ms_p90",
        "slim_ms_p10", "slim_ms_p90", "dense_ms_min", "slim_ms_min", "throughput_dense",
        "throughput_slim", "repeats_dense", "repeats_slim", "dense_flops", "slim_flops",
        "flops_ratio", "efficiency", "device", "channels_last", "compile", "fuse_bn", "amp",
        "load_before", "load_after", "cpus", "threads", "busy",
    }  # fmt: skip
    (row,) = rows
    assert set(row) == expected_keys
    for key in ("dense_ms", "slim_ms", "speedup", "throughput_dense", "flops_ratio"):
        assert isinstance(row[key], float) and row[key] > 0 and math.isfinite(row[key]), key
    assert row["device"] == "cpu" and row["compile"] is False
    assert dense.training  # the caller's models are left as they were
    assert torch.equal(dense.conv.weight, weight)


def test_benchmark_fuse_bn_times_folded_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    from chase.structure import bn

    folded: list[nn.Module] = []

    def spy(model: nn.Module) -> nn.Module:
        folded.append(model)
        return model

    monkeypatch.setattr(bn, "fold_batchnorm", spy)
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    (row,) = benchmark(
        dense, slim, input_shape=(3, 8, 8), batch_sizes=(2,), warmup=0, repeats=1, fuse_bn=True
    )
    assert row["fuse_bn"] is True
    assert len(folded) == 2 and folded[0] is not dense and folded[1] is not slim  # copies


def test_benchmark_channels_last() -> None:
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    seen: list[bool] = []
    dense.conv.register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    rows = benchmark(
        dense,
        slim,
        input_shape=(3, 5, 5),
        batch_sizes=(2,),
        channels_last=True,
        warmup=1,
        repeats=2,
        clock=clock,
    )
    assert rows[0]["channels_last"] is True
    assert seen and all(seen[1:])  # seen[0] is the FLOPs pass on a plain input
    with pytest.raises(ValueError, match="channels_last"):
        benchmark(dense, slim, input_shape=(3, 5), channels_last=True)


def test_benchmark_bf16_runs_both_forwards_under_autocast() -> None:
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    seen: list[torch.dtype] = []
    for model in (dense, slim):
        model.conv.register_forward_hook(lambda _m, _a, out: seen.append(out.dtype))
    rows = benchmark(
        dense, slim, input_shape=(3, 5, 5), batch_sizes=(2,), amp="bf16", warmup=1, repeats=2,
        clock=clock,
    )  # fmt: skip
    assert rows[0]["amp"] == "bf16"
    assert seen[:2] == [torch.float32, torch.float32]  # the FLOPs passes run in float32
    assert len(seen) == 2 + 2 * 3 and set(seen[2:]) == {torch.bfloat16}  # 1 warm-up + 2 timed
    with pytest.raises(ValueError, match="amp"):
        benchmark(dense, slim, input_shape=(3, 5, 5), amp="fp8")


def test_compile_failure_raises_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_compile(model: nn.Module) -> Callable[..., torch.Tensor]:
        def run(*_args: object) -> torch.Tensor:
            raise RuntimeError("backend exploded")

        return run

    monkeypatch.setattr(speed.torch, "compile", failing_compile)
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    with pytest.raises(CompileError, match=r"dense model.*backend exploded"):
        benchmark(dense, slim, input_shape=(3, 4, 4), batch_sizes=(1,), compile=True)

    def refusing_compile(model: nn.Module) -> None:
        raise RuntimeError("no compiler")

    monkeypatch.setattr(speed.torch, "compile", refusing_compile)
    with pytest.raises(CompileError, match="no compiler"):
        benchmark(dense, slim, input_shape=(3, 4, 4), batch_sizes=(1,), compile=True)


def test_compile_success_path_uses_compiled_callable(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[nn.Module] = []

    def fake_compile(model: nn.Module) -> nn.Module:
        compiled.append(model)
        return model

    monkeypatch.setattr(speed.torch, "compile", fake_compile)
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    rows = benchmark(
        dense, slim, input_shape=(3, 4, 4), batch_sizes=(1,), compile=True, clock=clock
    )
    assert len(compiled) == 2 and rows[0]["compile"] is True
    assert compiled[0] is not dense  # a private copy is compiled, never the caller's model


class ScriptedLoad:
    """Load averages read in order, recording how many timed calls had run at each read."""

    def __init__(self, loads: list[tuple[float, float, float] | None], calls: list[int]) -> None:
        self.loads = iter(loads)
        self.calls = calls
        self.seen: list[int] = []

    def __call__(self) -> tuple[float, float, float] | None:
        self.seen.append(len(self.calls))
        return next(self.loads)


def test_load_is_read_just_before_and_after_each_rows_timing(monkeypatch) -> None:
    monkeypatch.setattr(speed, "available_cpus", lambda: 4)
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    calls: list[int] = []
    dense.register_forward_hook(lambda *_: calls.append(1))
    slim.register_forward_hook(lambda *_: calls.append(1))
    loads = [(1.0, 2.0, 3.0), (3.5, 2.0, 1.0), (4.9, 1.0, 1.0), (5.5, 1.0, 1.0)]
    load = ScriptedLoad(loads, calls)  # type: ignore[arg-type]
    rows = benchmark(dense, slim, input_shape=(3, 6, 6), batch_sizes=(1, 2), warmup=1,
                     repeats=2, clock=clock, loadavg=load)  # fmt: skip
    # the FLOPs count runs each model once (2 calls) before any read; each row times
    # (1 warm-up + 2 timed) calls of each model between its two reads
    assert load.seen == [2, 8, 8, 14]
    assert rows[0]["load_before"] == [1.0, 2.0, 3.0] and rows[0]["load_after"] == [3.5, 2.0, 1.0]
    assert rows[1]["load_before"] == [4.9, 1.0, 1.0] and rows[1]["load_after"] == [5.5, 1.0, 1.0]
    assert [r["cpus"] for r in rows] == [4, 4]
    assert [r["threads"] for r in rows] == [torch.get_num_threads()] * 2
    assert [r["busy"] for r in rows] == [False, True]  # 3.5 and 4.9 <= 4 cores + 1 < 5.5


def test_busy_rule() -> None:
    assert not speed.is_busy((3.0, 9.0, 9.0), (3.0, 9.0, 9.0), 2)  # 1-minute load only
    assert not speed.is_busy((2.3, 0.0, 0.0), (2.0, 0.0, 0.0), 2)  # a run's own training
    assert speed.is_busy((3.01, 0.0, 0.0), (0.5, 0.0, 0.0), 2)  # before counts
    assert speed.is_busy((0.5, 0.0, 0.0), (3.01, 0.0, 0.0), 2)  # after counts
    assert speed.is_busy(None, (4.0, 0.0, 0.0), 2)
    assert not speed.is_busy(None, None, 2)  # no load average on this OS: no claim


def test_no_load_average_is_recorded_as_none(monkeypatch) -> None:
    monkeypatch.delattr(speed.os, "getloadavg")  # as on Windows
    assert speed.read_loadavg() is None
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    (row,) = benchmark(dense, slim, input_shape=(3, 6, 6), batch_sizes=(1,), warmup=0,
                       repeats=1, clock=clock)  # fmt: skip
    assert row["load_before"] is None and row["load_after"] is None and row["busy"] is False
    assert speed.busy_warning([row]) is None


def test_busy_warning_is_one_line_with_the_highest_load() -> None:
    quiet = {"busy": False, "load_before": [1.0, 0, 0], "load_after": [1.5, 0, 0], "cpus": 2}
    busy = {"busy": True, "load_before": [2.5, 0, 0], "load_after": [3.25, 0, 0], "cpus": 2}
    assert speed.busy_warning([quiet]) is None
    assert speed.busy_warning([]) is None
    text = speed.busy_warning([quiet, busy])
    assert text == "warning: timed on a busy machine (load 3.25 on 2 cores): speeds unreliable"


def test_relative_spread_is_half_the_p10_p90_range_of_the_wider_model() -> None:
    row = {"dense_ms": 10.0, "dense_ms_p10": 9.0, "dense_ms_p90": 11.0,
           "slim_ms": 5.0, "slim_ms_p10": 4.0, "slim_ms_p90": 7.0}  # fmt: skip
    assert speed.relative_spread(row) == pytest.approx(0.3)  # slim: (7 - 4) / (2 * 5)
    row.update(slim_ms_p10=4.9, slim_ms_p90=5.1)
    assert speed.relative_spread(row) == pytest.approx(0.1)  # dense: (11 - 9) / (2 * 10)
    assert speed.relative_spread({"dense_ms": None, "slim_ms": 1.0}) == 0.0


def test_slim_equals_dense_when_the_flops_are_equal() -> None:
    clock = SteppingClock()
    dense, slim = ticking_pair(clock)
    (row,) = benchmark(dense, dense, input_shape=(3, 6, 6), batch_sizes=(1,), warmup=0,
                       repeats=1, clock=clock)  # fmt: skip
    assert speed.slim_equals_dense(row)
    (row,) = benchmark(dense, slim, input_shape=(3, 6, 6), batch_sizes=(1,), warmup=0,
                       repeats=1, clock=clock)  # fmt: skip
    assert not speed.slim_equals_dense(row)
    assert not speed.slim_equals_dense({})  # an old row without FLOPs: no claim
