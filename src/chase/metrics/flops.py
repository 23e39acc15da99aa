"""FLOPs and parameter accounting in RigL's and the Chase paper's convention (DESIGN §7).

A multiply–accumulate counts as 2 FLOPs and only Conv and Linear layers count: biases,
normalisation, activations and pooling are left out, as in the papers whose numbers we compare
against (dense ResNet-50 at 224×224 ≈ 8.2e9). All FLOPs are **per example** (one input image).
``docs/measurement.md`` explains every number with its formula.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import torch
from torch import nn

from chase.sparsity.engine import MASKABLE, unwrap

log = logging.getLogger(__name__)

#: Module types whose weights are costed: the maskable ones (transposed convs are not).
COSTED_TYPES: tuple[type[nn.Module], ...] = MASKABLE

#: One trajectory record: (step, {weight FQN: active weight count}).
TrajectoryRecord = tuple[int, Mapping[str, int]]


@dataclass(frozen=True)
class LayerCost:
    """Dense cost of one Conv/Linear weight, per example, summed over its calls in a forward.

    ``positions``: output positions per example (H_out·W_out for conv2d, L_out for conv1d,
    product of the leading non-batch dims for Linear); ``dense_flops`` = 2·positions·weight_numel.
    """

    dense_flops: int
    positions: int
    weight_numel: int


class LayerFlops(TypedDict):
    """One row of :attr:`FlopsReport.per_layer`."""

    name: str
    dense_flops: int
    density: float
    sparse_flops: float


@dataclass(frozen=True)
class FlopsReport:
    """Inference FLOPs (per example) and parameter counts of one model.

    ``params_dense``: every parameter of the dense model (weights, biases, norm affines).
    ``params_nonzero``: ``params_dense`` minus the masked-out weight entries, i.e. every
    parameter that is allowed to be non-zero. Both are ``None`` when no model was given.
    ``gpu_supported_flops``: dense FLOPs of the slim model (what ordinary dense kernels can
    save); ``None`` when no slim costs were given. ``docs/measurement.md`` names each key.
    """

    dense_flops: int
    sparse_flops: float
    per_layer: list[LayerFlops]
    params_dense: int | None = None
    params_nonzero: int | None = None
    gpu_supported_flops: int | None = None

    @property
    def sparse_ratio(self) -> float:
        """Sparse inference FLOPs / dense FLOPs (the paper's "test FLOPs", e.g. 0.21×)."""
        return safe_ratio(self.sparse_flops, self.dense_flops)

    @property
    def gpu_supported_ratio(self) -> float | None:
        """GPU-supported FLOPs / dense FLOPs of the original model (e.g. 0.67×)."""
        if self.gpu_supported_flops is None:
            return None
        return safe_ratio(self.gpu_supported_flops, self.dense_flops)

    @property
    def params_ratio(self) -> float | None:
        """Non-zero parameters / dense parameters."""
        if self.params_dense is None or self.params_nonzero is None:
            return None
        return safe_ratio(self.params_nonzero, self.params_dense)

    def flops_dict(self) -> dict[str, Any]:
        """The FLOPs under their documented names (``report.json``'s ``flops`` section)."""
        out: dict[str, Any] = {"dense": self.dense_flops, "sparse": self.sparse_flops}
        out["sparse_ratio"] = self.sparse_ratio
        if self.gpu_supported_flops is not None:
            out["gpu_supported"] = self.gpu_supported_flops
            out["gpu_supported_ratio"] = self.gpu_supported_ratio
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready): ``flops`` (see ``flops_dict``), ``params_dense``,
        ``params_nonzero`` and ``per_layer`` rows."""
        return {
            "flops": self.flops_dict(),
            "params_dense": self.params_dense,
            "params_nonzero": self.params_nonzero,
            "per_layer": [dict(row) for row in self.per_layer],
        }


def param_counts(
    model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None
) -> tuple[int, int]:
    """(parameters, parameters allowed to be non-zero) of ``model``: the second leaves out
    the ``False`` entries of ``masks`` (FQN → bool mask of a weight of ``model``)."""
    total = sum(p.numel() for p in unwrap(model).parameters())
    masked_out = sum(int((~m).sum()) for m in (masks or {}).values())
    return total, total - masked_out


def safe_ratio(value: float, dense: float) -> float:
    return float(value) / dense if dense else float("nan")


def _as_tuple(example_inputs: torch.Tensor | Sequence[Any]) -> tuple[Any, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    return tuple(example_inputs)


def _infer_batch(inputs: tuple[Any, ...]) -> int:
    for x in inputs:
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            return int(x.shape[0])
    raise ValueError("example_inputs: no tensor with a batch dimension; pass batch_size=")


def layer_costs(
    model: nn.Module,
    example_inputs: torch.Tensor | Sequence[Any],
    *,
    batch_size: int | None = None,
) -> dict[str, LayerCost]:
    """Dense per-example cost of every Conv/Linear weight that the forward pass uses.

    Runs one no-grad forward in eval mode with forward hooks, then restores every submodule's
    train/eval flag (BatchNorm statistics are not updated). Keys are weight FQNs of the
    unwrapped model, in call order. A layer called several times accumulates its positions.
    ``batch_size`` defaults to dim 0 of the first input tensor; per-example counts are the
    call's total output positions divided by it, so batch-folding reshapes count correctly.
    """
    inputs = _as_tuple(example_inputs)
    batch = _infer_batch(inputs) if batch_size is None else batch_size
    if batch <= 0:
        raise ValueError(f"batch_size = {batch} is not allowed: must be a positive integer")
    costs: dict[str, LayerCost] = {}
    for name, (total_positions, numel) in _collect_positions(unwrap(model), inputs).items():
        if total_positions % batch:
            raise ValueError(
                f"layer {name}: {total_positions} output positions are not divisible by "
                f"batch_size = {batch}; pass the right batch_size="
            )
        positions = total_positions // batch
        costs[name] = LayerCost(2 * positions * numel, positions, numel)
    return costs


def _collect_positions(model: nn.Module, inputs: tuple[Any, ...]) -> dict[str, list[int]]:
    """{weight FQN: [output positions summed over the batch and all calls, weight numel]}."""
    totals: dict[str, list[int]] = {}

    def make_hook(name: str, module: nn.Module) -> Any:
        width = int(getattr(module, "out_channels", getattr(module, "out_features", 1)))
        numel = cast(torch.Tensor, module.weight).numel()

        def hook(_mod: nn.Module, _args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor):
                entry = totals.setdefault(name, [0, numel])
                entry[0] += output.numel() // max(width, 1)

        return hook

    modes = {m: m.training for m in model.modules()}
    handles = [
        mod.register_forward_hook(make_hook(f"{name}.weight" if name else "weight", mod))
        for name, mod in model.named_modules()
        if isinstance(mod, COSTED_TYPES) and isinstance(getattr(mod, "weight", None), torch.Tensor)
    ]
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return totals


def total_flops(costs: Mapping[str, LayerCost]) -> int:
    """Dense FLOPs per example: the sum over layers."""
    return sum(c.dense_flops for c in costs.values())


def gpu_supported_flops(slim_model: nn.Module, example_inputs: torch.Tensor | Sequence[Any]) -> int:
    """Dense FLOPs of the slim (physically narrower) model: what ordinary kernels can save."""
    return total_flops(layer_costs(slim_model, example_inputs))


def check_known(names: Iterable[str], costs: Mapping[str, LayerCost], what: str) -> None:
    unknown = sorted(set(names) - set(costs))
    if unknown:
        raise ValueError(
            f"{what}: {unknown[:5]} are not Conv/Linear weights used in the forward pass "
            f"(known: {sorted(costs)[:5]}...)"
        )


def _active_counts(
    costs: Mapping[str, LayerCost],
    masks: Mapping[str, torch.Tensor] | None,
    densities: Mapping[str, float] | None,
    counts: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """Active weight count per layer (float for densities, exact int for masks and counts)."""
    if sum(x is not None for x in (masks, densities, counts)) > 1:
        raise ValueError("flops_report: give one of masks, densities or active counts")
    active: dict[str, float] = {}
    if counts is not None:
        check_known(counts, costs, "active counts")
        active.update({name: int(n) for name, n in counts.items()})
    elif masks is not None:
        check_known(masks, costs, "masks")
        for name, mask in masks.items():
            if mask.dtype != torch.bool or mask.numel() != costs[name].weight_numel:
                raise ValueError(
                    f"masks[{name!r}]: dtype {mask.dtype}, {mask.numel()} entries; expected a "
                    f"bool mask of {costs[name].weight_numel} entries"
                )
            active[name] = int(mask.count_nonzero())
    elif densities is not None:
        check_known(densities, costs, "densities")
        for name, d in densities.items():
            if not 0.0 <= d <= 1.0:
                raise ValueError(f"densities[{name!r}] = {d} is not allowed: must be in [0, 1]")
            active[name] = d * costs[name].weight_numel
    return active


def flops_report(
    costs: Mapping[str, LayerCost],
    masks: Mapping[str, torch.Tensor] | None = None,
    densities: Mapping[str, float] | None = None,
    *,
    active: Mapping[str, int] | None = None,
    model: nn.Module | None = None,
    slim_costs: Mapping[str, LayerCost] | None = None,
) -> FlopsReport:
    """Dense and sparse inference FLOPs per example, per layer and in total.

    Sparse FLOPs = Σ_l dense_l · density_l, with density_l = mean of the bool mask (pass the
    *effective* masks, channel masks included), the given density, or ``active`` (exact active
    counts per layer); layers without any count dense. ``model`` (the dense/masked model whose
    ``costs`` these are) adds parameter counts; ``slim_costs`` (``layer_costs`` of the slim
    model) adds GPU-supported FLOPs.
    """
    counts = _active_counts(costs, masks, densities, active)
    per_layer: list[LayerFlops] = []
    for name, cost in costs.items():
        n_active = counts.get(name, cost.weight_numel)
        if isinstance(n_active, int):  # exact: dense_flops is a multiple of weight_numel
            sparse: float = cost.dense_flops // cost.weight_numel * n_active
        else:
            sparse = cost.dense_flops * n_active / cost.weight_numel
        density = n_active / cost.weight_numel
        row = LayerFlops(
            name=name, dense_flops=cost.dense_flops, density=density, sparse_flops=sparse
        )
        per_layer.append(row)
    params_dense = params_nonzero = None
    if model is not None:
        params_dense, params_nonzero = param_counts(model)
        params_nonzero -= sum(costs[n].weight_numel - round(a) for n, a in counts.items())
    return FlopsReport(
        dense_flops=total_flops(costs),
        sparse_flops=sum(row["sparse_flops"] for row in per_layer),
        per_layer=per_layer,
        params_dense=params_dense,
        params_nonzero=params_nonzero,
        gpu_supported_flops=None if slim_costs is None else total_flops(slim_costs),
    )


def forward_flops(costs: Mapping[str, LayerCost], active: Mapping[str, int]) -> int:
    """Sparse forward FLOPs per example for given active counts: Σ_l 2·positions_l·active_l.

    Layers absent from ``active`` count dense (active = weight_numel).
    """
    check_known(active, costs, "active counts")
    total = 0
    for name, cost in costs.items():
        n = active.get(name, cost.weight_numel)
        if not 0 <= n <= cost.weight_numel:
            raise ValueError(
                f"active count of {name} = {n} is not allowed: must be in [0, {cost.weight_numel}]"
            )
        total += 2 * cost.positions * n
    return total
