"""Slim checkpoints: one file holding the slim shape spec, the slim weights and their masks.

The architecture is stored as data (how to build the original model + which positions each
tensor keeps), never as pickled modules, so files load with ``torch.load(weights_only=True)``.
Loading rebuilds the original model, resizes it with ``apply_spec`` and loads the weights
strictly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chase.errors import CheckpointError
from chase.files import atomic_torch_save, load_versioned
from chase.structure.slim import apply_spec
from chase.structure.spec import SlimSpec

FORMAT = "chase-slim"
VERSION = 1
Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class SlimModel:
    """What ``load_slim`` returns: the resized model with its weights, and the saved extras."""

    model: nn.Module
    spec: SlimSpec
    masks: dict[str, torch.Tensor] | None = None
    arch: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _check_plain(obj: Any, where: str) -> None:
    """Only what ``torch.load(weights_only=True)`` reads back: tensors, containers, scalars."""
    if obj is None or isinstance(obj, torch.Tensor | str | int | float | bool):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: key {k!r} must be a str or int")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: {type(obj).__name__} cannot be stored in a slim checkpoint")


def save_slim(
    path: str | os.PathLike[str],
    model_slim: nn.Module,
    spec: SlimSpec,
    *,
    masks: Mapping[str, torch.Tensor] | None = None,
    arch: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write one slim checkpoint atomically (temp file in the same folder, then rename).

    ``arch`` is ``{"name": registry name, "kwargs": {...}}`` so ``load_slim`` can rebuild the
    original model without being handed one; ``masks`` are the (already sliced) weight masks;
    ``extra`` is any plain data (metrics, config). Tensors are stored on the CPU.
    """
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": None if arch is None else dict(arch),
        "spec": spec.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model_slim.state_dict().items()},
        "masks": None if masks is None else {k: v.detach().cpu() for k, v in masks.items()},
        "extra": dict(extra or {}),
    }
    _check_plain(payload, "slim checkpoint")
    return atomic_torch_save(path, payload)


def read_slim(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint dict, checked for format and version (CheckpointError otherwise)."""
    data = load_versioned(path, FORMAT, VERSION, "slim checkpoint")
    for key in ("spec", "state_dict"):
        if not isinstance(data.get(key), dict):
            raise CheckpointError(f"{path} is missing its {key!r} entry")
    return data


def _default_build(name: str, **kwargs: Any) -> nn.Module:
    from chase.models import create_model  # lazy: the model zoo is optional for this module

    return create_model(name, **kwargs)


def _original(
    path: Path, data: dict[str, Any], model: nn.Module | None, build: Builder | None
) -> nn.Module:
    if model is not None:
        return model
    arch = data.get("arch")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise CheckpointError(f"{path} does not record its architecture: pass model=")
    try:
        return (build or _default_build)(arch["name"], **dict(arch.get("kwargs") or {}))
    except Exception as e:
        raise CheckpointError(f"{path}: cannot build architecture {arch['name']!r}: {e}") from e


def load_slim(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    *,
    build: Builder | None = None,
) -> SlimModel:
    """Rebuild the slim model stored at ``path``.

    The original architecture comes from ``model`` (a fresh, unsliced instance, resized IN
    PLACE) or else from the file's ``arch`` through ``build(name, **kwargs)`` (default:
    ``chase.models.create_model``). Corrupt, foreign or mismatched files raise
    ``CheckpointError``. The model comes back in eval mode, ready for inference (a forward
    pass in train mode would overwrite the stored BatchNorm statistics); call ``.train()`` to
    fine-tune it.
    """
    path = Path(path)
    data = read_slim(path)
    try:
        spec = SlimSpec.from_dict(data["spec"])
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from e
    net = _original(path, data, model, build)
    try:
        apply_spec(net, spec)
        net.load_state_dict(data["state_dict"], strict=True)
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path} does not fit the rebuilt model: {first}") from e
    masks = data.get("masks")
    return SlimModel(
        model=net.eval(),
        spec=spec,
        masks=dict(masks) if isinstance(masks, dict) else None,
        arch=data.get("arch"),
        extra=dict(data.get("extra") or {}),
    )
