"""Freshly initialised registry models, measured without training: what ``chase flops --model``
and ``chase bench --model`` (and ``benchmarks/``) work on. No dataset file is ever read: the
shapes come from ``chase.data.specs``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

import chase
from chase.data.specs import DataShape, data_shape
from chase.data.synthetic import example_batch
from chase.metrics.flops import FlopsReport, flops_report, layer_costs
from chase.models import create_model
from chase.sparsity.config import SparsityConfig
from chase.sparsity.groups import ChannelGroup
from chase.structure.coupling import discover_groups


def fresh_model(
    model: str, dataset: str, image_size: int | None = None
) -> tuple[nn.Module, DataShape]:
    """A freshly initialised registry model in eval mode sized for ``dataset``, and the data's
    shape (classes and (C, H, W))."""
    shape = data_shape(dataset, image_size=image_size)
    net = create_model(model, num_classes=shape.num_classes, in_channels=shape.input_shape[0])
    return net.eval(), shape


def pruned_pair(
    model: str,
    dataset: str,
    sparsity: float,
    *,
    density: float,
    round_to: int,
    prune_skip: bool,
    image_size: int | None = None,
) -> tuple[nn.Module, nn.Module, DataShape, float]:
    """A fresh registry model (masked by ``chase.prune_channels_once``), its slim version in
    eval mode, the data's shape and the channel sparsity reached."""
    dense, shape = fresh_model(model, dataset, image_size)
    engine = chase.prune_channels_once(
        dense, example_batch(shape.input_shape, 2), sparsity, density=density,
        round_to=round_to, prune_skip=prune_skip,
    )  # fmt: skip
    achieved = engine.channels.summary()["sparsity"] if engine.channels is not None else 0.0
    return dense, chase.slim(dense, engine).eval(), shape, achieved


def model_flops(
    model: str,
    dataset: str,
    *,
    density: float,
    allocation: str = "erk",
    keep_dense: Sequence[str] = (),
    image_size: int | None = None,
) -> FlopsReport:
    """Theoretical FLOPs of a freshly initialised model with a static sparse mask (its slim
    model is itself: no channel is removed at initialisation)."""
    config = SparsityConfig(
        density=density, allocation=allocation, keep_dense=tuple(keep_dense), updater="static"
    )
    net, shape = fresh_model(model, dataset, image_size)
    engine = chase.sparsify(net, None, config, attach=False)
    costs = layer_costs(net, example_batch(shape.input_shape))
    return flops_report(costs, masks=dict(engine.masks.items()), model=net, slim_costs=costs)


def model_groups(model: str, dataset: str, image_size: int | None = None) -> list[ChannelGroup]:
    """The channel groups coupling discovery finds on a freshly initialised model (what
    ``chase groups`` prints: which channels Chase may remove, and why the rest are refused)."""
    net, shape = fresh_model(model, dataset, image_size)
    return discover_groups(net, example_batch(shape.input_shape, 2))
