"""Which traced functional ops may sit inside a prunable channel group.

Torch-Pruning treats every autograd node it does not know as element-wise, so a channel-permuting
op (``roll``, ``flip``, ``index_select``, a channel shuffle) silently couples the wrong channels.
Here each op seen in a group is checked against a whitelist keyed by its autograd ``grad_fn``
name; anything not listed, or listed but used in a way that moves, mixes or reduces channels,
makes the group unprunable. ``op_problem`` returns a short reason, or ``None`` for a trusted op.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch

Check = Callable[[Any], "str | None"]

#: One input, output has the same shape and channel c depends only on input channel c.
POINTWISE = frozenset(
    {
        "Relu", "Hardtanh", "Threshold", "LeakyRelu", "Elu", "Gelu", "Silu", "Mish",
        "Sigmoid", "Tanh", "Hardswish", "Hardsigmoid", "Softplus",
        "Clone", "ToCopy", "Neg", "Abs",
    }
)  # fmt: skip
#: One input, per-channel spatial ops (pooling, resampling).
SPATIAL = frozenset(
    {
        "MaxPool2DWithIndices", "AvgPool2D", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D",
        "UpsampleNearest2D", "UpsampleBilinear2D", "ReflectionPad2D", "ReplicationPad2D",
    }
)  # fmt: skip
#: Reductions that are safe only over spatial axes (global pooling written as ``x.mean((2, 3))``).
SPATIAL_REDUCTIONS = frozenset({"Mean", "Sum", "Amax", "Amin"})
#: Shape changes that are safe only when they keep the channel axis or flatten from axis 1.
RESHAPES = frozenset({"View", "UnsafeView", "ReshapeAlias", "Squeeze", "Unsqueeze"})
BINARY = frozenset({"Add", "Sub", "Mul", "Div"})


def base_name(grad_fn: Any) -> str:
    """``ReluBackward0`` → ``Relu``; ``Unknown`` for nodes without a name."""
    if grad_fn is None or not hasattr(grad_fn, "name"):
        return "Unknown"
    return re.sub(r"Backward\d*$", "", grad_fn.name())


def _signed(d: int) -> int:
    # autograd stores negative dims as unsigned 64-bit integers
    return d - 2**64 if d >= 2**63 else d


def out_shape(grad_fn: Any, i: int = 0) -> tuple[int, ...] | None:
    """Shape of forward output ``i`` of the op that ``grad_fn`` differentiates."""
    meta = getattr(grad_fn, "_input_metadata", None)
    if not meta or i >= len(meta):
        return None
    return tuple(int(s) for s in meta[i].shape)


def in_shape(grad_fn: Any, i: int = 0) -> tuple[int, ...] | None:
    """Shape of forward input ``i`` (``None`` when that input is untraced)."""
    fn, idx = grad_fn.next_functions[i]
    return None if fn is None else out_shape(fn, idx)


def _untraced(grad_fn: Any) -> list[int]:
    return [i for i, (fn, _) in enumerate(grad_fn.next_functions) if fn is None]


def _channel_size(shape: tuple[int, ...], out_ndim: int) -> int | None:
    """Size of the operand axis that broadcasts onto output axis 1 (None: does not reach it)."""
    axis = 1 - (out_ndim - len(shape))
    return shape[axis] if axis >= 0 else None


def _binary(grad_fn: Any) -> str | None:
    out = out_shape(grad_fn)
    if out is None or len(out) < 2:
        return "cannot read its output shape"
    for i, (fn, idx) in enumerate(grad_fn.next_functions):
        if fn is not None:
            shape = out_shape(fn, idx)
            if shape is None or _channel_size(shape, len(out)) != out[1]:
                return "broadcasts a traced operand across channels"
            continue
        name = base_name(grad_fn)
        if name not in ("Mul", "Div"):
            return "has an operand the trace cannot see (model input, buffer or constant)"
        saved = getattr(grad_fn, "_saved_self" if i == 0 else "_saved_other", None)
        if not isinstance(saved, torch.Tensor):
            return "has an operand the trace cannot see"
        size = _channel_size(tuple(saved.shape), len(out))
        if size not in (None, 1):
            return "scales channels by an untraced per-channel tensor"
    return None


def _pointwise(grad_fn: Any) -> str | None:
    if len(grad_fn.next_functions) != 1 or _untraced(grad_fn):
        return "reads a tensor the trace cannot see"
    return None


def _dims(grad_fn: Any, ndim: int) -> list[int]:
    dims = getattr(grad_fn, "_saved_dim", ())
    dims = dims if isinstance(dims, tuple) else (dims,)
    return [_signed(int(d)) % ndim for d in dims]


def _reduction(grad_fn: Any) -> str | None:
    shape = getattr(grad_fn, "_saved_self_sym_sizes", None)
    if shape is None or not hasattr(grad_fn, "_saved_dim"):
        return "reduces over all axes"
    dims = _dims(grad_fn, len(shape))
    if not dims or min(dims) < 2:
        return "reduces over the batch or channel axis"
    return _pointwise(grad_fn)


def _reshape(grad_fn: Any) -> str | None:
    src, dst = in_shape(grad_fn), out_shape(grad_fn)
    if src is None or dst is None or len(src) < 2 or len(dst) < 2:
        return "changes shape in a way that cannot be checked"
    keeps_channels = dst[:2] == src[:2]
    flattens = len(dst) == 2 and dst[0] == src[0] and dst[1] == math.prod(src[1:])
    if not (keeps_channels or flattens):
        return f"reshapes {list(src)} to {list(dst)}, moving channels"
    return None


def _cat(grad_fn: Any) -> str | None:
    out = out_shape(grad_fn)
    if out is None or _dims(grad_fn, len(out)) != [1]:
        return "concatenates along an axis other than channels"
    if _untraced(grad_fn):
        return "concatenates a tensor the trace cannot see (model input or constant)"
    return None


def _slice(grad_fn: Any) -> str | None:
    shape = getattr(grad_fn, "_saved_self_sym_sizes", None)
    dims = [] if shape is None else _dims(grad_fn, len(shape))
    if len(dims) != 1 or dims[0] < 2:
        return "slices the channel or batch axis"
    return _pointwise(grad_fn)


def _pad(grad_fn: Any) -> str | None:
    out = out_shape(grad_fn)
    pad = getattr(grad_fn, "_saved_pad", None)
    if out is None or pad is None or len(pad) > 2 * (len(out) - 2):
        return "pads the channel axis"
    return _pointwise(grad_fn)


def _checker(name: str) -> Check | None:
    if name in POINTWISE or name in SPATIAL:
        return _pointwise
    table: dict[str, Check] = {"Cat": _cat, "Slice": _slice, "ConstantPadNd": _pad}
    if name in table:
        return table[name]
    if name in SPATIAL_REDUCTIONS:
        return _reduction
    if name in RESHAPES:
        return _reshape
    if name in BINARY:
        return _binary
    return None


def op_problem(grad_fn: Any) -> str | None:
    """Why this traced op cannot sit inside a prunable group, or ``None`` if it is trusted."""
    name = base_name(grad_fn)
    check = _checker(name)
    if check is None:
        return f"op {grad_fn.name() if name != 'Unknown' else name} is not known to keep channels"
    problem = check(grad_fn)
    return None if problem is None else f"op {grad_fn.name()} {problem}"
