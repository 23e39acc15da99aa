import logging

import pytest
import torch

import chase
import contracts
import nets
from chase import ChannelConfig, SparsityConfig
from chase.errors import CheckpointError, ConfigError
from chase.sparsity.channels import choose_removals
from chase.sparsity.schedules import channel_sparsity
from chase.sparsity.scores import SCORES, Slot, channel_stats
from contracts import channel_run as run


def test_scores_match_a_hand_computed_example():
    # one group of 3 channels fed by two producers: a 1x1 conv (3 out, 2 in) and a Linear
    # whose output rows come in pairs (k = 2 positions per channel)
    conv = torch.tensor([[1.0, -2.0], [0.5, 0.0], [3.0, 3.0]]).view(3, 2, 1, 1)
    conv_mask = torch.tensor([[1, 1], [1, 0], [0, 1]], dtype=torch.bool).view(3, 2, 1, 1)
    lin = torch.tensor([[1.0], [1.0], [-4.0], [0.0], [2.0], [2.0]])
    lin_mask = torch.tensor([[1], [0], [1], [1], [0], [0]], dtype=torch.bool)
    params = {"conv.weight": conv, "fc.weight": lin}
    masks = {"conv.weight": conv_mask, "fc.weight": lin_mask}
    slots = [
        Slot("conv.weight", 0, torch.arange(3).view(3, 1), 0),
        Slot("fc.weight", 0, torch.arange(6).view(3, 2), 0),
    ]
    stats = channel_stats(slots, params, masks, 3)
    # |W*M| sums: ch0 = 1+2 + 1 = 4; ch1 = 0.5 + 4+0 = 4.5; ch2 = 3 + 0 = 3
    # active: ch0 = 2+1 = 3; ch1 = 1+2 = 3; ch2 = 1+0 = 1; original size: 2 + 2 = 4 each
    g = torch.Generator()
    assert SCORES["umm"](stats, g).tolist() == [1.0, 1.125, 0.75]
    assert SCORES["mask_mean"](stats, g).tolist() == pytest.approx([4 / 3, 1.5, 3.0])
    assert SCORES["density"](stats, g).tolist() == [0.75, 0.75, 0.25]
    r = SCORES["random"](stats, torch.Generator().manual_seed(1))
    assert torch.equal(r, SCORES["random"](stats, torch.Generator().manual_seed(1)))
    assert stats.umm().tolist() == [1.0, 1.125, 0.75]  # the one UMM, also used by the report


def test_water_filling_respects_floors_and_order():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.05, 0.06, 0.9, 0.8])
    gid = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    alive = torch.ones(8, dtype=torch.bool)
    floors = torch.tensor([1, 3])
    out = choose_removals(scores, alive, gid, floors, n=4)
    # group 1 may lose only one channel (its lowest, 0.05); the rest comes from group 0
    assert out.nonzero().squeeze(1).tolist() == [0, 1, 2, 4]
    # never more than what the floors allow
    out = choose_removals(scores, alive, gid, floors, n=100)
    assert int(out.sum()) == 4
    # ties go to the lower group, then lower index
    out = choose_removals(torch.zeros(8), alive, gid, torch.tensor([1, 1]), n=2)
    assert out.nonzero().squeeze(1).tolist() == [0, 1]
    # dead channels are never chosen again
    alive[0] = False
    out = choose_removals(scores, alive, gid, floors, n=1)
    assert out.nonzero().squeeze(1).tolist() == [4]


def test_round_to_keeps_live_counts_multiples():
    torch.manual_seed(0)
    scores = torch.rand(40)
    gid = torch.tensor([0] * 20 + [1] * 12 + [2] * 8)
    alive = torch.ones(40, dtype=torch.bool)
    floors = torch.tensor([4, 4, 8])
    out = choose_removals(scores, alive, gid, floors, n=17, round_to=4)
    live = torch.bincount(gid[~out], minlength=3)
    assert int(out.sum()) <= 17
    assert all(int(v) % 4 == 0 for v in live)
    assert bool((live >= floors).all())


def test_cubic_schedule():
    assert channel_sparsity(0.5, 0, 100) == 0.0
    assert channel_sparsity(0.5, 100, 100) == 0.5
    assert channel_sparsity(0.5, 500, 100) == 0.5
    assert channel_sparsity(0.5, 50, 100) == pytest.approx(0.5 * (1 - 0.5**3))


@pytest.mark.parametrize("score", SCORES.names())
def test_schedule_is_exact_floors_hold_and_channels_never_return(score):
    contracts.score_drives_the_schedule(score)


@pytest.mark.parametrize("score", SCORES.names())
def test_scores_are_finite_and_seeded(score):
    contracts.score_values(score)


def test_a_budget_the_live_channels_cannot_hold_is_filled_and_warned_once(caplog):
    with caplog.at_level(logging.WARNING, logger="chase.sparsity.engine"):
        engine, _ = run(density=0.5, sparsity=0.9, min_keep_ratio=1.0)
    capacity = sum(engine.masks.capacity(n) for n in engine.layers)
    assert capacity < engine.budget
    assert sum(engine.masks.counts()) == capacity  # every live weight is active
    engine.check()
    warnings = [r for r in caplog.records if "fewer than the budget" in r.getMessage()]
    assert len(warnings) == 1


def test_no_capacity_warning_while_mest_overshoots_above_what_live_channels_hold(caplog):
    with caplog.at_level(logging.WARNING, logger="chase.sparsity.engine"):
        engine, _ = run(updater="mest", sparsity=0.5, engine_kw={"mest_overshoot": 0.6})
    capacity = sum(engine.masks.capacity(n) for n in engine.layers)
    assert engine.budget < capacity < round(0.8 * engine.total)  # the phase-A bound bites
    assert not [r for r in caplog.records if "fewer than the budget" in r.getMessage()]


