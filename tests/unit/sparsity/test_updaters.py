"""Contract tests, parametrised over the updater registry: a new updater is tested automatically."""

import pytest
import torch

import nets
from chase import SparsityConfig, sparsify
from chase.sparsity import UPDATERS
from chase.sparsity.schedules import mest_density

SCOPES = ["layer", "global"]
STEPS, EVERY = 40, 5


def make(updater, scope, opt="sgd", seed=0, model=None, **kw):
    torch.manual_seed(0)
    model = model if model is not None else nets.vgg_style()
    if opt == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    cfg = dict(
        density=0.2,
        updater=updater,
        scope=scope,
        update_every=EVERY,
        total_steps=STEPS,
        drop_fraction=0.3,
        seed=seed,
    )
    cfg.update(kw)
    engine = sparsify(model, optimizer, SparsityConfig(**cfg))
    return model, optimizer, engine


def snapshot(engine):
    return {n: m.clone() for n, m in engine.masks.items()}


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("updater", sorted(UPDATERS))
@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_budget_exact_and_masked_state_zero(updater, scope, opt):
    model, optimizer, engine = make(updater, scope, opt)
    seen = []

    def after(step):
        engine.check()
        active = sum(engine.masks.counts())
        if step % EVERY == 0:
            expected = engine.budget
            if updater == "mest" and step < STEPS:
                expected = round(mest_density(engine.config, step) * engine.total)
            assert active == expected, (step, active, expected)
            seen.append(step)
        for name in engine.layers:
            mask = engine.masks[name]
            param = engine.masks.params[name]
            assert bool((param.detach()[~mask] == 0).all())
            for value in optimizer.state[param].values():
                if torch.is_tensor(value) and value.shape == param.shape:
                    assert bool((value[~mask] == 0).all())

    nets.train_steps(model, optimizer, STEPS, after=after)
    assert seen == list(range(EVERY, STEPS + 1, EVERY))


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("updater", sorted(UPDATERS))
def test_nothing_changes_between_updates(updater, scope):
    model, optimizer, engine = make(updater, scope)
    before = {}

    def after(step):
        now = snapshot(engine)
        if before and step % EVERY != 0:
            assert all(torch.equal(now[n], before[n]) for n in now), step
        before.clear()
        before.update(now)

    nets.train_steps(model, optimizer, 2 * EVERY + 2, after=after)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("updater", sorted(UPDATERS))
def test_drop_fraction_zero_changes_nothing(updater, scope):
    model, optimizer, engine = make(updater, scope, drop_fraction=0.0, mest_overshoot=0.0)
    start = snapshot(engine)
    nets.train_steps(model, optimizer, 3 * EVERY)
    assert all(torch.equal(engine.masks[n], start[n]) for n in start)


