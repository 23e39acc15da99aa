"""Model zoo behind one registry: ``create_model(name, num_classes=..., in_channels=...)``.

Importing this package registers every model; the tests run over ``list_models()``.
"""

from __future__ import annotations

from chase.models import cifar_resnet, mobilenetv2, resnet, small_cnn, vgg  # noqa: F401
from chase.models.registry import (
    create_model,
    default_input_size,
    list_aliases,
    list_models,
    register_model,
    resolve_name,
)

__all__ = [
    "create_model",
    "default_input_size",
    "list_aliases",
    "list_models",
    "register_model",
    "resolve_name",
]
