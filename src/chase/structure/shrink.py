"""Shrinking a model while it trains: removed channels leave the live model at once.

``shrink_in_place`` cuts a model that is being trained the way ``apply_spec`` slims a copy,
and also cuts what training holds about it: gradients and every per-parameter optimizer-state
tensor shaped like its parameter (SGD momentum, Adam's ``exp_avg``/``exp_avg_sq``, ...), while
scalar state (Adam's ``step``) is kept. Parameters keep their identity, so the optimizer's
parameter groups, hooks and ``requires_grad`` stay valid; a ``channels_last`` tensor stays
``channels_last``. ``Shrinker`` remembers how far a model has been cut (its layout, in the
original model's coordinates) so each channel event cuts only what is new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from chase.sparsity.groups import ChannelGroup
from chase.sparsity.masks import shaped_state
from chase.structure.slim import apply_spec, cut_tensor, slice_tensor_dict
from chase.structure.spec import SlimSpec, kept_indices


@torch.no_grad()
def shrink_in_place(
    model: nn.Module, spec: SlimSpec, optimizer: torch.optim.Optimizer | None = None
) -> None:
    """Cut ``model`` (its current shapes are ``spec.sizes``) to ``spec``, with its gradients
    and ``optimizer``'s per-parameter state, for training to continue on the smaller model."""
    params = dict(model.named_parameters())
    cut = {name: params[name] for name in spec.keep if name in params}
    grads = {name: p.grad for name, p in cut.items() if p.grad is not None}
    states: list[tuple[dict[str, Any], str, str]] = []
    if optimizer is not None:
        for name, p in cut.items():
            state: dict[str, Any] = optimizer.state.get(p) or {}
            states += [(state, key, name) for key in shaped_state(state, p)]
    apply_spec(model, spec)
    for name, grad in grads.items():
        cut[name].grad = cut_tensor(grad, spec.keep[name])
    for state, key, name in states:
        state[key] = cut_tensor(state[key], spec.keep[name])


class Shrinker:
    """Cuts one live model step by step as its channel groups lose channels; what the
    sparsity engine is given (``chase.sparsify``) when ``ChannelConfig.shrink`` is on.

    ``layout`` is the cut applied so far, in original coordinates (None: nothing yet); its
    ``keep`` maps each cut tensor axis to the original positions still present.
    """

    def __init__(self, model: nn.Module, groups: Sequence[ChannelGroup]):
        self.model = model
        self.groups = list(groups)
        self.layout: SlimSpec | None = None

    def shrink(
        self, keep: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer | None
    ) -> SlimSpec | None:
        """Cut the model to the per-group keep vectors ``keep`` (original channel indices);
        returns the step's spec in the pre-step coordinates, or None when nothing is new."""
        full = kept_indices(self.groups, keep)
        step = full.relative_to(self.layout)
        if step.removed() == 0:
            return None
        shrink_in_place(self.model, step, optimizer)
        self.layout = full
        return step

    def kept(self) -> dict[str, dict[int, torch.Tensor]]:
        """Original positions still present, per cut tensor axis (empty before any cut)."""
        return {} if self.layout is None else self.layout.keep

    def state(self) -> dict[str, Any] | None:
        """The layout as plain data for a checkpoint (None: never cut)."""
        return None if self.layout is None else self.layout.to_dict()

    def load(
        self, state: Mapping[str, Any] | None, optimizer: torch.optim.Optimizer | None
    ) -> SlimSpec | None:
        """Cut a freshly built (uncut) model straight to a saved layout (``state()``);
        returns the step applied, or None when there is nothing to cut."""
        if state is None:
            return None
        layout = SlimSpec.from_dict(state)
        step = layout.relative_to(self.layout)
        if step.removed() == 0:
            self.layout = layout
            return None
        shrink_in_place(self.model, step, optimizer)
        self.layout = layout
        return step

    @staticmethod
    def cut(tensors: Mapping[str, torch.Tensor], step: SlimSpec) -> dict[str, torch.Tensor]:
        """FQN-keyed tensors shaped like the model's (masks, moving averages) cut like it."""
        return slice_tensor_dict(tensors, step)
