"""Rebuilding a run's objects from a checkpoint: the one path that resume (``Trainer``) and the
readers of a finished run (``RunDir.rebuild``: ``chase flops``, ``chase bench``) share."""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn

import chase
from chase.data.synthetic import example_batch
from chase.errors import CheckpointError, ConfigError, ScheduleWarning
from chase.models import create_model
from chase.sparsity.config import SparsityConfig
from chase.sparsity.engine import SparsityEngine

InputShape = tuple[int, int, int]


def build_model(name: str, num_classes: int, in_channels: int, kwargs: dict[str, Any]) -> nn.Module:
    """The registry model of a run; a ``model_kwargs`` entry its constructor rejects is a
    ``ConfigError`` naming them (a ``TypeError`` without model_kwargs is a bug and propagates)."""
    try:
        return create_model(name, num_classes=num_classes, in_channels=in_channels, **kwargs)
    except TypeError as exc:
        if not kwargs:
            raise
        raise ConfigError(
            f"model_kwargs = {kwargs!r} is not allowed for model {name!r}: {exc}"
        ) from None


def build_engine(
    model: nn.Module,
    config: SparsityConfig,
    example_inputs: torch.Tensor,
    optimizer: torch.optim.Optimizer | None = None,
) -> SparsityEngine:
    """The run's sparsity engine on ``model`` (attached to ``optimizer`` when one is given)."""
    return chase.sparsify(
        model, optimizer, config, example_inputs=example_inputs, attach=optimizer is not None
    )


def reader_engine(model: nn.Module, state: dict[str, Any] | None, shape: InputShape) -> Any:
    """An engine for reading a checkpoint's ``engine`` state: built with the config it was
    saved with (steps already resolved), not attached to any optimizer; None for dense runs."""
    if state is None:
        return None
    config = SparsityConfig.from_dict(state["config"])
    with warnings.catch_warnings():  # a reader does not train: the run already warned
        warnings.simplefilter("ignore", ScheduleWarning)
        return build_engine(model, config, example_batch(shape, 2))


def restore(
    state: dict[str, Any],
    where: str | os.PathLike[str],
    *,
    model: nn.Module,
    engine: SparsityEngine | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
) -> None:
    """Load a run checkpoint's states into the objects given (model first, engine last, as the
    engine re-applies its masks to the loaded weights and optimizer state).

    A checkpoint that does not fit raises ``CheckpointError`` naming ``where`` and the first
    line of the cause.
    """
    try:
        if engine is not None:  # a model that shrank while training gets its shape back first
            engine.load_structure(state["engine"])
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None:
            scaler.load_state_dict(state["scaler"])
        if engine is not None:
            engine.load_state_dict(state["engine"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise CheckpointError(f"{where} does not fit this run ({first})") from None
