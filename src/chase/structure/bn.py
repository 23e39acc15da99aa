"""BatchNorm recalibration: recompute running statistics with one pass over data.

After slimming (or any change to the weights), BatchNorm running statistics are stale. The
pass runs the model in eval mode with only the BatchNorm layers in train mode (so each layer
sees inputs normalised the way training normalised them), momentum ``None`` and no gradient,
and sets each layer's running mean/variance to the exact pooled statistics of everything it
saw: a float64 parallel (Chan) merge of per-batch moments, so uneven batch sizes are weighted
correctly rather than averaged per batch.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from chase.errors import ChaseError
from chase.structure.coupling import preserved_modes

_log = logging.getLogger(__name__)


class _Moments:
    """Running count, mean and sum of squared deviations per channel (float64)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = torch.zeros(0, dtype=torch.float64)
        self.m2 = torch.zeros(0, dtype=torch.float64)

    def update(self, x: torch.Tensor) -> None:
        dims = [d for d in range(x.dim()) if d != 1]
        x = x.detach().to(torch.float64)
        nb = x.numel() // x.shape[1]
        mb = x.mean(dims)
        m2b = ((x - mb.view(1, -1, *[1] * (x.dim() - 2))) ** 2).sum(dims)
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        delta, total = mb - self.mean, self.n + nb
        self.mean = self.mean + delta * (nb / total)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / total)
        self.n = total


def _batch_input(batch: Any) -> Any:
    return batch[0] if isinstance(batch, list | tuple) else batch


def _default_device(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def recalibrate_bn(
    model: nn.Module,
    batches: Iterable[Any],
    steps: int | None = None,
    device: torch.device | str | None = None,
) -> int:
    """Reset and recompute the running statistics of every tracking BatchNorm layer.

    ``batches`` yields input tensors or ``(inputs, targets, ...)`` tuples (a DataLoader works);
    at most ``steps`` batches are used. Modes, momenta and all other state are restored; if the
    pass fails or sees no data, the old statistics are restored too. Returns the batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    device = torch.device(device) if device is not None else _default_device(model)
    moments = {m: _Moments() for m in norms}
    saved = [
        (m, m.momentum, {k: b.clone() for k, b in m.named_buffers(recurse=False)}) for m in norms
    ]
    hooks = [m.register_forward_pre_hook(lambda mod, a: moments[mod].update(a[0])) for m in norms]
    try:
        used = _pass(model, norms, batches, steps, device)
        for m in norms:
            _store(m, moments[m], used)
    except BaseException:
        for m, _, buffers in saved:
            for k, b in buffers.items():
                getattr(m, k).copy_(b)
        raise
    finally:
        for h in hooks:
            h.remove()
        for m, momentum, _ in saved:
            m.momentum = momentum
    _log.info("recalibrated %d BatchNorm layers on %d batches", len(norms), used)
    return used


def _pass(
    model: nn.Module,
    norms: list[_BatchNorm],
    batches: Iterable[Any],
    steps: int | None,
    device: torch.device,
) -> int:
    """Forward the batches with only the BatchNorm layers in train mode; returns the count."""
    used = 0
    with preserved_modes(model), torch.no_grad():
        model.eval()
        for m in norms:
            m.train()
            m.momentum = None
            m.reset_running_stats()
        for batch in batches:
            if steps is not None and used >= steps:
                break
            model(_batch_input(batch).to(device))
            used += 1
    if used == 0:
        raise ValueError("recalibrate_bn got no batches")
    return used


def _store(m: _BatchNorm, mom: _Moments, batches: int) -> None:
    assert m.running_mean is not None and m.running_var is not None
    var = mom.m2 / max(mom.n - 1, 1)  # unbiased, as BatchNorm's own running_var
    m.running_mean.copy_(mom.mean.to(m.running_mean.dtype))
    m.running_var.copy_(var.to(m.running_var.dtype))
    if m.num_batches_tracked is not None:
        m.num_batches_tracked.fill_(batches)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every BatchNorm folded into the Conv (or Linear,
    for BatchNorm1d) right before it, when that layer's output feeds nothing else and the
    BatchNorm tracks running statistics; other BatchNorms stay. The outputs agree to float
    tolerance in eval mode.

    Uses ``torch.fx`` symbolic tracing; a model that cannot be traced raises ``ChaseError``.
    Deployment and speed measurement use it: folding removes one memory-bound pass per layer.
    """
    model = copy.deepcopy(model).eval()
    try:
        with warnings.catch_warnings():  # torch.fx's fuser imports deprecated torch.jit names
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.fx.experimental.optimization import fuse

            return fuse(model, inplace=True)  # ``model`` is this function's own copy
    except Exception as exc:  # tracing errors come in many types
        raise ChaseError(
            f"cannot fold BatchNorm into convs: the model is not symbolically traceable "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
