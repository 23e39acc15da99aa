"""Honest latency and throughput measurement of a dense model against its slim version.

Eval mode, ``torch.inference_mode``, warm-up calls that are never timed, a device sync before
every clock read, and robust statistics (median, 10th/90th percentiles) rather than means.
The clock is injectable so the statistics are tested with a fake clock, never with wall time.
The load average is read before and after each batch size's timing, so a row says whether the
machine was busy while it was taken (``busy``; the rule is ``is_busy``).
``docs/measurement.md`` explains every reported number.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from chase.data.synthetic import example_batch
from chase.errors import ChaseError
from chase.metrics.flops import layer_costs, total_flops

log = logging.getLogger(__name__)

Clock = Callable[[], float]
#: the 1-, 5- and 15-minute load averages (``os.getloadavg``), None where the OS has none
LoadAvg = Callable[[], tuple[float, float, float] | None]


class CompileError(ChaseError, RuntimeError):
    """``torch.compile`` failed: the benchmark refuses to fall back silently to eager mode."""


@dataclass(frozen=True)
class Timing:
    """Statistics of the timed calls of one function, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    repeats: int


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 ≤ q ≤ 100) with linear interpolation between order statistics.

    Same definition as ``numpy.percentile``'s default, so results can be cross-checked.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q = {q} is not allowed: must be in [0, 100]")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(durations_s: Sequence[float]) -> Timing:
    """Median, p10, p90, mean and min (ms) of per-call durations given in seconds."""
    ms = [d * 1e3 for d in durations_s]
    return Timing(
        median_ms=percentile(ms, 50),
        p10_ms=percentile(ms, 10),
        p90_ms=percentile(ms, 90),
        mean_ms=sum(ms) / len(ms),
        min_ms=min(ms),
        repeats=len(ms),
    )


