"""Measurement: FLOPs and parameter accounting (``flops``), training FLOPs over a run
(``training``) and dense-vs-slim speed (``speed``).

Pure functions of a model, its masks and a mask trajectory; ``docs/measurement.md`` explains
every number with its formula.
"""

from __future__ import annotations

from chase.metrics.flops import (
    FlopsReport,
    LayerCost,
    LayerFlops,
    flops_report,
    forward_flops,
    gpu_supported_flops,
    layer_costs,
    param_counts,
    total_flops,
)
from chase.metrics.speed import CompileError, Timing, benchmark, percentile, time_fn
from chase.metrics.training import (
    TrainFlops,
    dense_hardware_training_flops,
    engine_flops,
    training_flops,
)

__all__ = [
    "CompileError",
    "FlopsReport",
    "LayerCost",
    "LayerFlops",
    "Timing",
    "TrainFlops",
    "benchmark",
    "dense_hardware_training_flops",
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
