"""Training FLOPs over a run's real trajectory (DESIGN §7), and the FLOPs of a run's engine.

Sparse training FLOPs follow the masks as they were (``training_flops``); dense-hardware
training FLOPs follow the architectures as they were, shrinking with Chase's channel events
(``dense_hardware_training_flops``). ``engine_flops`` computes both, with the inference numbers
of ``chase.metrics.flops``, from an engine's plain records. ``docs/measurement.md`` gives the
formulas.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from chase.metrics.flops import (
    FlopsReport,
    LayerCost,
    TrajectoryRecord,
    check_known,
    flops_report,
    forward_flops,
    layer_costs,
    safe_ratio,
    total_flops,
)
from chase.sparsity.engine import SparsityEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainFlops:
    """Training FLOPs per example, summed over all steps, against dense training."""

    train_flops_per_example: float
    dense_train_flops_per_example: float
    ratio: float
    gpu_supported_train_flops_per_example: float | None = None

    def flops_dict(self) -> dict[str, Any]:
        """The training FLOPs under their documented names (``train``, ``train_dense``,
        ``train_ratio`` and, when known, ``train_gpu_supported`` with its ratio to
        ``train_dense``), to merge into a ``flops`` section."""
        out = {
            "train": self.train_flops_per_example,
            "train_dense": self.dense_train_flops_per_example,
            "train_ratio": self.ratio,
        }
        gpu = self.gpu_supported_train_flops_per_example
        if gpu is not None:
            out["train_gpu_supported"] = gpu
            out["train_gpu_supported_ratio"] = safe_ratio(gpu, self.dense_train_flops_per_example)
        return out


def _check_trajectory(trajectory: Sequence[TrajectoryRecord]) -> None:
    if not trajectory or trajectory[0][0] != 0:
        raise ValueError("trajectory: the first record must be at step 0")
    steps = [s for s, _ in trajectory]
    if steps != sorted(steps):
        raise ValueError(f"trajectory: record steps must be non-decreasing, got {steps[:10]}...")


def training_flops(
    costs: Mapping[str, LayerCost],
    trajectory: Sequence[TrajectoryRecord],
    total_steps: int,
    dense_grad_steps: Iterable[int] = (),
) -> TrainFlops:
    """Training FLOPs per example over the real mask trajectory, against dense training.

    Training iteration s ∈ [0, total_steps) uses the counts of the last record with step ≤ s
    (a later record at the same step replaces an earlier one) and costs 3·f_sparse(s): forward,
    backward to activations, backward to weights. Each iteration in ``dense_grad_steps`` also
    computes the dense weight gradient and costs an extra f_dense − f_sparse(s):

        train = Σ_s 3·f_sparse(s) + Σ_{s ∈ G} (f_dense − f_sparse(s)),   dense = 3·f_dense·T.

    ``dense_grad_steps`` G holds iteration indices: RigL/MEST the iterations whose gradient the
    update reads (for an engine updating after optimizer step t, that is iteration t − 1), SNFS
    ``range(total_steps)``, SET/static nothing. Values are per example, summed over all steps.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps = {total_steps} is not allowed: must be positive")
    _check_trajectory(trajectory)
    grad_steps = sorted(set(dense_grad_steps))
    if grad_steps and (grad_steps[0] < 0 or grad_steps[-1] >= total_steps):
        raise ValueError(
            f"dense_grad_steps must lie in [0, {total_steps}); "
            f"got {grad_steps[0]}..{grad_steps[-1]}"
        )
    f_dense = total_flops(costs)
    # Segment i covers iterations [start_i, start_{i+1}) clipped to [0, total_steps).
    starts = [s for s, _ in trajectory] + [total_steps]
    train = 0
    for i, (start, counts) in enumerate(trajectory):
        end = min(starts[i + 1], total_steps)
        if end <= start:
            continue
        f_sparse = forward_flops(costs, counts)
        n_grad = bisect.bisect_left(grad_steps, end) - bisect.bisect_left(grad_steps, start)
        train += 3 * f_sparse * (end - start) + (f_dense - f_sparse) * n_grad
    dense = 3 * f_dense * total_steps
    log.debug("training FLOPs: %d sparse vs %d dense per example", train, dense)
    return TrainFlops(float(train), float(dense), safe_ratio(train, dense))


def dense_hardware_training_flops(
    costs: Mapping[str, LayerCost],
    sizes: Sequence[TrajectoryRecord],
    total_steps: int,
) -> float:
    """Training FLOPs per example that dense kernels execute over the real architectures:
    every iteration costs 3× the dense forward of the weights' sizes at that time.

    ``sizes`` holds ``(step, {weight FQN: numel})`` records from step 0 (one per shrink of the
    model; a layer absent from a record has its ``costs`` size), read like a mask trajectory:

        train_gpu_supported = Σ_s 3 · Σ_l 2 · positions_l · numel_l(s).
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps = {total_steps} is not allowed: must be positive")
    _check_trajectory(sizes)
    starts = [s for s, _ in sizes] + [total_steps]
    total = 0
    for i, (start, numel) in enumerate(sizes):
        end = min(starts[i + 1], total_steps)
        if end > start:
            check_known(numel, costs, "sizes")
            f = sum(2 * c.positions * numel.get(n, c.weight_numel) for n, c in costs.items())
            total += 3 * f * (end - start)
    return float(total)


def engine_flops(
    model: nn.Module,
    engine: SparsityEngine | None,
    slim: nn.Module,
    example_inputs: torch.Tensor | Sequence[Any],
    total_steps: int,
) -> tuple[FlopsReport, TrainFlops | None]:
    """Inference FLOPs of a (masked) ``model`` with its ``slim`` version, and training FLOPs
    over the engine's mask trajectory for ``total_steps`` steps (``None`` for 0 steps).

    Computed from the engine's plain records (``engine.record``): dense FLOPs and parameters
    are those of the original model even when the live ``model`` shrank while training (the
    output positions of each layer come from ``model``, its weight sizes from the record).
    ``engine=None`` is dense training. What ``report.json`` and ``chase flops RUN_DIR`` show.
    """
    live = layer_costs(model, example_inputs)
    slim_costs = layer_costs(slim, example_inputs)
    if engine is None:
        report = flops_report(live, model=model, slim_costs=slim_costs)
        if total_steps <= 0:
            return report, None
        train = training_flops(live, [(0, {})], total_steps)
        return report, replace(
            train, gpu_supported_train_flops_per_example=train.dense_train_flops_per_example
        )
    rec = engine.record(total_steps)
    costs = {
        n: LayerCost(2 * c.positions * rec.original.get(n, c.weight_numel), c.positions,
                     rec.original.get(n, c.weight_numel))
        for n, c in live.items()
    }  # fmt: skip
    report = flops_report(costs, active=rec.active, slim_costs=slim_costs)
    masked_out = sum(costs[n].weight_numel - a for n, a in rec.active.items() if n in costs)
    report = replace(
        report, params_dense=rec.params_original,
        params_nonzero=rec.params_original - masked_out,
    )  # fmt: skip
    if total_steps <= 0:
        return report, None
    train = training_flops(costs, rec.trajectory, total_steps, rec.dense_grad_iterations)
    gpu = dense_hardware_training_flops(costs, rec.sizes, total_steps)
    return report, replace(train, gpu_supported_train_flops_per_example=gpu)
