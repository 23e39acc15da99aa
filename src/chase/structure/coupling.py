"""Channel coupling discovery: trace a model and list its channel groups as plain data.

Torch-Pruning's dependency graph finds which channel slots are tied together (residual streams,
depthwise ties, concatenation offsets, flatten→Linear heads). It hands back modules and index
lists; this module converts them into ``ChannelGroup``/``Member`` records named by state-dict
FQN and axis through the table of layer kinds (``chase.structure.layers``), and refuses to
guess: any group that touches a layer the table does not know (or knows as unprunable), a
traced op whose rule in ``chase.structure.ops`` finds a problem, the model output, a shared
module, or a tensor axis whose channels are not covered exactly once, is returned with
``prunable=False`` and a reason that names the layer or op. Layers that only allow removing
channels together (grouped convs, GroupNorm) make the group's channels units
(``chase.structure.fold``). When Torch-Pruning itself fails or runs past ``time_limit``, the
result is one unprunable pseudo-group whose reason says why.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from chase.sparsity.groups import ChannelGroup, Member
from chase.structure import fold, ops
from chase.structure.layers import LayerKind, layer_kind
from chase.structure.limits import DiscoveryTimeout, time_limit, tp_failure

_log = logging.getLogger(__name__)

OUTPUT_REASON = "reaches the model output"
#: Seconds Torch-Pruning may spend on one model before discovery gives up (main thread only).
TIME_LIMIT = 60.0
#: Name of the pseudo-group that reports a failed discovery.
FAILED = "(model)"


@dataclass
class _Trace:
    graph: Any  # tp.DependencyGraph
    names: dict[nn.Module, str]
    order: dict[str, int]
    calls: Counter[nn.Module]
    outputs: set[Any]
    shapes: dict[str, torch.Size]
    params: dict[int, str]
    kinds: dict[nn.Module, LayerKind]
    analysis: ops.Analysis
    forward_problems: dict[nn.Module, str]


def discover_groups(
    model: nn.Module, example_inputs: Any, *, time_limit_s: float | None = TIME_LIMIT
) -> list[ChannelGroup]:
    """Trace ``model`` on ``example_inputs`` and return its channel groups in module order.

    ``example_inputs`` is a tensor, a tuple of positional tensors, or a dict of keyword
    tensors. The model's train/eval flags are restored afterwards; discovery runs in eval mode
    so BatchNorm statistics are untouched, and no backward pass runs (Torch-Pruning reads the
    autograd graph, so gradients must be enabled while tracing; parameters get no ``.grad``).
    If Torch-Pruning raises, or runs longer than ``time_limit_s`` seconds (enforced with a
    timer signal, so only when called from the main thread; None: no limit), the result is a
    single unprunable group named ``(model)`` whose reason names the failure and the op.
    """
    try:
        with time_limit(time_limit_s):
            trace = _trace(model, example_inputs)
            tp_groups = list(trace.graph.get_all_groups())
    except DiscoveryTimeout as e:
        return [_failed(f"discovery stopped after {time_limit_s:g} s inside Torch-Pruning{e}")]
    except Exception as e:
        where = tp_failure(e, {m: n for n, m in model.named_modules()})
        if where is None:
            raise  # the model's own forward failed: not ours to hide
        return [_failed(f"Torch-Pruning failed: {where}")]
    groups = [_convert(g, trace) for g in tp_groups]
    groups = _check_cover(groups, trace.shapes)
    groups = _finalise(groups, trace)
    for g in groups:
        if not g.prunable:
            only_output = all(r.startswith(OUTPUT_REASON) for r in g.reason.split("; "))
            level = logging.INFO if only_output else logging.WARNING  # every model has one
            _log.log(level, "channel group %s is not prunable: %s", g.name, g.reason)
    return groups


def _failed(reason: str) -> ChannelGroup:
    _log.warning("nothing prunable: %s", reason)
    return ChannelGroup(FAILED, 0, (), prunable=False, reason=f"nothing prunable: {reason}")


@contextmanager
def preserved_modes(model: nn.Module) -> Iterator[None]:
    """Restore every submodule's train/eval flag on exit."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list | tuple):
        return [t for o in obj for t in _tensors(o)]
    return []