def test_same_seed_same_channels():
    a, _ = run(seed=3, steps=12)
    b, _ = run(seed=3, steps=12)
    assert torch.equal(a.channels.alive, b.channels.alive)
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.layers)


def test_removed_channels_zero_params_and_state():
    engine, _ = run(steps=12)
    removed = {n: ~v for n, v in engine.channels.keep().items()}
    for g in engine.channels.groups:
        gone = removed[g.name]
        if not gone.any():
            continue
        for m in g.members:
            if m.role in ("param", "producer"):
                t = engine.masks.params[m.tensor].detach().movedim(m.axis, 0)
                assert bool((t[m.index[gone].reshape(-1)] == 0).all()), m.tensor


def test_summary_and_report():
    engine, _ = run(steps=12)
    ch = engine.summary()["channels"]
    assert set(ch) == {"live", "total", "sparsity", "groups"}
    assert ch["live"] == sum(g["live"] for g in ch["groups"].values())
    assert ch["sparsity"] == pytest.approx(1 - ch["live"] / ch["total"])
    report = engine.channel_report()
    assert 0.0 <= report["amenable_fraction"] <= 1.0
    group = next(iter(report["groups"].values()))
    assert len(group["channel_density"]) == group["total"] == len(group["channel_umm"])
    assert report["live"] >= ch["live"]  # the report also covers groups that are never pruned


def test_channel_config_errors():
    case = nets.CASES["resnet20"]
    model = case.build()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = SparsityConfig(total_steps=10, channels=ChannelConfig(exclude=["nope.*"]))
    with pytest.raises(ConfigError, match=r"exclude entry 'nope\.\*' matches no layer"):
        chase.sparsify(model, opt, cfg, example_inputs=case.inputs())
    with pytest.raises(ConfigError, match="pass example_inputs"):
        chase.sparsify(model, opt, SparsityConfig(total_steps=10, channels=ChannelConfig()))


def test_exclude_and_round_to_in_a_run():
    engine, _ = run(steps=24, exclude=["0"], round_to=4)
    ch = engine.channels
    assert any("excluded" in r for r in ch.skipped.values())
    for g, live in zip(ch.groups, ch.live_per_group().tolist()):
        assert live == g.size or live % 4 == 0


def test_channel_state_round_trip():
    engine, _ = run(steps=12)
    state = engine.state_dict()
    fresh, _ = run(steps=1)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.channels.alive, engine.channels.alive)
    assert fresh.channels.live == engine.channels.live
    for n in engine.layers:
        assert torch.equal(fresh.masks[n], engine.masks[n])
        r1, r2 = fresh.masks.region(n), engine.masks.region(n)
        assert (r1 is None) == (r2 is None)


def test_channel_state_carries_a_version_and_the_old_layout_still_loads():
    engine, _ = run(steps=12)
    state = engine.state_dict()
    assert state["channels"]["version"] == 1
    old = {k: v for k, v in state["channels"].items() if k != "version"}
    fresh, _ = run(steps=1)
    fresh.load_state_dict({**state, "channels": old})
    assert torch.equal(fresh.channels.alive, engine.channels.alive)
    with pytest.raises(CheckpointError, match="channel pruner state has version 7"):
        fresh.load_state_dict({**state, "channels": {**old, "version": 7}})


def test_pruner_checks_and_resyncs_its_own_state():
    """After ``alive`` is overwritten in place (what a DDP broadcast does), ``check`` names
    the stale live count and ``resync`` rebuilds it and the masks' channel restrictions."""
    engine, _ = run(steps=12)
    ch = engine.channels
    reference, _ = run(steps=12)
    assert ch.check() == []
    ch.alive.fill_(True)
    assert ch.check() == ["channel pruner's live count disagrees with its keep vector"]
    ch.alive.copy_(reference.channels.alive)
    engine.masks.clear_channels()
    assert all(engine.masks.region(n) is None for n in engine.layers)
    ch.resync()
    assert ch.check() == [] and ch.live == reference.channels.live
    for n in engine.layers:
        r1, r2 = engine.masks.region(n), reference.masks.region(n)
        assert (r1 is None) == (r2 is None)
        assert r1 is None or torch.equal(r1, r2)
    engine.check()


def test_mask_set_lists_broken_masks():
    engine, _ = run(steps=12)
    assert engine.masks.check() == []
    name = next(n for n in engine.layers if engine.masks.region(n) is not None)
    with torch.no_grad():
        engine.masks.set(name, torch.ones_like(engine.masks[name]))
    assert engine.masks.check() == [f"{name}: active weights inside removed channels"]


def test_exclude_last_names_the_last_prunable_group():
    """VGG presets and the authors' VGG command lines keep the last conv: ``exclude: [last]``."""
    from chase.models import create_model

    def engine(exclude):
        model = create_model("vgg11")
        channels = ChannelConfig(sparsity=0.5, every=1, end=1, offset=0, exclude=exclude)
        config = SparsityConfig(updater="static", total_steps=1, channels=channels)
        return chase.sparsify(model, None, config, example_inputs=torch.randn(2, 3, 32, 32),
                              attach=False)  # fmt: skip

    plain, kept = engine(()).channels, engine(("last",)).channels
    assert plain is not None and kept is not None
    last = plain.groups[-1].name
    assert last.startswith("features.") and last == "features.25:out"  # vgg11's last conv
    assert [g.name for g in kept.groups] == [g.name for g in plain.groups[:-1]]
    assert kept.skipped[last].startswith("excluded by 'last'")
