"""Which traced functional ops may sit inside a prunable channel group, and where channels are.

Torch-Pruning treats every autograd node it does not know as element-wise, so a channel-permuting
op (``roll``, ``flip``, ``index_select``, a channel shuffle) silently couples the wrong channels.
Here every autograd node of the traced forward is visited once, inputs first (``analyse``), and
its rule computes which axis of its output holds the channels (1 after a conv or a BatchNorm,
the last axis after a Linear or a permute to channels-last) from the axes of its inputs, and
says what is wrong with it, if anything: an op outside the whitelist (keyed by the autograd
``grad_fn`` name), or a listed op used in a way that moves, mixes or reduces channels (a Linear
contracting a spatial axis, a reshape that splits the channel axis, a parameter that is not a
per-channel vector). Coupling discovery refuses every group that contains a node with a
problem; ``problems`` maps nodes to short reasons.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

#: One input, output has the same shape and channel c depends only on input channel c.
POINTWISE = frozenset(
    {
        "Relu", "Hardtanh", "Threshold", "LeakyRelu", "Elu", "Gelu", "Silu", "Mish",
        "Sigmoid", "Tanh", "Hardswish", "Hardsigmoid", "Softplus", "Relu6",
        "Clone", "ToCopy", "Neg", "Abs", "Alias", "Exp", "Sqrt", "Rsqrt", "Pow", "Clamp",
    }
)  # fmt: skip
#: One input, per-channel ops over the two trailing (spatial) axes: pooling, resampling.
SPATIAL = frozenset(
    {
        "MaxPool2DWithIndices", "AvgPool2D", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D",
        "UpsampleNearest2D", "UpsampleBilinear2D", "ReflectionPad2D", "ReplicationPad2D",
    }
)  # fmt: skip
#: Reductions that are safe only over non-channel, non-batch axes (``x.mean((2, 3))``).
REDUCTIONS = frozenset({"Mean", "Sum", "Amax", "Amin"})
#: Shape changes that are safe when they keep the channel axis whole (or flatten from it).
RESHAPES = frozenset(
    {"View", "UnsafeView", "ReshapeAlias", "Squeeze", "Unsqueeze", "Expand", "AsStrided"}
)
BINARY = frozenset({"Add", "Sub", "Mul", "Div"})
#: The ops a layer's own forward computes (a layer subclass must compute exactly one).
CONV_CORE = frozenset({"Convolution", "MkldnnConvolution", "CudnnConvolution", "SlowConv2D"})
LINEAR_CORE = frozenset({"Addmm", "Mm", "Linear"})
BATCHNORM_CORE = frozenset({"NativeBatchNorm", "CudnnBatchNorm", "MiopenBatchNorm"})
LAYERNORM_CORE = frozenset({"NativeLayerNorm"})
GROUPNORM_CORE = frozenset({"NativeGroupNorm"})


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


def is_leaf(fn: Any) -> bool:
    return fn is not None and hasattr(fn, "variable")


@dataclass
class Operand:
    """One input of an op: its autograd node, output index, shape and channel axis."""

    fn: Any
    shape: tuple[int, ...] | None
    axis: int | None
    param: str | None = None  # FQN when the input is (a reshape of) a parameter


@dataclass
class Analysis:
    """Channel axis of every traced node's outputs, and the problem of each problematic one."""

    axes: dict[Any, int | None] = field(default_factory=dict)
    problems: dict[Any, str] = field(default_factory=dict)
    params: dict[Any, str] = field(default_factory=dict)  # node -> parameter it reshapes
    param_uses: dict[str, list[str | None]] = field(default_factory=dict)  # FQN -> problems

    def param_problem(self, fqn: str) -> str | None:
        """Why parameter ``fqn`` cannot be cut along with channels (None: per-channel only)."""
        uses = self.param_uses.get(fqn)
        if not uses:
            return f"parameter '{fqn}' is used by an op the trace does not check"
        return next((u for u in uses if u is not None), None)


