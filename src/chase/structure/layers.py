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

import torch
from torch import nn

from chase.sparsity.groups import Member
from chase.structure import ops


@dataclass(frozen=True)
class Slot:
    """One tensor axis of a layer that a channel slot occupies: ``weight`` axis 1, consumer."""

    tensor: str
    axis: int
    role: str


@dataclass(frozen=True)
class LayerKind:
    """What coupling and slimming know about one kind of layer.

    ``matches(module)`` recognises the kind by type, subclasses included (first match in
    ``LAYER_KINDS`` wins). ``base`` and ``methods``: the torch class and the methods whose
    behaviour the record describes; a subclass that overrides one of them is recognised by
    what it computes instead: coupling discovery checks in the trace that its forward runs
    exactly one ``core`` op (autograd names, e.g. ``NativeBatchNorm``) on its own parameters
    and otherwise only ops the whitelist trusts (timm's ``BatchNormAct2d`` = BatchNorm +
    activation). ``out_slot`` / ``in_slot``: the tensor axes that one output / input channel
    occupies (tensors the module lacks, such as a missing bias, are skipped); the union of both
    is the set of axes slimming may cut. ``produces``: its output channels feed a channel group
    as a producer. ``channelwise``: output channel c depends only on input channel c (depthwise
    conv, norm), so one group spans both sides. ``weight_ops``: autograd ops the forward applies
    to the layer's own weight (Linear's ``weight.t()``). ``position(module, is_out, rows)``:
    the tensor positions of channel rows when they differ from the channel index (a grouped
    conv's input column is the channel's offset inside its conv group). ``tie(module, is_out,
    positions)``: a key per position; positions with equal keys must be removed together (a
    grouped conv keeps equal channels at the same offsets in every conv group; a GroupNorm
    keeps whole groups). ``refusal``: why a recognised layer is never prunable. ``check(module,
    name, output shape)``: a reason when the layer is used in a way the slots do not describe.
    ``shrink_only``: removing a channel changes how the layer treats the others unless the
    channel leaves the tensor (LayerNorm's statistics over all channels), so its groups are
    exact only when the model shrinks while training (``ChannelConfig.shrink``).
    ``resize`` sets the module's shape attributes from its (already cut) tensors.
    """

    name: str
    matches: Callable[[nn.Module], bool]
    out_slot: tuple[Slot, ...]
    in_slot: tuple[Slot, ...]
    resize: Callable[[nn.Module], None]
    bases: tuple[type[nn.Module], ...] = ()
    methods: tuple[str, ...] = ("forward",)
    core: frozenset[str] = frozenset()
    produces: bool = False
    channelwise: bool = False
    weight_ops: frozenset[str] = frozenset()
    position: Callable[[nn.Module, bool, torch.Tensor], torch.Tensor] | None = None
    tie: Callable[[nn.Module, bool, torch.Tensor], torch.Tensor] | None = None
    refusal: Callable[[nn.Module, str], str] | None = None
    check: Callable[[nn.Module, str, tuple[int, ...] | None], str | None] | None = None
    shrink_only: bool = False

    def members(
        self, module: nn.Module, name: str, is_out: bool, rows: torch.Tensor
    ) -> list[Member]:
        """The ``Member`` records of one output (``is_out``) or input channel slot."""
        slots = self.out_slot if is_out else self.in_slot
        if self.position is not None:
            rows = self.position(module, is_out, rows)
        return [
            Member(f"{name}.{s.tensor}" if name else s.tensor, s.axis, rows, s.role)
            for s in slots
            if getattr(module, s.tensor, None) is not None
        ]

    def trusted(self, module: nn.Module) -> bool:
        """True when ``module``'s class keeps the base behaviour (no trace check needed)."""
        cls = type(module)
        base = next((b for b in self.bases if isinstance(module, b)), None)
        return base is not None and all(
            getattr(cls, m, None) is getattr(base, m, None) for m in self.methods
        )

    @property
    def cut_axes(self) -> dict[str, tuple[int, ...]]:
        """Axes each tensor may be cut along: exactly those a channel slot occupies."""
        axes: dict[str, set[int]] = {}
        for s in (*self.out_slot, *self.in_slot):
            axes.setdefault(s.tensor, set()).add(s.axis)
        return {t: tuple(sorted(a)) for t, a in axes.items()}


_CONVS = (nn.Conv1d, nn.Conv2d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)


def _conv(module: nn.Module) -> nn.Conv1d | nn.Conv2d | None:
    return module if isinstance(module, _CONVS) else None


def _is_conv(module: nn.Module) -> bool:
    conv = _conv(module)
    return conv is not None and conv.groups == 1


def _is_depthwise(module: nn.Module) -> bool:
    conv = _conv(module)
    return conv is not None and conv.groups > 1 and _same_width(conv)


def _is_grouped(module: nn.Module) -> bool:
    conv = _conv(module)
    return conv is not None and conv.groups > 1 and not _same_width(conv)


def _same_width(conv: nn.Conv1d | nn.Conv2d) -> bool:
    return conv.groups == conv.in_channels == conv.out_channels


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear)


def _is_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, _BATCHNORMS)


def _is_layernorm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm)


def _is_groupnorm(module: nn.Module) -> bool:
    return isinstance(module, nn.GroupNorm)


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


def _resize_layernorm(module: nn.Module) -> None:
    assert isinstance(module, nn.LayerNorm) and module.weight is not None
    module.normalized_shape = (module.weight.shape[0],)


def _resize_groupnorm(module: nn.Module) -> None:
    assert isinstance(module, nn.GroupNorm) and module.weight is not None
    width = module.num_channels // module.num_groups  # the old attributes: channels per group
    module.num_channels = module.weight.shape[0]
    module.num_groups = module.num_channels // width


