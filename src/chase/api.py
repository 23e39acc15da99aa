"""The public entry points: ``sparsify`` a model, then ``slim`` it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chase.errors import ConfigError
from chase.sparsity.config import ChannelConfig, SparsityConfig
from chase.sparsity.engine import ShrinkEvent, SparsityEngine, unwrap
from chase.sparsity.groups import ChannelGroup
from chase.structure.coupling import discover_groups
from chase.structure.io import save_slim as _save_slim
from chase.structure.shrink import Shrinker
from chase.structure.slim import slice_tensor_dict, slim_copy
from chase.structure.spec import SlimSpec, kept_indices


def sparsify(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    config: SparsityConfig | None = None,
    *,
    example_inputs: Any = None,
    groups: list[ChannelGroup] | None = None,
    attach: bool = True,
    on_shrink: Callable[[ShrinkEvent], None] | None = None,
) -> SparsityEngine:
    """Make ``model`` sparse and keep it so: returns the engine driving its masks.

    With ``attach=True`` (default) the engine runs as a post-hook of ``optimizer.step()``, so
    a plain training loop needs no other change; with ``attach=False`` call
    ``engine.after_step()`` after every real optimizer step yourself. ``example_inputs`` (a
    tensor or tuple of tensors shaped like a batch) lets the engine trace the model's channel
    groups, which Chase's channel learner (``config.channels``) and ``slim`` need.

    With ``config.channels.shrink`` the model shrinks in place after every channel event that
    removes channels (parameters keep their identity, so ``optimizer`` keeps working);
    ``on_shrink(event)`` is called after each shrink (also ``engine.on_shrink``) and is
    required when ``model`` is a wrapper (DDP, ``torch.compile``) that must be rebuilt.
    """
    config = config if config is not None else SparsityConfig()
    if not isinstance(config, SparsityConfig):
        raise ConfigError(f"config must be a SparsityConfig, got {type(config).__name__}")
    if groups is None and example_inputs is not None:
        groups = discover_groups(unwrap(model), example_inputs)
    resizer = None
    if config.channels is not None and config.channels.shrink and groups is not None:
        resizer = Shrinker(unwrap(model), groups)
    return SparsityEngine(
        model, optimizer, config, groups=groups, attach=attach, resizer=resizer,
        on_shrink=on_shrink,
    )  # fmt: skip


def prune_channels_once(
    model: nn.Module,
    example_inputs: Any,
    sparsity: float,
    *,
    density: float = 1.0,
    round_to: int = 1,
    prune_skip: bool = False,
    seed: int = 0,
) -> SparsityEngine:
    """Chase's channel selection applied once, at its final target, to ``model`` (in place).

    The engine is built with one channel event due after step 1 (``end = 1``) and one
    ``after_step()`` runs it: the lowest-scoring channels are removed down to ``sparsity``
    exactly as a training run's last event would, floors and ``round_to`` included.
    ``density`` < 1 first draws an ERK weight mask (static), which the UMM score sees. Then
    ``chase.slim(model, engine)`` gives the slim model. Benchmarks use it to time a slim model
    without training one.
    """
    channels = ChannelConfig(
        sparsity=sparsity, every=1, end=1, offset=0, round_to=round_to, prune_skip=prune_skip
    )
    config = SparsityConfig(
        density=density, updater="static", total_steps=1, seed=seed, channels=channels
    )
    engine = sparsify(model, None, config, example_inputs=example_inputs, attach=False)
    engine.after_step()
    return engine


def slim_spec(engine: SparsityEngine) -> SlimSpec:
    """Which positions of which tensors of the ORIGINAL model survive the engine's channel
    removal, as data (what ``save_slim`` stores; shrinking while training changes nothing
    here)."""
    if engine.groups is None:
        raise ConfigError(
            "slimming needs the model's channel groups: pass example_inputs to sparsify"
        )
    keep = engine.channels.keep() if engine.channels is not None else {}
    return kept_indices(engine.groups, keep)


def _remaining(engine: SparsityEngine) -> SlimSpec:
    """What is left to cut from the live model (itself already cut by shrinking)."""
    return slim_spec(engine).relative_to(engine.layout)


def slim(model: nn.Module, engine: SparsityEngine) -> nn.Module:
    """A physically narrower copy of ``model`` with every removed channel gone.

    Modules are resized, and parameters and buffers sliced; the copy computes the same
    function as the masked model (eval mode). Its weights stay unstructured-sparse inside;
    :func:`slim_masks` gives the matching sliced weight masks. A model that shrank while
    training is cut by whatever is left (often nothing).
    """
    return slim_copy(unwrap(model), _remaining(engine))


def slim_masks(engine: SparsityEngine) -> dict[str, torch.Tensor]:
    """The engine's weight masks sliced to the slim model's shapes."""
    return slice_tensor_dict(dict(engine.masks.items()), _remaining(engine))


def save_slim(
    path: str | os.PathLike[str],
    model: nn.Module,
    engine: SparsityEngine,
    *,
    arch: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Slim the (masked) ``model`` and write the result to one file, atomically.

    The file holds the slim shape as data (kept positions per tensor axis), the slim state
    dict and masks; ``arch`` (``{"name": registry name, "kwargs": {...}}``) lets
    :func:`load_slim` rebuild the original model by itself. Loads with ``weights_only=True``.
    """
    rest = _remaining(engine)
    masks = slice_tensor_dict(dict(engine.masks.items()), rest)
    return _save_slim(
        path,
        slim_copy(unwrap(model), rest),
        slim_spec(engine),
        masks=masks,
        arch=arch,
        extra=extra,
    )
