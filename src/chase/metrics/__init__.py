"""Measurement: FLOPs and parameter accounting (``flops``) and dense-vs-slim speed (``speed``).

Pure functions of a model, its masks and a mask trajectory; ``docs/measurement.md`` explains
every number with its formula.
"""

from __future__ import annotations

from chase.metrics.flops import (
    FlopsReport,
    LayerCost,
    LayerFlops,
    TrainFlops,
    engine_flops,
    flops_report,
    forward_flops,
    gpu_supported_flops,
    layer_costs,
    param_counts,
    total_flops,
    training_flops,
)
from chase.metrics.speed import CompileError, Timing, benchmark, percentile, time_fn

__all__ = [
    "CompileError",
    "FlopsReport",
    "LayerCost",
    "LayerFlops",
    "Timing",
    "TrainFlops",
    "benchmark",
    "engine_flops",
    "flops_report",
    "forward_flops",
    "gpu_supported_flops",
    "layer_costs",
    "param_counts",
    "percentile",
    "time_fn",
    "total_flops",
    "training_flops",
]
