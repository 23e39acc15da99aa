"""Evaluation of a model on a loader: the one implementation the trainer (validation), the end
of a run (test set) and ``chase eval`` share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from chase.train import distributed

Layout = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Evaluation:
    """Mean cross-entropy and top-1 accuracy over ``count`` examples (all ranks together)."""

    loss: float
    accuracy: float
    count: int


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Any, device: torch.device, layout: Layout | None = None
) -> Evaluation:
    """Loss and accuracy of ``model`` over ``loader.epoch(0)`` in eval mode, summed over ranks.

    ``layout`` prepares each input batch (e.g. channels_last); the model's train/eval flag is
    restored afterwards. Under ``torch.distributed`` every rank evaluates its own shard and the
    sums are all-reduced once at the end (no collective inside the loop, since shards may
    differ by one batch).
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    try:
        for x, y in loader.epoch(0):
            x = x.to(device)
            if layout is not None:
                x = layout(x)
            y = y.to(device)
            out = model(x).float()
            totals[0] += nn.functional.cross_entropy(out, y, reduction="sum").double()
            totals[1] += (out.argmax(1) == y).sum()
            totals[2] += y.numel()
    finally:
        model.train(was_training)
    loss, correct, count = distributed.all_sum(totals).tolist()
    return Evaluation(loss / max(count, 1), correct / max(count, 1), int(count))
