"""Physical slimming: resize table layers (``chase.structure.layers``) to what a SlimSpec keeps.

This is plain index slicing, not Torch-Pruning's per-layer surgery (see docs/decisions.md):
every listed tensor is cut with ``index_select`` along each axis its layer kind allows, and
the kind's ``resize`` makes the module attributes that describe shapes agree with the new
tensors. Parameters keep their identity (``param.data`` is replaced), so ``requires_grad``,
hooks and any references the caller holds stay valid; optimizer state must be cut with
``slice_tensor_dict`` or rebuilt.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Mapping

import torch
from torch import nn

from chase.structure.layers import cut_axes, layer_kind
from chase.structure.spec import SlimSpec

_log = logging.getLogger(__name__)


def cut_tensor(t: torch.Tensor, axes: Mapping[int, torch.Tensor]) -> torch.Tensor:
    """``t`` with only the kept positions ``axes[axis]`` along each axis, in ``t``'s memory
    format."""
    out = t
    for axis, idx in sorted(axes.items()):
        out = out.index_select(axis, idx.to(t.device))
    return same_format(out, t)


def _check_fits(name: str, t: torch.Tensor, spec: SlimSpec) -> None:
    for axis, n in spec.sizes[name].items():
        if axis >= t.dim() or t.shape[axis] != n:
            raise ValueError(
                f"'{name}' has shape {tuple(t.shape)}, but the slim spec expects length {n} on "
                f"axis {axis}: the spec was made for a different model or was applied already"
            )


def _module_plan(model: nn.Module, spec: SlimSpec) -> dict[str, dict[str, str]]:
    """module FQN → {local tensor name: tensor FQN}, after checking every entry fits."""
    tensors = model.state_dict(keep_vars=True)
    plan: dict[str, dict[str, str]] = defaultdict(dict)
    for name in spec.keep:
        if name not in tensors:
            raise ValueError(f"the slim spec names '{name}', which the model does not have")
        _check_fits(name, tensors[name], spec)
        module_name, _, local = name.rpartition(".")
        plan[module_name][local] = name
    return plan


def _check_module(module: nn.Module, names: dict[str, str], spec: SlimSpec) -> None:
    """ValueError unless every axis ``spec`` cuts from the module's tensors may be cut."""
    kind = layer_kind(module)
    allowed = cut_axes(module)  # a table layer's slots, or per-channel parameter vectors
    for local, fqn in names.items():
        cuts = _real_cuts(spec, fqn)
        if any(a not in allowed.get(local, ()) for a in cuts):
            what = type(module).__name__ if kind is None else f"{kind.name} layer"
            raise ValueError(f"cannot cut '{fqn}' along {sorted(cuts)}: {what}")


def _cut_module(module: nn.Module, module_name: str, names: dict[str, str], spec: SlimSpec) -> None:
    kind = layer_kind(module)
    cuts = {fqn: _real_cuts(spec, fqn) for fqn in names.values()}
    if not any(cuts.values()):
        return  # every listed axis is kept whole (a model shrunk earlier, a pruned-out group)
    originals = {local: getattr(module, local).shape for local in names}
    for local, t in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
        if local in names:
            axes = cuts[names[local]]
        else:  # e.g. a weight_mask buffer shaped like the weight: cut it the same way
            twin = next((n for n, s in originals.items() if s == t.shape), None)
            if twin is None:
                continue
            axes = cuts[names[twin]]
            _log.debug("cutting %s.%s like its twin %s", module_name, local, twin)
        _replace(module, local, t, cut_tensor(t.detach(), axes))
    if kind is not None:  # None only when nothing was cut
        kind.resize(module)


def _real_cuts(spec: SlimSpec, fqn: str) -> dict[int, torch.Tensor]:
    """The axes of ``fqn`` that lose positions (kept positions are sorted and unique, so an
    axis that keeps as many as it has keeps them all)."""
    return {a: i for a, i in spec.keep[fqn].items() if i.numel() < spec.sizes[fqn][a]}


def _replace(module: nn.Module, local: str, old: torch.Tensor, new: torch.Tensor) -> None:
    if isinstance(old, nn.Parameter):
        rebind(old, same_format(new, old))  # same Parameter: requires_grad and hooks survive
        old.grad = None
    else:
        setattr(module, local, same_format(new, old))


def rebind(param: nn.Parameter, data: torch.Tensor) -> None:
    """``param.data = data`` for data of another shape, safe while autograd graphs that use
    ``param`` are still alive (a training loop's last ``loss``).

    Autograd caches each leaf's gradient accumulator with the leaf's shape, and assigning
    ``.data`` of the same dtype and device keeps that cache: the next backward would then
    reject gradients of the new shape. Passing through an empty tensor of another dtype makes
    autograd drop the cache (it does so whenever the data's type changes) while the
    Parameter object, its hooks and its attributes stay the same.
    """
    other = torch.float64 if data.dtype != torch.float64 else torch.float32
    param.data = torch.empty(0, dtype=other, device=data.device)
    param.data = data


def same_format(new: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``new`` made contiguous in ``like``'s memory format (a channels_last weight stays so)."""
    channels_last = like.is_contiguous(memory_format=torch.channels_last)
    if like.dim() == 4 and channels_last and not like.is_contiguous():
        return new.contiguous(memory_format=torch.channels_last)
    return new.contiguous()


def apply_spec(model: nn.Module, spec: SlimSpec) -> nn.Module:
    """Resize ``model`` IN PLACE to the slim architecture described by ``spec``; returns it.

    ``model`` must be the original (unsliced) architecture; deep-copy it first to keep the
    original (``slim_copy`` does). Raises ValueError if the spec does not fit the model.
    Gradients of resized parameters are dropped.
    """
    plan = _module_plan(model, spec)
    modules = {name: model.get_submodule(name) for name in plan}
    for module_name, names in plan.items():  # every check first: a refusal changes nothing
        _check_module(modules[module_name], names, spec)
    for module_name, names in plan.items():
        _cut_module(modules[module_name], module_name, names, spec)
    return model


def slim_copy(model: nn.Module, spec: SlimSpec) -> nn.Module:
    """A resized deep copy of ``model``; the original is untouched."""
    return apply_spec(copy.deepcopy(model), spec)


def slice_tensor_dict(
    tensors: Mapping[str, torch.Tensor], spec: SlimSpec
) -> dict[str, torch.Tensor]:
    """Cut FQN-keyed tensors (weight masks, optimizer-state-like tensors) like ``apply_spec``.

    Entries the spec does not list are returned unchanged (same objects); a listed entry whose
    shape does not match the original tensor raises ValueError naming it.
    """
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if name in spec.keep:
            _check_fits(name, t, spec)
            out[name] = cut_tensor(t, spec.keep[name])
        else:
            out[name] = t
    return out