def time_fn(
    fn: Callable[[], Any],
    *,
    warmup: int,
    repeats: int,
    clock: Clock = time.perf_counter,
    sync: Callable[[], Any] | None = None,
    min_time_s: float = 0.0,
    max_repeats: int | None = None,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then at least ``repeats`` timed ones.

    Each call is timed on its own (``sync(); t0 = clock(); fn(); sync(); t1 = clock()``) so
    the percentiles describe single calls. Adaptive mode: with ``min_time_s`` > 0, timed calls
    continue until their summed time reaches ``min_time_s`` or ``max_repeats`` calls (default
    100·repeats) were made, so fast functions get enough samples and slow ones stay bounded.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup = {warmup}, repeats = {repeats}: need warmup ≥ 0, repeats ≥ 1")
    if min_time_s < 0:
        raise ValueError(f"min_time_s = {min_time_s} is not allowed: must be ≥ 0")
    cap = 100 * repeats if max_repeats is None else max_repeats
    if cap < repeats:
        raise ValueError(f"max_repeats = {max_repeats} is not allowed: must be ≥ repeats")
    sync_fn = sync if sync is not None else _no_sync
    for _ in range(warmup):
        fn()
    durations: list[float] = []
    elapsed = 0.0
    while len(durations) < repeats or (elapsed < min_time_s and len(durations) < cap):
        sync_fn()
        t0 = clock()
        fn()
        sync_fn()
        t1 = clock()
        durations.append(t1 - t0)
        elapsed += t1 - t0
    return summarize(durations)


def _no_sync() -> None:
    return None


def _prepare(
    model: nn.Module, device: torch.device, channels_last: bool, compile: bool, fuse_bn: bool
) -> tuple[nn.Module, Callable[..., Any]]:
    """A private eval-mode copy on ``device`` and the callable to time (compiled if asked)."""
    prepared = copy.deepcopy(model).to(device).eval()
    if fuse_bn:
        from chase.structure.bn import fold_batchnorm

        prepared = fold_batchnorm(prepared)
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if not compile:
        return prepared, prepared
    try:
        return prepared, torch.compile(prepared)
    except Exception as exc:  # compile errors surface lazily too; see _first_call
        raise CompileError(f"torch.compile failed: {exc}") from exc


def _first_call(fn: Callable[..., Any], x: torch.Tensor, which: str) -> None:
    """Run a compiled model once (compilation); turn a failure into a clear CompileError."""
    try:
        fn(x)
    except Exception as exc:
        raise CompileError(
            f"torch.compile failed on the {which} model ({type(exc).__name__}: {exc}); "
            "rerun without compile"
        ) from exc


AMP = ("none", "bf16")


def _under_amp(fn: Callable[..., Any], device: torch.device, amp: str) -> Callable[..., Any]:
    """``fn`` called inside ``torch.autocast`` to bfloat16 (``amp="bf16"``), as the trainer's
    ``amp: bf16`` runs its forward passes; ``"none"`` leaves it in float32."""
    if amp == "none":
        return fn

    def call(*args: Any) -> Any:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return fn(*args)

    return call


def _make_input(
    batch: int, input_shape: Sequence[int], device: torch.device, channels_last: bool
) -> torch.Tensor:
    x = example_batch(tuple(input_shape), batch).to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _flops_pair(
    dense: nn.Module, slim: nn.Module, input_shape: Sequence[int], device: torch.device
) -> tuple[int, int]:
    x = _make_input(1, input_shape, device, channels_last=False)
    return total_flops(layer_costs(dense, x)), total_flops(layer_costs(slim, x))


def benchmark(
    model_dense: nn.Module,
    model_slim: nn.Module,
    *,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 64),
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    compile: bool = False,
    fuse_bn: bool = False,
    amp: str = "none",
    warmup: int = 10,
    repeats: int = 30,
    min_time_s: float = 0.0,
    clock: Clock = time.perf_counter,
    loadavg: LoadAvg | None = None,
) -> list[dict[str, Any]]:
    """Latency/throughput of dense vs slim, one row per batch size, next to their FLOPs ratio.

    Both models are copied (the originals are untouched), put in eval mode on ``device`` and
    run under ``torch.inference_mode`` with the same random input. ``speedup`` = dense_ms /
    slim_ms (medians); ``flops_ratio`` = dense FLOPs / slim FLOPs, the physical limit of the
    speedup; ``efficiency`` = speedup / flops_ratio (1.0 = the whole FLOPs saving is realised).
    ``amp="bf16"`` runs both forwards under ``torch.autocast`` to bfloat16 (CPU and CUDA).
    Each row also holds the load averages read (``loadavg``, default ``os.getloadavg``) just
    before and just after its timing, the cores and threads available, and ``busy``.
    """
    dev = torch.device(device)
    if channels_last and len(input_shape) != 3:
        raise ValueError(f"channels_last needs input_shape (C, H, W); got {tuple(input_shape)}")
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ValueError(f"batch_sizes = {tuple(batch_sizes)}: need positive batch sizes")
    if amp not in AMP:
        raise ValueError(f"amp = {amp!r} is not allowed: one of {', '.join(AMP)}")
    read_load = loadavg if loadavg is not None else read_loadavg
    cpus = available_cpus()
    sync = functools.partial(torch.cuda.synchronize, dev) if dev.type == "cuda" else None
    timer = functools.partial(
        time_fn, warmup=warmup, repeats=repeats, clock=clock, sync=sync, min_time_s=min_time_s
    )
    dense, dense_fn = _prepare(model_dense, dev, channels_last, compile, fuse_bn)
    slim, slim_fn = _prepare(model_slim, dev, channels_last, compile, fuse_bn)
    dense_fn, slim_fn = _under_amp(dense_fn, dev, amp), _under_amp(slim_fn, dev, amp)
    dense_flops, slim_flops = _flops_pair(dense, slim, input_shape, dev)
    flops_ratio = _div(dense_flops, slim_flops)
    rows = []
    with torch.inference_mode():
        for batch in batch_sizes:
            x = _make_input(batch, input_shape, dev, channels_last)
            if compile:  # compilation happens on the first call of each new input shape
                _first_call(dense_fn, x, "dense")
                _first_call(slim_fn, x, "slim")
            before = read_load()
            t_dense = timer(functools.partial(dense_fn, x))
            t_slim = timer(functools.partial(slim_fn, x))
            after = read_load()
            row = _row(batch, t_dense, t_slim, dense_flops, slim_flops)
            row.update(device=str(dev), channels_last=channels_last, compile=compile,
                       fuse_bn=fuse_bn, amp=amp)  # fmt: skip
            row.update(flops_ratio=flops_ratio, efficiency=_div(row["speedup"], flops_ratio))
            row.update(_load_fields(before, after, cpus))
            log.info(
                "batch %d: dense %.3f ms, slim %.3f ms", batch, t_dense.median_ms, t_slim.median_ms
            )
            rows.append(row)
    return rows


