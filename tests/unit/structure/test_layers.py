"""The table of layer kinds: recognition, slots, cut axes and resizing, for every record."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from chase.sparsity.groups import ROLES
from chase.structure import LAYER_KINDS, LayerKind, layer_kind
from chase.structure.layers import cut_axes

#: kind name → (an example module, an input with the given channel count).
EXAMPLES: dict[str, tuple[Callable[[], nn.Module], Callable[[int], torch.Tensor]]] = {
    "conv": (lambda: nn.Conv2d(6, 8, 3, padding=1), lambda c: torch.randn(2, c, 5, 5)),
    "depthwise": (lambda: nn.Conv1d(6, 6, 3, groups=6), lambda c: torch.randn(2, c, 7)),
    "grouped": (lambda: nn.Conv2d(6, 8, 1, groups=2), lambda c: torch.randn(2, c, 3, 3)),
    "linear": (lambda: nn.Linear(6, 8), lambda c: torch.randn(2, c)),
    "norm": (lambda: nn.BatchNorm2d(6), lambda c: torch.randn(2, c, 3, 3)),
    "layernorm": (lambda: nn.LayerNorm(6), lambda c: torch.randn(2, 3, c)),
    "groupnorm": (lambda: nn.GroupNorm(3, 6), lambda c: torch.randn(2, c, 3, 3)),
}
KINDS = {k.name: k for k in LAYER_KINDS}


def test_every_kind_has_an_example_and_is_recognised() -> None:
    assert set(EXAMPLES) == set(KINDS), "add an example for every new layer kind"
    for name, (build, _) in EXAMPLES.items():
        kind = layer_kind(build())
        assert kind is KINDS[name], name
    assert layer_kind(nn.Conv2d(4, 4, 3)) is KINDS["conv"]  # groups=1: a plain conv
    assert layer_kind(nn.SyncBatchNorm(4)) is KINDS["norm"]
    for unknown in (nn.ReLU(), nn.Conv3d(2, 2, 1), nn.PReLU(4)):
        assert layer_kind(unknown) is None


def test_subclasses_are_recognised_and_overridden_forwards_are_not_trusted() -> None:
    class Same(nn.Conv2d):
        pass

    class Forward(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x).flip(1)

    class ConvForward(nn.Conv2d):
        def _conv_forward(
            self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
        ) -> torch.Tensor:
            return super()._conv_forward(x, w.flip(0), b)

    class NormForward(nn.BatchNorm2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x).roll(1, 1)

    assert layer_kind(Same(3, 4, 1)) is KINDS["conv"]
    assert KINDS["conv"].trusted(Same(3, 4, 1))
    # recognised by type, but discovery checks in the trace what the forward computes
    for module, kind in ((Forward(3, 4), "linear"), (ConvForward(3, 4, 1), "conv"),
                         (NormForward(4), "norm")):  # fmt: skip
        assert layer_kind(module) is KINDS[kind]
        assert not KINDS[kind].trusted(module)


def test_slots_and_cut_axes() -> None:
    assert KINDS["conv"].cut_axes == {"weight": (0, 1), "bias": (0,)}
    assert KINDS["linear"].cut_axes == {"weight": (0, 1), "bias": (0,)}
    assert KINDS["depthwise"].cut_axes == {"weight": (0,), "bias": (0,)}
    assert KINDS["norm"].cut_axes == dict.fromkeys(
        ("weight", "bias", "running_mean", "running_var"), (0,)
    )
    assert KINDS["grouped"].cut_axes == {"weight": (0, 1), "bias": (0,)}
    assert KINDS["layernorm"].cut_axes == {"weight": (0,), "bias": (0,)}
    assert KINDS["groupnorm"].cut_axes == {"weight": (0,), "bias": (0,)}
    for kind in LAYER_KINDS:
        assert all(s.role in ROLES for s in (*kind.out_slot, *kind.in_slot)), kind.name
        if kind.channelwise:
            assert kind.in_slot == kind.out_slot, kind.name


def test_members_skip_missing_tensors() -> None:
    rows = torch.arange(8).reshape(8, 1)
    members = KINDS["conv"].members(nn.Conv2d(3, 8, 1, bias=False), "a.b", True, rows)
    assert [(m.tensor, m.axis, m.role) for m in members] == [("a.b.weight", 0, "producer")]
    members = KINDS["linear"].members(nn.Linear(8, 2), "", False, rows)
    assert [(m.tensor, m.axis, m.role) for m in members] == [("weight", 1, "consumer")]


def test_grouped_conv_positions_and_ties() -> None:
    kind, conv = KINDS["grouped"], nn.Conv2d(6, 8, 1, groups=2)  # 3 inputs, 4 outputs a group
    rows = torch.arange(6).reshape(6, 1)
    (member,) = kind.members(conv, "c", False, rows)
    assert member.index.reshape(-1).tolist() == [0, 1, 2, 0, 1, 2]  # column inside its group
    assert kind.tie is not None
    assert kind.tie(conv, False, torch.arange(6)).tolist() == [0, 1, 2, 0, 1, 2]
    assert kind.tie(conv, True, torch.arange(8)).tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    gn, tie = nn.GroupNorm(3, 6), KINDS["groupnorm"].tie
    assert tie is not None and tie(gn, True, torch.arange(6)).tolist() == [0, 0, 1, 1, 2, 2]


def test_cut_axes_of_modules_outside_the_table() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(5, 1, 1))
            self.matrix = nn.Parameter(torch.ones(5, 5))

    assert cut_axes(Scale()) == {"gamma": (0,)}  # only per-channel vectors
    assert cut_axes(nn.Linear(2, 3)) == KINDS["linear"].cut_axes


def _cut_side(module: nn.Module, kind: LayerKind, is_out: bool) -> int:
    """Keep every other position of one slot side; returns the new width."""
    slots = kind.out_slot if is_out else kind.in_slot
    width = 0
    for s in slots:
        t = getattr(module, s.tensor, None)
        if t is None:
            continue
        keep = torch.arange(0, t.shape[s.axis], 2)
        width = keep.numel()
        if isinstance(t, nn.Parameter):
            t.data = t.data.index_select(s.axis, keep)
        else:
            setattr(module, s.tensor, t.index_select(s.axis, keep))
    return width


@pytest.mark.parametrize("name", [k.name for k in LAYER_KINDS if k.refusal is None])
def test_resize_makes_a_cut_module_work(name: str) -> None:
    build, make_input = EXAMPLES[name]
    module, kind = build().eval(), KINDS[name]
    groups = getattr(module, "groups", 1) if name == "grouped" else 1
    if name == "groupnorm":  # whole groups: keep 2 of 3 groups of 2 channels
        keep = torch.tensor([0, 1, 4, 5])
        for t in (module.weight, module.bias):
            t.data = t.data[keep]
        out_width = in_width = 4
    else:
        out_width = _cut_side(module, kind, True)
        in_width = out_width if kind.channelwise else groups * _cut_side(module, kind, False)
    kind.resize(module)
    assert layer_kind(module) is kind
    with torch.no_grad():
        y = module(make_input(in_width))
    assert y.shape[1] == out_width
