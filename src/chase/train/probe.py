"""One forward pass on example inputs before a run does anything expensive, so that an input
size the model cannot take is a ``ConfigError`` naming ``data.image_size`` and the model,
not a ``RuntimeError`` from deep inside it at the first step."""

from __future__ import annotations

import torch
from torch import nn

from chase.errors import ConfigError


def check_model_input(
    model: nn.Module, x: torch.Tensor, model_name: str, dataset: str, image_size: int | None
) -> None:
    """Run ``model`` once on ``x`` in eval mode (no running statistics change, no randomness
    is drawn) and restore its mode; a failure is a ``ConfigError`` naming the setting."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as exc:
        side = "x".join(str(n) for n in x.shape[2:])
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        what = (
            f"data.image_size = {image_size} is not allowed for model {model_name!r}"
            if image_size is not None
            else f"model {model_name!r} does not take the inputs of data.name = {dataset!r}"
        )
        raise ConfigError(
            f"{what}: its forward pass fails on {side} inputs ({cause}); use larger images"
        ) from None
    finally:
        model.train(training)
