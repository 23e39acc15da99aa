"""What the model registry holds, described: one row per registered model (aliases, designed
input, default class count, parameters and FLOPs per image), for ``chase models`` and
``docs/models.md``. Models are built on the meta device, so describing the whole zoo allocates
no weights and takes well under a second."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from chase.metrics.flops import layer_costs, total_flops
from chase.models import registry, sources


@dataclass(frozen=True)
class ModelInfo:
    """One registered model: its canonical name, its aliases, the (C, H, W) input it is
    designed for, its default class count, and at those sizes its parameter count and dense
    FLOPs per image (``docs/measurement.md``)."""

    name: str
    aliases: tuple[str, ...]
    input_size: tuple[int, int, int]
    num_classes: int
    params: int
    flops: int


def describe_models() -> list[ModelInfo]:
    """Every registered model, sorted by name (third-party ``tv:``/``timm:`` names excluded)."""
    aliases: dict[str, list[str]] = {}
    for alias, name in registry.list_aliases().items():
        aliases.setdefault(name, []).append(alias)
    names = registry.list_models()
    return [_describe(name, tuple(sorted(aliases.get(name, ())))) for name in names]


def _describe(name: str, aliases: tuple[str, ...]) -> ModelInfo:
    size = registry.default_input_size(name)
    classes = registry.default_num_classes(name)
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised for real
        model = registry.create_model(name, num_classes=classes, in_channels=size[0]).eval()
        x = torch.empty((1, *size))
    return ModelInfo(
        name=name,
        aliases=aliases,
        input_size=size,
        num_classes=classes,
        params=sum(p.numel() for p in model.parameters()),
        flops=total_flops(layer_costs(model, x)),
    )


def source_names(prefix: str) -> list[str]:
    """Every model name of a third-party source as it is written (``tv:resnet50``); a
    ``ConfigError`` line when its package is missing or cannot be imported."""
    return [f"{prefix}:{name}" for name in sources.known_names(prefix)]
