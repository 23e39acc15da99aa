"""The table of layer kinds: everything the structure code knows about one layer type.

One ``LayerKind`` record per kind says how a module is recognised, which tensor axes one
channel slot occupies and in which role, whether the layer produces channels, what makes it
unprunable, and how to make the module's shape attributes agree with cut tensors. Coupling
discovery (``coupling.py``) and slimming (``slim.py``) consult only this table, so supporting a
new layer type is one record in ``LAYER_KINDS`` (plus, where its forward uses functional ops
the whitelist does not know yet, an entry in ``ops.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from chase.sparsity.groups import Member


@dataclass(frozen=True)
class Slot:
    """One tensor axis of a layer that a channel slot occupies: ``weight`` axis 1, consumer."""

    tensor: str
    axis: int
    role: str


@dataclass(frozen=True)
class LayerKind:
    """What coupling and slimming know about one kind of layer.

    ``matches(module)`` recognises the kind (first match in ``LAYER_KINDS`` wins).
    ``out_slot`` / ``in_slot``: the tensor axes that one output / input channel occupies
    (tensors the module lacks, such as a missing bias, are skipped); the union of both is the
    set of axes slimming may cut. ``produces``: its output channels feed a channel group as a
    producer (more than one producer makes a group residual). ``channelwise``: output channel
    c depends only on input channel c (depthwise conv, norm), so one group spans both sides.
    ``weight_ops``: autograd ops the forward applies to the layer's own weight (Linear's
    ``weight.t()``), which the trace records as op nodes and which are trusted. ``refusal``:
    why a recognised layer is never prunable. ``check(module, name, output shape)``: a reason
    when the layer is used in a way the slots do not describe. ``resize`` sets the module's
    shape attributes from its (already cut) tensors.
    """

    name: str
    matches: Callable[[nn.Module], bool]
    out_slot: tuple[Slot, ...]
    in_slot: tuple[Slot, ...]
    resize: Callable[[nn.Module], None]
    produces: bool = False
    channelwise: bool = False
    weight_ops: frozenset[str] = frozenset()
    refusal: Callable[[nn.Module, str], str] | None = None
    check: Callable[[nn.Module, str, tuple[int, ...] | None], str | None] | None = None

    def members(
        self, module: nn.Module, name: str, is_out: bool, rows: torch.Tensor
    ) -> list[Member]:
        """The ``Member`` records of one output (``is_out``) or input channel slot."""
        slots = self.out_slot if is_out else self.in_slot
        return [
            Member(f"{name}.{s.tensor}" if name else s.tensor, s.axis, rows, s.role)
            for s in slots
            if getattr(module, s.tensor, None) is not None
        ]

    @property
    def cut_axes(self) -> dict[str, tuple[int, ...]]:
        """Axes each tensor may be cut along: exactly those a channel slot occupies."""
        axes: dict[str, set[int]] = {}
        for s in (*self.out_slot, *self.in_slot):
            axes.setdefault(s.tensor, set()).add(s.axis)
        return {t: tuple(sorted(a)) for t, a in axes.items()}


def _keeps_forward(module: nn.Module, base: type[nn.Module], methods: tuple[str, ...]) -> bool:
    """An instance of ``base`` whose class overrides none of ``methods``.

    A subclass that changes ``forward`` may permute or mix channels, so it is never mistaken
    for its base type.
    """
    cls = type(module)
    return isinstance(module, base) and all(getattr(cls, m) is getattr(base, m) for m in methods)


def _plain_conv(module: nn.Module) -> nn.Conv1d | nn.Conv2d | None:
    for base in (nn.Conv1d, nn.Conv2d):
        if _keeps_forward(module, base, ("forward", "_conv_forward")):
            assert isinstance(module, nn.Conv1d | nn.Conv2d)
            return module
    return None


def _is_conv(module: nn.Module) -> bool:
    conv = _plain_conv(module)
    return conv is not None and conv.groups == 1


def _is_depthwise(module: nn.Module) -> bool:
    conv = _plain_conv(module)
    return conv is not None and conv.groups > 1 and _same_width(conv)


def _is_grouped(module: nn.Module) -> bool:
    conv = _plain_conv(module)
    return conv is not None and conv.groups > 1 and not _same_width(conv)


def _same_width(conv: nn.Conv1d | nn.Conv2d) -> bool:
    return conv.groups == conv.in_channels == conv.out_channels


def _is_linear(module: nn.Module) -> bool:
    return _keeps_forward(module, nn.Linear, ("forward",))


def _is_batchnorm(module: nn.Module) -> bool:
    bases = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)
    return any(_keeps_forward(module, b, ("forward",)) for b in bases)


def _resize_conv(module: nn.Module) -> None:
    assert isinstance(module, nn.Conv1d | nn.Conv2d)
    module.out_channels = module.weight.shape[0]
    module.in_channels = module.weight.shape[1] * module.groups


def _resize_depthwise(module: nn.Module) -> None:
    assert isinstance(module, nn.Conv1d | nn.Conv2d)
    module.out_channels = module.in_channels = module.groups = module.weight.shape[0]


def _resize_linear(module: nn.Module) -> None:
    assert isinstance(module, nn.Linear)
    module.out_features, module.in_features = module.weight.shape


def _resize_batchnorm(module: nn.Module) -> None:
    assert isinstance(module, nn.modules.batchnorm._BatchNorm)
    ref = module.weight if module.weight is not None else module.running_mean
    assert ref is not None
    module.num_features = ref.shape[0]


def _grouped_refusal(module: nn.Module, name: str) -> str:
    groups: Any = getattr(module, "groups", "?")
    return f"grouped conv '{name}' (groups={groups}) is not depthwise"


def _linear_check(module: nn.Module, name: str, shape: tuple[int, ...] | None) -> str | None:
    if shape is None or len(shape) != 2:
        return f"Linear '{name}' is applied to a tensor that is not (batch, features)"
    return None


_PRODUCER = (Slot("weight", 0, "producer"), Slot("bias", 0, "param"))
_CONSUMER = (Slot("weight", 1, "consumer"),)
_NORM = (
    Slot("weight", 0, "param"),
    Slot("bias", 0, "param"),
    Slot("running_mean", 0, "buffer"),
    Slot("running_var", 0, "buffer"),
)

CONV = LayerKind("conv", _is_conv, _PRODUCER, _CONSUMER, _resize_conv, produces=True)
DEPTHWISE = LayerKind(
    "depthwise", _is_depthwise, _PRODUCER, _PRODUCER, _resize_depthwise, channelwise=True
)
#: Known but not prunable yet: cutting one needs equal kept channels per group.
GROUPED = LayerKind(
    "grouped", _is_grouped, (), (), _resize_conv, produces=True, refusal=_grouped_refusal
)
LINEAR = LayerKind(
    "linear",
    _is_linear,
    _PRODUCER,
    _CONSUMER,
    _resize_linear,
    produces=True,
    weight_ops=frozenset({"T"}),
    check=_linear_check,
)
NORM = LayerKind("norm", _is_batchnorm, _NORM, _NORM, _resize_batchnorm, channelwise=True)

#: Every layer kind, in lookup order.
LAYER_KINDS: tuple[LayerKind, ...] = (CONV, DEPTHWISE, GROUPED, LINEAR, NORM)


def layer_kind(module: nn.Module) -> LayerKind | None:
    """The table record of ``module``'s kind, or None if the structure code does not know it."""
    return next((kind for kind in LAYER_KINDS if kind.matches(module)), None)