def _group_width(module: nn.Module, is_out: bool) -> int:
    assert isinstance(module, nn.Conv1d | nn.Conv2d)
    return (module.out_channels if is_out else module.in_channels) // module.groups


def _grouped_position(module: nn.Module, is_out: bool, rows: torch.Tensor) -> torch.Tensor:
    # input channel c of a grouped conv is weight column c % (in_channels / groups)
    return rows if is_out else rows % _group_width(module, False)


def _grouped_tie(module: nn.Module, is_out: bool, positions: torch.Tensor) -> torch.Tensor:
    # equal kept channels per conv group, at the same offsets: positions with equal offset
    # inside their conv group go together
    return positions % _group_width(module, is_out)


def _groupnorm_tie(module: nn.Module, is_out: bool, positions: torch.Tensor) -> torch.Tensor:
    assert isinstance(module, nn.GroupNorm)
    return positions // (module.num_channels // module.num_groups)  # whole groups


def _layernorm_check(module: nn.Module, name: str, shape: tuple[int, ...] | None) -> str | None:
    assert isinstance(module, nn.LayerNorm)
    if len(module.normalized_shape) != 1 or not module.elementwise_affine:
        return f"LayerNorm '{name}' normalises {tuple(module.normalized_shape)}, not channels"
    return None


def _groupnorm_check(module: nn.Module, name: str, shape: tuple[int, ...] | None) -> str | None:
    assert isinstance(module, nn.GroupNorm)
    return None if module.affine else f"GroupNorm '{name}' has no affine parameters to slim"


_PRODUCER = (Slot("weight", 0, "producer"), Slot("bias", 0, "param"))
_CONSUMER = (Slot("weight", 1, "consumer"),)
_NORM = (
    Slot("weight", 0, "param"),
    Slot("bias", 0, "param"),
    Slot("running_mean", 0, "buffer"),
    Slot("running_var", 0, "buffer"),
)
_AFFINE = (Slot("weight", 0, "param"), Slot("bias", 0, "param"))
_CONV_METHODS = ("forward", "_conv_forward")

CONV = LayerKind(
    "conv", _is_conv, _PRODUCER, _CONSUMER, _resize_conv, bases=_CONVS, methods=_CONV_METHODS,
    core=ops.CONV_CORE, produces=True,
)  # fmt: skip
DEPTHWISE = LayerKind(
    "depthwise", _is_depthwise, _PRODUCER, _PRODUCER, _resize_depthwise, bases=_CONVS,
    methods=_CONV_METHODS, core=ops.CONV_CORE, channelwise=True,
)  # fmt: skip
#: Cut in units: equal kept channels per conv group, at the same offsets (groups unchanged).
GROUPED = LayerKind(
    "grouped", _is_grouped, _PRODUCER, _CONSUMER, _resize_conv, bases=_CONVS,
    methods=_CONV_METHODS, core=ops.CONV_CORE, produces=True, position=_grouped_position,
    tie=_grouped_tie,
)  # fmt: skip
LINEAR = LayerKind(
    "linear", _is_linear, _PRODUCER, _CONSUMER, _resize_linear, bases=(nn.Linear,),
    core=ops.LINEAR_CORE, produces=True, weight_ops=frozenset({"T"}),
)  # fmt: skip
NORM = LayerKind(
    "norm", _is_batchnorm, _NORM, _NORM, _resize_batchnorm, bases=_BATCHNORMS,
    core=ops.BATCHNORM_CORE, channelwise=True,
)  # fmt: skip
#: LayerNorm over one axis: channels-last (after a permute) or channels-first (LayerNorm2d).
#: Its statistics run over all channels, so a zeroed channel still counts in the masked model
#: and slimming it away changes the others: its groups are exact only when the model shrinks
#: while training, where a removed channel leaves the tensor at once (``shrink_only``).
LAYERNORM = LayerKind(
    "layernorm", _is_layernorm, _AFFINE, _AFFINE, _resize_layernorm, bases=(nn.LayerNorm,),
    core=ops.LAYERNORM_CORE, channelwise=True, check=_layernorm_check, shrink_only=True,
)  # fmt: skip
#: Cut in whole groups only.
GROUPNORM = LayerKind(
    "groupnorm", _is_groupnorm, _AFFINE, _AFFINE, _resize_groupnorm, bases=(nn.GroupNorm,),
    core=ops.GROUPNORM_CORE, channelwise=True, tie=_groupnorm_tie, check=_groupnorm_check,
)  # fmt: skip

#: Every layer kind, in lookup order.
LAYER_KINDS: tuple[LayerKind, ...] = (
    CONV, DEPTHWISE, GROUPED, LINEAR, NORM, LAYERNORM, GROUPNORM
)  # fmt: skip


def layer_kind(module: nn.Module) -> LayerKind | None:
    """The table record of ``module``'s kind, or None if the structure code does not know it."""
    return next((kind for kind in LAYER_KINDS if kind.matches(module)), None)


def cut_axes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """Axes slimming may cut each tensor of ``module`` along.

    A table layer: its slots. Any other module: its per-channel parameter vectors (exactly one
    axis longer than 1, such as ConvNeXt's layer scale of shape (C, 1, 1)) along that axis;
    discovery lists such a parameter only after checking that the forward uses it per channel.
    """
    kind = layer_kind(module)
    if kind is not None:
        return kind.cut_axes
    out: dict[str, tuple[int, ...]] = {}
    for local, p in module.named_parameters(recurse=False):
        long = [d for d, n in enumerate(p.shape) if n > 1]
        if len(long) == 1:
            out[local] = (long[0],)
    return out