def json_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``benchmark`` rows with NaN/inf (degenerate measurements) as None: valid JSON."""
    return [{k: _finite(v) for k, v in row.items()} for row in rows]


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _div(a: float, b: float) -> float:
    """a / b, NaN when b is zero or NaN (a degenerate measurement, reported as such)."""
    return a / b if b and not math.isnan(b) else float("nan")


def _row(
    batch: int, dense: Timing, slim: Timing, dense_flops: int, slim_flops: int
) -> dict[str, Any]:
    return {
        "batch_size": batch,
        "dense_ms": dense.median_ms,
        "slim_ms": slim.median_ms,
        "speedup": _div(dense.median_ms, slim.median_ms),
        "dense_ms_p10": dense.p10_ms,
        "dense_ms_p90": dense.p90_ms,
        "slim_ms_p10": slim.p10_ms,
        "slim_ms_p90": slim.p90_ms,
        "dense_ms_min": dense.min_ms,
        "slim_ms_min": slim.min_ms,
        "throughput_dense": _div(batch * 1e3, dense.median_ms),
        "throughput_slim": _div(batch * 1e3, slim.median_ms),
        "repeats_dense": dense.repeats,
        "repeats_slim": slim.repeats,
        "dense_flops": dense_flops,
        "slim_flops": slim_flops,
    }


# -- how far to trust a row ------------------------------------------------------------------


def read_loadavg() -> tuple[float, float, float] | None:
    """``os.getloadavg()``: the 1-, 5- and 15-minute load averages; None where there is none."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):  # Windows; or the OS cannot say
        return None


def available_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def is_busy(
    load_before: Sequence[float] | None, load_after: Sequence[float] | None, cpus: int
) -> bool:
    """The busy rule: the 1-minute load average just before or just after the timing exceeds
    the cores this process may use by more than one, i.e. at least one thread more than there
    were cores wanted to run, so timed calls waited for a core. The load counts the timing's
    own threads and, at the end of a run, the training that just filled every core (the
    average trails by about a minute), which is why one core's worth is allowed; a lower
    threshold would fire after every run on a quiet machine. Unknown load: not busy."""
    loads = [load[0] for load in (load_before, load_after) if load is not None]
    return bool(loads) and max(loads) > cpus + 1


def _load_fields(
    before: tuple[float, float, float] | None, after: tuple[float, float, float] | None, cpus: int
) -> dict[str, Any]:
    return {
        "load_before": None if before is None else [round(v, 2) for v in before],
        "load_after": None if after is None else [round(v, 2) for v in after],
        "cpus": cpus,
        "threads": torch.get_num_threads(),
        "busy": is_busy(before, after, cpus),
    }


def busy_warning(rows: Sequence[dict[str, Any]]) -> str | None:
    """One warning line when any row was timed on a busy machine (``is_busy``), else None."""
    busy = [r for r in rows if r.get("busy")]
    if not busy:
        return None
    load = max(v[0] for r in busy for v in (r.get("load_before"), r.get("load_after")) if v)
    cpus = busy[0].get("cpus", "?")
    return f"warning: timed on a busy machine (load {load:.2f} on {cpus} cores): speeds unreliable"


def relative_spread(row: dict[str, Any]) -> float:
    """Half the p10–p90 range of the timed calls over their median, the larger of dense and
    slim (0.05 = the middle 80% of calls lie within about ±5% of the median)."""
    out = 0.0
    for which in ("dense", "slim"):
        median = row.get(f"{which}_ms")
        p10, p90 = row.get(f"{which}_ms_p10"), row.get(f"{which}_ms_p90")
        if median and p10 is not None and p90 is not None:
            out = max(out, (p90 - p10) / (2 * median))
    return out


def slim_equals_dense(row: dict[str, Any]) -> bool:
    """The slim model has the dense model's FLOPs: no channel was removed (e.g. a RigL run),
    so the two models are the same network and a "speedup" between them means nothing."""
    dense, slim = row.get("dense_flops"), row.get("slim_flops")
    return dense is not None and dense == slim