@pytest.mark.parametrize("updater", sorted(set(UPDATERS) - {"static"}))
def test_global_update_with_zero_drop_fraction_keeps_moved_counts(updater):
    """ζ reaches 0 at the last step (cosine schedule); by then global scope has moved counts
    away from the initial allocation, and an update with ζ = 0 must still change nothing.
    (MEST ends its overshooting phase A at half time so that the end is its RigL phase.)"""
    kw = {"mest_end": STEPS // 2} if updater == "mest" else {}
    model, optimizer, engine = make(updater, "global", **kw)
    start = engine.masks.counts()
    seen = {}

    def after(step):
        if step in (STEPS - EVERY, STEPS):
            seen[step] = snapshot(engine)

    nets.train_steps(model, optimizer, STEPS, after=after)
    before, last = seen[STEPS - EVERY], seen[STEPS]
    assert [int(before[n].sum()) for n in engine.layers] != start
    assert all(torch.equal(before[n], last[n]) for n in before)


@pytest.mark.parametrize("updater", sorted(UPDATERS))
def test_layer_scope_keeps_every_layer_count(updater):
    model, optimizer, engine = make(updater, "layer")
    start = engine.masks.counts()

    def after(step):
        if step % EVERY == 0 and not (updater == "mest" and step < STEPS):
            assert engine.masks.counts() == start

    nets.train_steps(model, optimizer, STEPS, after=after)


@pytest.mark.parametrize("updater", sorted(set(UPDATERS) - {"static"}))
def test_topology_changes_and_global_scope_moves_counts(updater):
    model, optimizer, engine = make(updater, "global")
    start_masks, start_counts = snapshot(engine), engine.masks.counts()
    nets.train_steps(model, optimizer, 4 * EVERY)
    assert any(not torch.equal(engine.masks[n], start_masks[n]) for n in start_masks)
    assert engine.masks.counts() != start_counts


@pytest.mark.parametrize("updater", sorted(set(UPDATERS) - {"static"}))
def test_grown_weights_start_at_zero_with_zero_state(updater):
    model, optimizer, engine = make(updater, "layer")
    before = {}

    def after(step):
        if step % EVERY == 0 and before:
            for name in engine.layers:
                grown = engine.masks[name] & ~before[name]
                param = engine.masks.params[name]
                assert bool((param.detach()[grown] == 0).all())
                assert bool((optimizer.state[param]["momentum_buffer"][grown] == 0).all())
        before.clear()
        before.update(snapshot(engine))

    nets.train_steps(model, optimizer, 2 * EVERY)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("updater", sorted(UPDATERS))
def test_same_seed_same_masks_other_seed_different(updater, scope):
    runs = []
    for seed in (3, 3, 4):
        model, optimizer, engine = make(updater, scope, seed=seed)
        nets.train_steps(model, optimizer, 2 * EVERY)
        runs.append(snapshot(engine))
    assert all(torch.equal(runs[0][n], runs[1][n]) for n in runs[0])
    assert any(not torch.equal(runs[0][n], runs[2][n]) for n in runs[0])


def test_dst_end_freezes_topology():
    model, optimizer, engine = make("rigl", "global", dst_end=2 * EVERY)
    nets.train_steps(model, optimizer, 2 * EVERY)
    frozen = snapshot(engine)
    nets.train_steps(model, optimizer, 2 * EVERY, seed=1)
    assert all(torch.equal(engine.masks[n], frozen[n]) for n in frozen)


def test_mest_prunes_to_budget_before_growing():
    from chase.sparsity.updaters import MEST, Context, Layer

    cfg = SparsityConfig(
        density=0.1, updater="mest", scope="global", total_steps=100, update_every=10
    )
    layers = [
        Layer(f"l{i}", torch.randn(50, 20), torch.rand(50, 20) < 0.13, None, 0, 1000, 100, False)
        for i in range(3)
    ]
    for lay in layers:
        lay.active = int(lay.mask.sum())
    ctx = Context(step=10, total=3000, budget_free=300, pinned=0, generator=torch.Generator())
    plan = MEST(cfg).plan(ctx, layers)
    assert plan.keep == 300
    assert plan.keep + plan.grow == round(mest_density(cfg, 10) * 3000)
    cfg_layer = SparsityConfig(**{**cfg.to_dict(), "scope": "layer", "channels": None})
    plan = MEST(cfg_layer).plan(ctx, layers)
    assert plan.keep == [100, 100, 100]
    assert sum(plan.keep) + sum(plan.grow) == round(mest_density(cfg, 10) * 3000)


def test_mest_phase_b_is_rigl_with_its_own_schedule():
    model, optimizer, engine = make(
        "mest", "global", mest_end=2 * EVERY, drop_fraction=0.5, drop_fraction_end=0.005
    )

    def after(step):
        if step % EVERY == 0 and step >= 2 * EVERY:
            assert sum(engine.masks.counts()) == engine.budget

    nets.train_steps(model, optimizer, 4 * EVERY, after=after)


def test_snfs_keeps_a_gradient_average():
    model, optimizer, engine = make("snfs", "global")
    nets.train_steps(model, optimizer, 3)
    ema = engine.updater.ema
    assert set(ema) == set(engine.layers)
    assert all(float(t.abs().sum()) > 0 for t in ema.values())
