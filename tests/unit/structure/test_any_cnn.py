"""Issue 12's layer families on small hand-written blocks: norm + activation subclasses,
ConvNeXt blocks (channels-last LayerNorm and Linear, layer scale), GroupNorm in whole groups,
squeeze-excitation gates, chunk/cat, the discovery time limit; each slims exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import chase
from chase import ChannelConfig, SparsityConfig
from chase.sparsity.channels import choose_removals
from chase.structure import describe_groups, discover_groups
from nets import BadNormAct
from nets import FamiliesNet as Net


def _by_name(groups):
    return {g.name: g for g in groups}


def test_families_are_prunable_and_named() -> None:
    groups = _by_name(discover_groups(Net(), torch.randn(2, 3, 8, 8)))
    assert groups["stem:out"].prunable and not groups["stem:out"].residual  # SE gate: no skip
    assert groups["se1:out"].prunable  # the SE bottleneck's own channels
    assert groups["a:out"].prunable and groups["b:out"].prunable  # → cat
    # grouped conv (4 groups of 6 outputs) + GroupNorm (8 groups of 3): units join both ties
    g = groups["grouped:out"]
    assert g.prunable and g.size * g.unit == 24 and g.unit > 1
    assert groups["block.fc1:out"].prunable  # Linear on a channels-last map
    stream = groups["proj:out"]  # normalised by the block's LayerNorm: exact when shrinking
    assert stream.prunable and stream.shrink_only == ("LayerNorm 'block.norm'",)
    assert "when shrinking" in describe_groups(list(groups.values()))


def test_a_split_after_the_producer_is_refused_with_its_reason() -> None:
    groups = _by_name(discover_groups(Net(chunk=True), torch.randn(2, 3, 8, 8)))
    assert not groups["stem:out"].prunable
    assert "reads only some of the group's channels" in groups["stem:out"].reason
    assert groups["a:out"].prunable  # the convs after the split and the cat still prune


def test_overridden_forward_that_moves_channels_is_refused() -> None:
    groups = _by_name(discover_groups(Net(BadNormAct), torch.randn(2, 3, 8, 8)))
    reason = groups["stem:out"].reason
    assert not groups["stem:out"].prunable and "FlipBackward0" in reason, reason


@pytest.mark.parametrize("prune_skip", [False, True])
def test_chase_on_the_families_slims_exactly(prune_skip: bool) -> None:
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(2, 3, 8, 8)
    engine = chase.prune_channels_once(model, x, 0.5, prune_skip=prune_skip)
    assert engine.channels is not None and engine.channels.live < engine.channels.total
    slim = chase.slim(model, engine).eval()
    with torch.no_grad():
        ref, got = model(x), slim(x)
    assert float((ref - got).abs().max() / ref.abs().max()) <= 1e-5
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in model.parameters())


def test_layer_scale_is_cut_with_its_channels() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.gamma = nn.Conv2d(3, 8, 3, padding=1), nn.Parameter(torch.rand(8, 1, 1))
            self.out = nn.Conv2d(8, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.gamma * self.conv(x)).mean((2, 3))

    model, x = Scaled().eval(), torch.randn(2, 3, 6, 6)
    (g,) = [g for g in discover_groups(model, x) if g.name == "conv:out"]
    assert g.prunable and ("gamma", 0, "param") in {(m.tensor, m.axis, m.role) for m in g.members}
    engine = chase.prune_channels_once(model, x, 0.5)
    slim = chase.slim(model, engine)
    assert slim.gamma.shape[0] == slim.conv.out_channels < 8
    with torch.no_grad():
        assert torch.allclose(model(x), slim(x), atol=1e-6)


def test_discovery_time_limit_gives_a_clear_result() -> None:
    model = Net()
    groups = discover_groups(model, torch.randn(2, 3, 8, 8), time_limit_s=1e-4)
    assert len(groups) == 1 and not groups[0].prunable
    assert groups[0].reason.startswith("nothing prunable: discovery stopped after")
    cfg = SparsityConfig(channels=ChannelConfig(sparsity=0.5), total_steps=10)
    engine = chase.sparsify(model, None, cfg, groups=groups, attach=False)
    assert engine.channels is not None and engine.channels.total == 0


def test_choose_removals_counts_units_as_physical_channels() -> None:
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.05, 0.06])
    gid = torch.tensor([0, 0, 0, 0, 1, 1])
    alive, floors = torch.ones(6, dtype=torch.bool), torch.tensor([1, 1])
    plain = choose_removals(scores, alive, gid, floors, 3)
    assert plain.tolist() == [True, True, False, False, True, False]
    same = choose_removals(scores, alive, gid, floors, 3, unit=torch.tensor([1, 1]))
    assert torch.equal(plain, same)
    # group 1's channels are units of 4 physical channels: one of them uses up n = 4
    units = choose_removals(scores, alive, gid, floors, 4, unit=torch.tensor([1, 4]))
    assert units.tolist() == [False, False, False, False, True, False]
    # round_to 8 with units of 4: group 1 must change by 2 units at a time (floor 1: cannot)
    rounded = choose_removals(scores, alive, gid, floors, 8, round_to=8, unit=torch.tensor([8, 4]))
    assert not rounded[4:].any()


def test_a_layernorm_stream_is_pruned_only_when_the_model_shrinks() -> None:
    """Removing a channel from a LayerNorm-normalised stream changes the statistics of the
    others unless it leaves the tensor: a masked run keeps it, a shrinking run prunes it and
    trains on (the shrunk model is its own slim model)."""
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)

    def run(shrink: bool):
        model = Net()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        channels = chase.ChannelConfig(
            sparsity=0.5, every=2, end=4, offset=1, shrink=shrink, prune_skip=True
        )
        config = chase.SparsityConfig(density=0.5, updater="rigl", update_every=2,
                                      total_steps=6, channels=channels)  # fmt: skip
        engine = chase.sparsify(model, optimizer, config, example_inputs=x)
        for _ in range(4):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
        engine.check()
        return model, engine

    _, masked = run(False)
    assert masked.channels is not None and "LayerNorm" in masked.channels.skipped["proj:out"]
    model, engine = run(True)
    assert engine.channels is not None and "proj:out" not in engine.channels.skipped
    assert len(engine.shrinks) == 2  # events after steps 1 and 3, both shrinking
    assert model.block.norm.normalized_shape[0] < 12  # the stream really shrank
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), chase.slim(model, engine)(x))


class _NormLast(nn.Module):
    """conv → conv → LayerNorm over the channels → head: the last prunable group is the
    LayerNorm stream."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.proj = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 1)
        self.norm, self.head = nn.LayerNorm(12), nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(torch.relu(self.stem(x))).permute(0, 2, 3, 1)
        return self.head(self.norm(h).mean((1, 2)))


def test_exclude_last_names_the_same_group_whether_or_not_the_model_shrinks() -> None:
    """``exclude: [last]`` means the model's last prunable group, chosen before the groups a
    masked engine cannot prune (LayerNorm streams) are set aside, so the knob keeps one
    meaning, and a masked engine still prunes the group before it."""
    x = torch.randn(4, 3, 8, 8)
    excluded = {}
    for shrink in (False, True):
        model = _NormLast()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        channels = chase.ChannelConfig(sparsity=0.5, shrink=shrink, exclude=["last"])
        config = chase.SparsityConfig(density=0.5, total_steps=4, channels=channels)
        engine = chase.sparsify(model, optimizer, config, example_inputs=x, attach=False)
        assert engine.channels is not None
        skipped = engine.channels.skipped
        excluded[shrink] = [n for n, why in skipped.items() if "'last'" in why]
        assert "stem:out" not in skipped
    assert excluded[False] == excluded[True] == ["proj:out"]
