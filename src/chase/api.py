"""The public entry points: ``sparsify`` a model, then ``slim`` it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from chase.errors import ConfigError
from chase.sparsity.config import SparsityConfig
from chase.sparsity.engine import SparsityEngine, unwrap
from chase.sparsity.groups import ChannelGroup


def sparsify(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    config: SparsityConfig | None = None,
    *,
    example_inputs: Any = None,
    groups: list[ChannelGroup] | None = None,
    attach: bool = True,
) -> SparsityEngine:
    """Make ``model`` sparse and keep it so: returns the engine driving its masks.

    With ``attach=True`` (default) the engine runs as a post-hook of ``optimizer.step()``, so
    a plain training loop needs no other change; with ``attach=False`` call
    ``engine.after_step()`` after every real optimizer step yourself. ``example_inputs`` (a
    tensor or tuple of tensors shaped like a batch) lets the engine trace the model's channel
    groups, which Chase's channel learner (``config.channels``) and ``slim`` need.
    """
    config = config if config is not None else SparsityConfig()
    if not isinstance(config, SparsityConfig):
        raise ConfigError(f"config must be a SparsityConfig, got {type(config).__name__}")
    if groups is None and example_inputs is not None:
        from chase.structure.coupling import discover_groups

        groups = discover_groups(unwrap(model), example_inputs)
    return SparsityEngine(model, optimizer, config, groups=groups, attach=attach)