Rule = Callable[[Any, list[Operand], Analysis], "tuple[int | None, str | None]"]


def _dims(grad_fn: Any, ndim: int) -> list[int]:
    dims = getattr(grad_fn, "_saved_dim", ())
    dims = dims if isinstance(dims, tuple) else (dims,)
    return [_signed(int(d)) % ndim for d in dims]


def _first(ops: list[Operand]) -> Operand | None:
    return next((o for o in ops if o.fn is not None), None)


def _pointwise(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    traced = [o for o in ops if o.fn is not None]
    if len(ops) != 1 or len(traced) != 1:
        return None, "reads a tensor the trace cannot see"
    return traced[0].axis, None


def _spatial(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    axis, problem = _pointwise(fn, ops, a)
    shape = ops[0].shape if ops else None
    if problem is None and axis is not None and shape is not None and axis != len(shape) - 3:
        return None, f"pools or resamples axes that hold channels (channels on axis {axis})"
    return axis, problem


def _channels_first(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    """Conv, BatchNorm, GroupNorm: channels must be on axis 1 of the input."""
    x = ops[0] if ops else None
    if x is None or x.fn is None:
        return 1, None  # the model input: the layer defines the channels
    if x.axis is not None and x.axis != 1:
        return None, f"reads a tensor whose channels are on axis {x.axis}, not 1"
    return 1, None


def _weight_param(op: Operand, a: Analysis) -> str | None:
    return op.param if op.fn is not None else None


def _linear(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    """``x @ W.t() (+ b)``: new channels on the last axis; ``x`` must have them there too."""
    name = base_name(fn)
    x, w = (ops[1], ops[2]) if name == "Addmm" else (ops[0], ops[1])
    if name == "Linear":
        x, w = ops[0], ops[1]
    if _weight_param(w, a) is None:
        return None, "multiplies two traced tensors (mixes channels)"
    last = None if x.shape is None else len(x.shape) - 1
    if x.fn is not None and x.axis is not None and x.axis != last:
        return None, f"contracts axis {last}, but channels are on axis {x.axis}"
    shape = out_shape(fn)
    return (None if shape is None else len(shape) - 1), None


def _layernorm(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    x = ops[0]
    normalized = tuple(getattr(fn, "_saved_normalized_shape", ()) or ())
    if len(normalized) != 1:
        return None, f"normalises over {len(normalized)} axes (channels must be the only one)"
    if x.axis is not None and x.shape is not None and x.axis != len(x.shape) - 1:
        return None, f"normalises the last axis, but channels are on axis {x.axis}"
    return x.axis, None


def _map_reshape(src: tuple[int, ...], dst: tuple[int, ...], axis: int) -> int | None:
    """Where channel ``axis`` of ``src`` lands in ``dst`` (None: the reshape moves channels)."""
    n = len(src)
    if len(dst) > axis and dst[: axis + 1] == src[: axis + 1]:
        return axis  # everything up to the channel axis is kept
    tail = n - axis
    if len(dst) >= tail and dst[len(dst) - tail :] == src[axis:]:
        return len(dst) - tail  # everything from the channel axis on is kept
    if len(dst) == axis + 1 and dst[:axis] == src[:axis] and dst[axis] == math.prod(src[axis:]):
        return axis  # flattened from the channel axis: one channel = prod(trailing) features
    return None


def _reshape(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    x, dst = _first(ops), out_shape(fn)
    if x is None or x.shape is None or dst is None:
        return None, "changes shape in a way that cannot be checked"
    if x.axis is None:
        return None, None
    if base_name(fn) == "Expand" and x.shape[x.axis] != dst[x.axis + len(dst) - len(x.shape)]:
        return None, "broadcasts one value across channels"
    new = _map_reshape(x.shape, dst, x.axis)
    if new is None:
        what = "splits the channel axis (a channel shuffle?)" if len(dst) > len(x.shape) else ""
        return None, what or f"reshapes {list(x.shape)} to {list(dst)}, moving channels"
    return new, None


def _permute(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    x = ops[0]
    if x.axis is None:
        return None, None
    if base_name(fn) == "Permute":
        dims = [_signed(int(d)) for d in fn._saved_dims]
        dims = [d % len(dims) for d in dims]
        return dims.index(x.axis), None
    d0, d1 = _signed(int(fn._saved_dim0)), _signed(int(fn._saved_dim1))
    n = len(x.shape) if x.shape is not None else 0
    d0, d1 = (d0 % n, d1 % n) if n else (d0, d1)
    return {d0: d1, d1: d0}.get(x.axis, x.axis), None


def _reduction(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    shape = getattr(fn, "_saved_self_sym_sizes", None)
    if shape is None or not hasattr(fn, "_saved_dim"):
        return None, "reduces over all axes"
    x = ops[0]
    dims = _dims(fn, len(shape))
    channel = x.axis if x.axis is not None else 1
    if not dims or 0 in dims or channel in dims:
        return None, "reduces over the batch or channel axis"
    _, problem = _pointwise(fn, ops, a)
    keep = bool(getattr(fn, "_saved_keepdim", False))
    return (channel if keep else channel - sum(d < channel for d in dims)), problem


def _binary(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    out = out_shape(fn)
    if out is None:
        return None, "cannot read its output shape"
    axes = {o.axis + len(out) - len(o.shape) for o in ops if o.axis is not None and o.shape}
    if len(axes) > 1:
        return None, "combines tensors whose channels are on different axes"
    axis = next(iter(axes), None)
    for i, o in enumerate(ops):
        problem = _operand_problem(fn, i, o, out, axis, a)
        if problem is not None:
            return None, problem
    return axis, None


def _operand_problem(
    fn: Any, i: int, o: Operand, out: tuple[int, ...], axis: int | None, a: Analysis
) -> str | None:
    name = base_name(fn)
    if o.fn is None:
        if name not in ("Mul", "Div"):
            return "has an operand the trace cannot see (model input, buffer or constant)"
        saved = getattr(fn, "_saved_self" if i == 0 else "_saved_other", None)
        if not isinstance(saved, torch.Tensor):
            return "has an operand the trace cannot see"
        size = _aligned_size(tuple(saved.shape), out, 1 if axis is None else axis)
        return None if size in (None, 1) else "scales channels by an untraced per-channel tensor"
    if o.shape is None or axis is None:
        return None
    size = _aligned_size(o.shape, out, axis)
    if o.param is not None:
        extra = [
            d for d, s in enumerate(o.shape) if s > 1 and d != axis - (len(out) - len(o.shape))
        ]
        ok = not extra and size in (None, 1, out[axis])
        problem = None if ok else f"uses parameter '{o.param}' {list(o.shape)} across channels"
        a.param_uses.setdefault(o.param, []).append(problem)
        return problem
    if size != out[axis]:
        return "broadcasts a traced operand across channels"
    return None


def _aligned_size(shape: tuple[int, ...], out: tuple[int, ...], axis: int) -> int | None:
    """Size of the operand axis that broadcasts onto output ``axis`` (None: does not reach it)."""
    d = axis - (len(out) - len(shape))
    return shape[d] if d >= 0 else None


def _cat(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    out = out_shape(fn)
    if any(o.fn is None for o in ops):
        return None, "concatenates a tensor the trace cannot see (model input or constant)"
    axes = {o.axis for o in ops}
    axis = next(iter(axes)) if len(axes) == 1 else None
    if out is None or axis is None or _dims(fn, len(out)) != [axis] or axis != 1:
        return None, "concatenates along an axis other than channels (axis 1)"
    return axis, None


def _split(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    x = ops[0]
    shape = getattr(fn, "_saved_self_sym_sizes", None) or x.shape
    if shape is None:
        return None, "splits a tensor it cannot read"
    dims = _dims(fn, len(shape))
    if x.axis is not None and dims == [x.axis] and x.axis != 1:
        return None, f"splits channels on axis {x.axis} (only axis 1 is mapped)"
    return x.axis, None


def _slice(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    shape = getattr(fn, "_saved_self_sym_sizes", None)
    x = ops[0]
    dims = [] if shape is None else _dims(fn, len(shape))
    channel = x.axis if x.axis is not None else 1
    if len(dims) != 1 or dims[0] in (0, channel):
        return None, "slices the channel or batch axis"
    return _pointwise(fn, ops, a)


def _pad(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    out, pad, x = out_shape(fn), getattr(fn, "_saved_pad", None), ops[0]
    channel = x.axis if x.axis is not None else 1
    if out is None or pad is None or len(pad) > 2 * (len(out) - 1 - channel):
        return None, "pads the channel axis"
    return _pointwise(fn, ops, a)


def _weight_op(fn: Any, ops: list[Operand], a: Analysis) -> tuple[int | None, str | None]:
    """``W.t()`` of a Linear's weight: the result still names that parameter."""
    if ops and ops[0].param is not None:
        a.params[fn] = ops[0].param
        return None, None
    return _permute(fn, ops, a) if base_name(fn) == "Transpose" else (ops[0].axis, None)


RULES: dict[str, Rule] = {
    **dict.fromkeys(POINTWISE, _pointwise),
    **dict.fromkeys(SPATIAL, _spatial),
    **dict.fromkeys(REDUCTIONS, _reduction),
    **dict.fromkeys(RESHAPES, _reshape),
    **dict.fromkeys(BINARY, _binary),
    **dict.fromkeys(CONV_CORE | BATCHNORM_CORE | GROUPNORM_CORE, _channels_first),
    **dict.fromkeys(LINEAR_CORE, _linear),
    **dict.fromkeys(LAYERNORM_CORE, _layernorm),
    "Permute": _permute,
    "Transpose": _weight_op,
    "T": _weight_op,
    "Cat": _cat,
    "Split": _split,
    "SplitWithSizes": _split,
    "Slice": _slice,
    "ConstantPadNd": _pad,
}


def _post_order(roots: Iterable[Any]) -> list[Any]:
    """Every autograd node reachable from ``roots``, inputs before the ops that read them."""
    order: list[Any] = []
    done: set[Any] = set()
    stack = [(r, False) for r in roots if r is not None]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            if fn not in done:
                done.add(fn)
                order.append(fn)
            continue
        if fn in done:
            continue
        stack.append((fn, True))
        stack.extend((f, False) for f, _ in fn.next_functions if f is not None and f not in done)
    return order


def analyse(roots: Iterable[Any], params: dict[int, str]) -> Analysis:
    """Run every rule over the autograd graph behind ``roots`` (output ``grad_fn``s).

    ``params`` maps ``id(parameter)`` to its FQN, so parameter leaves are recognised.
    """
    a = Analysis()
    for fn in _post_order(roots):
        if is_leaf(fn):
            a.axes[fn] = None
            name = params.get(id(fn.variable))
            if name is not None:
                a.params[fn] = name
            continue
        operands = [
            Operand(f, None if f is None else out_shape(f, i), a.axes.get(f), a.params.get(f))
            for f, i in fn.next_functions
        ]
        name = base_name(fn)
        rule = RULES.get(name)
        if rule is None:
            a.axes[fn] = None
            a.problems[fn] = (
                f"op {fn.name() if name != 'Unknown' else name} is not known to keep channels"
            )
            continue
        if name in RESHAPES and operands and operands[0].param is not None:
            a.params[fn] = operands[0].param  # a reshaped parameter (layer scale as (1, C, 1, 1))
            a.axes[fn] = None
            continue
        axis, problem = rule(fn, operands, a)
        a.axes[fn] = axis
        if problem is not None:
            a.problems[fn] = f"op {fn.name()} {problem}"
    return a
