"""The table of layer kinds: recognition, slots, cut axes and resizing, for every record."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from chase.sparsity.groups import ROLES
from chase.structure import LAYER_KINDS, LayerKind, layer_kind

#: kind name → (an example module, an input with the given channel count).
EXAMPLES: dict[str, tuple[Callable[[], nn.Module], Callable[[int], torch.Tensor]]] = {
    "conv": (lambda: nn.Conv2d(6, 8, 3, padding=1), lambda c: torch.randn(2, c, 5, 5)),
    "depthwise": (lambda: nn.Conv1d(6, 6, 3, groups=6), lambda c: torch.randn(2, c, 7)),
    "grouped": (lambda: nn.Conv2d(6, 8, 1, groups=2), lambda c: torch.randn(2, c, 3, 3)),
    "linear": (lambda: nn.Linear(6, 8), lambda c: torch.randn(2, c)),
    "norm": (lambda: nn.BatchNorm2d(6), lambda c: torch.randn(2, c, 3, 3)),
}
KINDS = {k.name: k for k in LAYER_KINDS}


def test_every_kind_has_an_example_and_is_recognised() -> None:
    assert set(EXAMPLES) == set(KINDS), "add an example for every new layer kind"
    for name, (build, _) in EXAMPLES.items():
        kind = layer_kind(build())
        assert kind is KINDS[name], name
    assert layer_kind(nn.Conv2d(4, 4, 3)) is KINDS["conv"]  # groups=1: a plain conv
    assert layer_kind(nn.SyncBatchNorm(4)) is KINDS["norm"]
    for unknown in (nn.ReLU(), nn.GroupNorm(2, 4), nn.Conv3d(2, 2, 1), nn.LayerNorm(4)):
        assert layer_kind(unknown) is None


def test_subclasses_count_only_with_the_base_forward() -> None:
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
    assert layer_kind(Forward(3, 4)) is None
    assert layer_kind(ConvForward(3, 4, 1)) is None
    assert layer_kind(NormForward(4)) is None


def test_slots_and_cut_axes() -> None:
    assert KINDS["conv"].cut_axes == {"weight": (0, 1), "bias": (0,)}
    assert KINDS["linear"].cut_axes == {"weight": (0, 1), "bias": (0,)}
    assert KINDS["depthwise"].cut_axes == {"weight": (0,), "bias": (0,)}
    assert KINDS["norm"].cut_axes == dict.fromkeys(
        ("weight", "bias", "running_mean", "running_var"), (0,)
    )
    assert KINDS["grouped"].cut_axes == {}  # known, never cut
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


def test_grouped_conv_is_known_but_refused() -> None:
    kind = KINDS["grouped"]
    refusal = kind.refusal
    assert refusal is not None and kind.produces
    assert (
        refusal(nn.Conv2d(6, 8, 1, groups=2), "c") == "grouped conv 'c' (groups=2) is not depthwise"
    )
    assert kind.members(nn.Conv2d(6, 8, 1, groups=2), "c", True, torch.zeros(8, 1).long()) == []


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
    out_width = _cut_side(module, kind, True)
    in_width = out_width if kind.channelwise else _cut_side(module, kind, False)
    kind.resize(module)
    assert layer_kind(module) is kind
    with torch.no_grad():
        y = module(make_input(in_width))
    assert y.shape[1] == out_width