def _detached(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, dict):
        return {k: _detached(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_detached(v) for v in obj)
    return obj


def _forward_problem(mod: nn.Module, kind: LayerKind, inputs: Any, output: Any) -> str | None:
    """For a layer subclass that overrides its base's forward: None if the traced forward
    computes one ``kind.core`` op on the layer's own parameters (plus ops the whitelist checks
    on their own), else why not."""
    what = f"{type(mod).__name__} (a {kind.bases[0].__name__} subclass with its own forward)"
    if not isinstance(output, torch.Tensor) or output.grad_fn is None:
        return f"{what} does not return one traced tensor"
    stops = {x.grad_fn for x in _tensors(inputs) if x.grad_fn is not None}
    own = {id(p) for p in mod.parameters(recurse=False)}
    owned: set[Any] = set()
    stack: list[Any] = [output.grad_fn]
    while stack:
        fn = stack.pop()
        if fn in owned or fn in stops or ops.is_leaf(fn):
            continue
        owned.add(fn)
        stack.extend(f for f, _ in fn.next_functions if f is not None)
    cores = [fn for fn in owned if ops.base_name(fn) in kind.core]
    users = {
        fn
        for fn in owned
        for f, _ in fn.next_functions
        if ops.is_leaf(f) and id(getattr(f, "variable", None)) in own
    }
    allowed = set(cores) | {fn for fn in owned if ops.base_name(fn) in kind.weight_ops}
    if len(cores) != 1:
        return f"{what} computes {len(cores)} {'/'.join(sorted(kind.core))} ops, not one"
    if users - allowed:
        bad = sorted(fn.name() for fn in users - allowed)[0]
        return f"{what} uses its parameters in op {bad}"
    return None


def _trace(model: nn.Module, example_inputs: Any) -> _Trace:
    inputs = _detached(example_inputs)
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    outputs: list[torch.Tensor] = []

    def forward(m: nn.Module, args: Any) -> Any:
        out = m(**args) if isinstance(args, dict) else m(*args)
        outputs.extend(_tensors(out))
        return out

    calls: Counter[nn.Module] = Counter()
    problems: dict[nn.Module, str] = {}
    kinds = {m: k for m in model.modules() if (k := layer_kind(m)) is not None}

    def hook(mod: nn.Module, args: Any, out: Any) -> None:
        calls.update([mod])
        kind = kinds[mod]
        if not kind.trusted(mod):
            problem = _forward_problem(mod, kind, args, out)
            if problem is not None:
                problems[mod] = problem

    hooks = [m.register_forward_hook(hook) for m in kinds]
    try:
        with preserved_modes(model), torch.enable_grad():
            graph = tp.DependencyGraph().build_dependency(
                model, example_inputs=inputs, forward_fn=forward, verbose=False
            )
    finally:
        for h in hooks:
            h.remove()
    names = {m: n for n, m in model.named_modules()}
    params = {id(p): n for n, p in model.named_parameters()}
    roots = [t.grad_fn for t in outputs if t.grad_fn is not None]
    return _Trace(
        graph=graph,
        names=names,
        order={n: i for i, n in enumerate(names.values())},
        calls=calls,
        outputs=set(roots),
        shapes={k: v.shape for k, v in model.state_dict().items()},
        params=params,
        kinds=kinds,
        analysis=ops.analyse(roots, params),
        forward_problems=problems,
    )


def _rows(idxs: Sequence[int], roots: Sequence[int] | None, size: int) -> torch.Tensor | None:
    """Index rows (size, k): positions of each root channel, or None if they are irregular."""
    if roots is None or len(idxs) == 0 or len(idxs) != len(roots):
        return None
    idx = torch.as_tensor(list(idxs), dtype=torch.int64)
    root = torch.as_tensor(list(roots), dtype=torch.int64)
    if int(root.min()) < 0 or int(root.max()) >= size or idx.unique().numel() != idx.numel():
        return None
    counts = torch.bincount(root, minlength=size)
    if not bool((counts == counts[0]).all()) or int(counts[0]) == 0:
        return None
    order = torch.sort(root, stable=True).indices
    return idx[order].reshape(size, -1)


def _layer_problem(
    node: Any, mod: nn.Module, name: str, kind: LayerKind | None, is_out: bool, t: _Trace
) -> str | None:
    if kind is None:
        return f"{type(mod).__name__} '{name}' is not supported"
    if kind.refusal is not None:
        return kind.refusal(mod, name)
    if mod in t.forward_problems:
        return f"'{name}': {t.forward_problems[mod]}"
    if t.calls[mod] > 1:
        return f"'{name}' runs {t.calls[mod]} times per forward (shared layer)"
    if kind.channelwise and not node.inputs:
        return f"'{name}' reads a tensor the trace cannot see (model input?)"
    if kind.check is not None:
        problem = kind.check(mod, name, ops.out_shape(node.grad_fn))
        if problem is not None:
            return problem
    problem = t.analysis.problems.get(node.grad_fn)
    if problem is not None:
        return f"{problem} (in '{name}')"
    if (is_out or kind.channelwise) and node.grad_fn in t.outputs:
        return f"{OUTPUT_REASON} (output axis of '{name}')"
    return None


def _nearest_layer(node: Any, t: _Trace) -> str:
    seen, frontier = set(), list(node.inputs)
    while frontier:
        n = frontier.pop(0)
        if id(n) in seen:
            continue
        seen.add(id(n))
        if not isinstance(n.module, torch.Tensor) and n.module in t.names:
            return f" after '{t.names[n.module]}'"
        frontier.extend(n.inputs)
    return ""


def _op_problem(node: Any, t: _Trace) -> str | None:
    if isinstance(node.module, tp.ops._OutputOp):
        return f"{OUTPUT_REASON}{_nearest_layer(node, t)}"
    problem = t.analysis.problems.get(node.grad_fn)
    return None if problem is None else problem + _nearest_layer(node, t)


def _param_member(item: Any, size: int, t: _Trace) -> tuple[Member | None, str | None]:
    """A per-channel parameter outside any table layer (ConvNeXt's layer scale)."""
    param, node = item.dep.target.module, item.dep.target
    fqn = t.params.get(id(param), "?")
    problem = t.analysis.param_problem(fqn)
    long = [d for d, n in enumerate(param.shape) if n > 1]
    if problem is None and long != [node.pruning_dim]:
        problem = f"parameter '{fqn}' {list(param.shape)} is not a per-channel vector"
    rows = _rows(item.idxs, item.root_idxs, size)
    if problem is None and rows is None:
        problem = f"channel indices of parameter '{fqn}' could not be mapped"
    if problem is not None or rows is None:
        return None, problem
    return Member(fqn, int(node.pruning_dim), rows, "param"), None


def _joins_streams(node: Any) -> bool:
    """An addition of two traced tensors: what makes a group with two producers residual (an
    SE gate's expand conv multiplies into the stream instead, so it is not a skip)."""
    fn = node.grad_fn
    if ops.base_name(fn) not in ("Add", "Sub"):
        return False
    return sum(f is not None for f, _ in fn.next_functions) >= 2


def _convert(tp_group: Any, t: _Trace) -> ChannelGroup:
    """One Torch-Pruning group → one ChannelGroup (name and cover checks come later)."""
    size = len(tp_group[0].idxs)
    members: list[Member] = []
    problems: list[str] = []
    layers: list[str] = []
    producers: list[str] = []
    ties: list[torch.Tensor] = []
    tiers: list[str] = []
    shrink_only: list[str] = []
    joins = False
    for item in tp_group:
        node, mod = item.dep.target, item.dep.target.module
        is_out = bool(t.graph.is_out_channel_pruning_fn(item.dep.handler))
        if isinstance(mod, torch.Tensor):
            member, problem = _param_member(item, size, t)
            members += [member] if member is not None else []
            problems.append(problem or "")
            continue
        if mod not in t.names:
            joins = joins or _joins_streams(node)
            problems.append(_op_problem(node, t) or "")
            continue
        name, kind = t.names[mod], t.kinds.get(mod)
        layers.append(name)
        if is_out and kind is not None and kind.produces:
            producers.append(name)
        problem = _layer_problem(node, mod, name, kind, is_out, t)
        rows = _rows(item.idxs, item.root_idxs, size)
        if problem is None and rows is None:
            partial = item.root_idxs is not None and len(set(item.root_idxs)) < size
            problem = (
                f"'{name}' reads only some of the group's channels (a split, chunk or slice "
                "after the producer; not supported yet)"
                if partial
                else f"channel indices of '{name}' could not be mapped"
            )
        problems.append(problem or "")
        if kind is not None and kind.shrink_only:
            shrink_only.append(f"{type(mod).__name__} '{name}'")
        if kind is not None and rows is not None:
            members += kind.members(mod, name, is_out, rows)  # listed even if unprunable
            if kind.tie is not None and rows.shape[1] == 1:
                ties.append(kind.tie(mod, is_out, rows[:, 0]))
                tiers.append(f"{type(mod).__name__} '{name}'")
            elif kind.tie is not None:
                problems.append(f"'{name}' is reached through a flatten")
    unit = 1
    if ties and not any(problems):
        folded = fold.fold(members, fold.units(ties, size))
        if isinstance(folded, str):
            problems.append(f"{folded} (set by {', '.join(sorted(set(tiers)))})")
        else:
            members, unit = folded
            if members and members[0].index.shape[0] == 1:
                who = ", ".join(sorted(set(tiers))[:2])
                problems.append(
                    f"{who} tie every channel together (removing one would change the "
                    "normalisation or grouping of the others)"
                )
    unique = sorted({p for p in problems if p}, key=problems.index)
    reason = "; ".join(unique[:3]) + (f" (+{len(unique) - 3} more)" if len(unique) > 3 else "")
    mods = tuple(sorted(set(layers), key=lambda n: t.order[n]))
    first = min(producers, key=lambda n: t.order[n]) if producers else (mods or ("?",))[0]
    return ChannelGroup(
        name=f"{first}:out",
        size=size // unit,
        members=tuple(members),
        residual=len(set(producers)) > 1 and joins,
        prunable=not unique,
        reason=reason,
        modules=mods,
        unit=unit,
        shrink_only=tuple(sorted(set(shrink_only))),
    )


def _check_cover(groups: list[ChannelGroup], shapes: dict[str, torch.Size]) -> list[ChannelGroup]:
    """Every tensor axis a group touches must be covered exactly once by all groups together."""
    cover: dict[tuple[str, int], list[tuple[int, torch.Tensor]]] = defaultdict(list)
    for gi, g in enumerate(groups):
        for m in g.members:
            cover[(m.tensor, m.axis)].append((gi, m.index.reshape(-1)))
    bad: dict[int, str] = {}
    for (tensor, axis), entries in cover.items():
        shape = shapes.get(tensor)
        n = shape[axis] if shape is not None and axis < len(shape) else 0
        idx = torch.cat([e for _, e in entries])
        ok = n > 0 and idx.numel() == n and int(idx.min()) >= 0 and int(idx.max()) < n
        if ok and bool((torch.bincount(idx, minlength=n) == 1).all()):
            continue
        why = f"channels of '{tensor}' axis {axis} are not covered exactly once"
        for gi, _ in entries:
            bad.setdefault(gi, f"{why} ({idx.numel()} slots for {n} positions)")
    out = []
    for gi, g in enumerate(groups):
        if gi in bad:
            g = replace(g, prunable=False, reason="; ".join(r for r in (g.reason, bad[gi]) if r))
        out.append(g)
    return out


def _finalise(groups: list[ChannelGroup], t: _Trace) -> list[ChannelGroup]:
    """Sort by the first module's definition order and make names unique."""
    groups = sorted(groups, key=lambda g: t.order.get(g.name.rpartition(":")[0], len(t.order)))
    seen: Counter[str] = Counter()
    out = []
    for g in groups:
        seen[g.name] += 1
        out.append(g if seen[g.name] == 1 else replace(g, name=f"{g.name}#{seen[g.name]}"))
    return out


def describe_groups(groups: Sequence[ChannelGroup]) -> str:
    """A short human-readable report of the groups, for the CLI and logs."""
    if not groups:
        return "no channel groups found"
    if len(groups) == 1 and groups[0].name == FAILED:
        return groups[0].reason
    prunable = [g for g in groups if g.prunable]
    residual = sum(g.residual for g in prunable)
    lines = [
        f"{len(groups)} channel groups: {len(prunable)} prunable ({residual} residual), "
        f"{len(groups) - len(prunable)} not prunable"
    ]
    width = max(len(g.name) for g in groups)
    for g in groups:
        kind = "residual" if g.residual else "plain"
        status = "prunable" if g.prunable else f"NOT PRUNABLE: {g.reason}"
        if g.prunable and g.shrink_only:
            status = f"prunable when shrinking while training ({g.shrink_only[0]})"
        size = f"{g.size:>5} ch" if g.unit == 1 else f"{g.size:>3}×{g.unit:<3}ch"
        lines.append(
            f"  {g.name:<{width}}  {size}  {kind:<8}  {len(g.modules):>3} layers  {status}"
        )
    return "\n".join(lines)
