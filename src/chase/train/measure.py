"""Measuring a run folder after the fact: its FLOPs (``chase flops RUN_DIR``) and its dense and
slim models (``chase bench RUN_DIR``). Read-only: the run is rebuilt from its checkpoint and
engine state, never re-derived, and nothing in the folder is written."""

from __future__ import annotations

from typing import Any

from torch import nn

import chase
from chase.data.synthetic import example_batch
from chase.metrics import engine_flops, param_counts
from chase.train.rundir import RunDir


def run_flops(run: RunDir) -> dict[str, Any]:
    """FLOPs and parameters of a run's masked model, its slim model and its mask trajectory,
    under the names of ``report.json`` (``flops``, ``params_*``) plus ``per_layer`` rows."""
    model, engine = run.rebuild()
    x = example_batch(run.shape.input_shape)
    slim = run.slim_model(model, engine)
    report, train = engine_flops(model, engine, slim, x, int(run.checkpoint["step"]))
    out = report.to_dict()
    if train is not None:
        out["flops"].update(train.flops_dict())
    masks = chase.slim_masks(engine) if engine is not None and engine.groups else {}
    if run.slim is not None and run.slim.masks is not None:
        masks = run.slim.masks
    out["params_slim"], out["params_slim_nonzero"] = param_counts(slim, masks)
    return out


def run_pair(run: RunDir) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """A model of the run's original (dense) architecture, its slim model, and what
    ``chase bench`` says of the source: folder, model, dataset, reached channel sparsity and
    input shape. The dense model is the checkpoint's masked one, or, when the run shrank while
    training (the checkpoint then holds a narrower model), a fresh one of the original shape:
    dense kernels run the same whatever the weights."""
    model, engine = run.rebuild()
    slim = run.slim_model(model, engine)
    dense = model if engine is None or engine.layout is None else run.original_model()
    info = {
        "source": str(run.path),
        "model": run.config.model,
        "dataset": run.config.data.name,
        "channel_sparsity": (run.report or {}).get("channel_sparsity"),
        "input_shape": list(run.shape.input_shape),
    }
    return dense, slim, info
