"""Channel coupling discovery on every test architecture, and its refusals to guess."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nets
from chase.sparsity.groups import ChannelGroup
from chase.structure import describe_groups, discover_groups

CLASSIFIER = {
    "vgg19": "classifier",
    "mobilenetv2": "classifier.1",
    "flatten_head": "fc2",
    "squeeze_excite": "head",
}


def _groups(name: str) -> tuple[nn.Module, list[ChannelGroup]]:
    torch.manual_seed(0)
    case = nets.CASES[name]
    model = case.build()
    return model, discover_groups(model, case.inputs())


def _by_member(groups: list[ChannelGroup], tensor: str, axis: int) -> ChannelGroup:
    found = [g for g in groups if any(m.tensor == tensor and m.axis == axis for m in g.members)]
    assert len(found) == 1, (tensor, axis, [g.name for g in found])
    return found[0]


def _member(group: ChannelGroup, tensor: str, axis: int) -> torch.Tensor:
    return next(m.index for m in group.members if m.tensor == tensor and m.axis == axis)


@pytest.mark.parametrize("name", list(nets.CASES))
def test_groups_cover_every_layer_once(name: str) -> None:
    model, groups = _groups(name)
    assert len({g.name for g in groups}) == len(groups)
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d | nn.Linear):
            owner = _by_member(groups, f"{mod_name}.weight", 0)
            assert mod_name in owner.modules
    for g in groups:
        for m in g.members:
            assert m.index.shape[0] == g.size
        producers = {m.module for m in g.by_role("producer")}
        assert g.prunable == (g.reason == "")
        assert len(producers) >= 1 or not g.prunable


@pytest.mark.parametrize("name", list(nets.CASES))
def test_residual_groups_and_output_axis(name: str) -> None:
    _, groups = _groups(name)
    assert sum(g.residual for g in groups) == nets.CASES[name].residual
    head = CLASSIFIER.get(name, "fc")
    out = _by_member(groups, f"{head}.weight", 0)
    assert not out.prunable and "model output" in out.reason and head in out.reason


@pytest.mark.parametrize("name", ["resnet20", "resnet50_imagenet"])
def test_resnet_stream_members(name: str) -> None:
    _, groups = _groups(name)
    stage1 = _by_member(
        groups, "layer1.0.conv2.weight" if name == "resnet20" else "layer1.0.conv3.weight", 0
    )
    assert stage1.residual and stage1.prunable
    tensors = {(m.tensor, m.axis, m.role) for m in stage1.members}
    if name == "resnet20":  # stem + every block output of stage 1, consumed by stage 2's entry
        assert ("conv1.weight", 0, "producer") in tensors
        assert ("bn1.running_var", 0, "buffer") in tensors
        assert ("layer2.0.downsample.0.weight", 1, "consumer") in tensors
        assert {f"layer1.{i}.conv2" for i in range(3)} <= set(stage1.modules)
    else:  # bottleneck: stage 1 starts at the downsample conv, the stem is a plain group
        assert ("layer1.0.downsample.0.weight", 0, "producer") in tensors
        assert not _by_member(groups, "conv1.weight", 0).residual
    inner = _by_member(groups, "layer1.0.conv1.weight", 0)
    assert not inner.residual and inner.prunable


def test_vgg_has_plain_chain_groups() -> None:
    _, groups = _groups("vgg19")
    assert sum(g.prunable for g in groups) == 16
    for g in groups:
        if g.prunable:
            roles = sorted(m.role for m in g.members)
            assert roles == ["buffer", "buffer", "consumer", "param", "param", "producer"]


def test_mobilenetv2_depthwise_ties() -> None:
    model, groups = _groups("mobilenetv2")
    dws = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(dws) == 17
    for dw in dws:
        g = _by_member(groups, f"{dw}.weight", 0)
        assert g.prunable and not g.residual
        assert not any(m.tensor == f"{dw}.weight" and m.axis == 1 for m in g.members)
        block = dw.rpartition(".conv.")[0]  # zoo layout: conv.0.0 expand (t=6), conv.1.0 dw
        expand = f"{block}.conv.0.0"
        if model.get_submodule(expand).groups == 1:  # t=6 blocks: tied to the expansion
            assert any(m.tensor == f"{expand}.weight" and m.axis == 0 for m in g.members)
    proj = _by_member(groups, "features.2.conv.2.weight", 0)  # first 24-channel block
    assert proj.residual and "features.3.conv.2" in proj.modules


def test_flatten_head_maps_one_channel_to_hw_features() -> None:
    _, groups = _groups("flatten_head")
    g = _by_member(groups, "features.4.weight", 0)
    index = _member(g, "fc1.weight", 1)
    assert index.shape == (16, 16)
    assert torch.equal(index, torch.arange(256).reshape(16, 16))


def test_concat_offsets() -> None:
    _, groups = _groups("concat")
    # forward: mix(cat[a, b]) and mix2(cat[b, mix, a]); a has 6, b 10, mix 12 channels
    expected = {
        ("a.0.weight", "mix.0.weight"): range(0, 6),
        ("b.0.weight", "mix.0.weight"): range(6, 16),
        ("b.0.weight", "mix2.0.weight"): range(0, 10),
        ("mix.0.weight", "mix2.0.weight"): range(10, 22),
        ("a.0.weight", "mix2.0.weight"): range(22, 28),
    }
    for (producer, consumer), positions in expected.items():
        g = _by_member(groups, producer, 0)
        assert g.prunable
        assert _member(g, consumer, 1).reshape(-1).tolist() == list(positions)


@pytest.mark.parametrize("op", list(nets.PERMUTES))
def test_permuting_op_is_unprunable_and_grouped_conv_prunes_in_units(op: str) -> None:
    _, groups = _groups(f"permute_{op}")
    by_name = {g.name: g for g in groups}
    assert not by_name["conv1:out"].prunable  # feeds the permuting op
    assert "op " in by_name["conv1:out"].reason and "'bn1'" in by_name["conv1:out"].reason
    if op == "shuffle":
        assert "channel shuffle" in by_name["conv1:out"].reason
    # conv3 = Conv2d(8, 16, groups=2): a unit is one channel per conv group, same offset
    into, out = by_name["conv2:out"], by_name["conv3:out"]
    assert into.prunable and (into.size, into.unit) == (4, 2)
    assert _member(into, "conv2.weight", 0).tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert _member(into, "conv3.weight", 1).tolist() == [[0], [1], [2], [3]]
    assert out.prunable and (out.size, out.unit) == (8, 2)
    assert _member(out, "conv3.weight", 0)[0].tolist() == [0, 8]
    assert _member(out, "conv4.weight", 1)[0].tolist() == [0, 8]
    assert by_name["conv4:out"].prunable


def test_discovery_leaves_modes_and_statistics_alone() -> None:
    model = nets.CASES["resnet20"].build()
    model.train()
    model.layer2.eval()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # discovery must also work from inside no_grad
        discover_groups(model, torch.randn(1, 3, 32, 32))
    assert [m.training for m in model.modules()] == modes
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(p.grad is None for p in model.parameters())


class _Tiny(nn.Module):
    """conv1 → bn → <variant> → conv2 → pool → fc; ``variant`` picks one case to refuse."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        self.variant = variant
        self.conv1 = nn.Conv2d(3, 3 if variant in ("input_add", "input_cat") else 6, 3, padding=1)
        c = self.conv1.out_channels
        self.bn = nn.BatchNorm2d(c)
        self.gn = nn.GroupNorm(1, c)
        self.prelu = nn.PReLU(c)
        self.register_buffer("scale", torch.rand(1, c, 1, 1))
        self.conv2 = nn.Conv2d(2 * c if variant == "input_cat" else c, 8, 3, padding=1)
        self.wide = nn.Linear(8, 8)
        self.fc = nn.Linear(8, 4)

    def _middle(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        v = self.variant
        table = {
            "groupnorm": lambda: self.gn(h),
            "prelu": lambda: self.prelu(h),
            "input_add": lambda: h + x,
            "input_cat": lambda: torch.cat([h, x], 1),
            "buffer_mul": lambda: h * self.scale,
            "scalar_mul": lambda: F.relu(h) * 0.5,
            "channel_mean": lambda: h - h.mean(1, keepdim=True),
            "channel_pad": lambda: F.pad(h[:, :3], (0, 0, 0, 0, 0, 3)),
            "shared": lambda: self.bn(h),
        }
        return table[v]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._middle(self.bn(self.conv1(x)), x)
        y = F.relu(self.conv2(h)).mean((2, 3))
        return self.fc(F.relu(self.wide(y)))


@pytest.mark.parametrize(
    ("variant", "words"),
    [
        ("groupnorm", "tie every channel together"),
        ("prelu", "PReLU 'prelu'"),
        ("input_add", "cannot see"),
        ("input_cat", "cannot see"),
        ("buffer_mul", "per-channel"),
        ("channel_mean", "channel axis"),
        ("channel_pad", "channel"),
        ("shared", "'bn' runs 2 times"),
    ],
)
def test_refuses_to_guess(variant: str, words: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chase.structure.coupling"):
        groups = discover_groups(_Tiny(variant), torch.randn(2, 3, 8, 8))
    g = next(g for g in groups if g.name == "conv1:out")
    assert not g.prunable and words in g.reason, g.reason
    assert "conv1:out" in caplog.text and words in caplog.text
    assert next(g for g in groups if g.name == "conv2:out").prunable


def test_scalar_scaling_is_trusted() -> None:
    groups = discover_groups(_Tiny("scalar_mul"), torch.randn(2, 3, 8, 8))
    assert {g.name: g.prunable for g in groups} == {
        "conv1:out": True,
        "conv2:out": True,
        "wide:out": True,
        "fc:out": False,
    }


def test_linear_on_a_feature_map_is_refused() -> None:
    class LinearOnMap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.lin = nn.Linear(8, 8)  # acts on the last (width) axis, not on channels

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(self.conv(x)).sum((1, 2, 3))

    groups = discover_groups(LinearOnMap(), torch.randn(2, 3, 8, 8))
    assert not any(g.prunable for g in groups)


def test_describe_groups_names_every_group() -> None:
    _, groups = _groups("permute_roll")
    text = describe_groups(groups)
    assert text.splitlines()[0].startswith("5 channel groups: 3 prunable")
    for g in groups:
        assert g.name in text
    assert "RollBackward0" in text
    assert describe_groups([]) == "no channel groups found"
