"""Contract tests, parametrised over the updater registry: a new updater is tested automatically.

The checks themselves are plain functions in ``tests/contracts.py``; what differs between
updaters (MEST's soft bound, static's frozen topology) is read from the updater.
"""

import pytest
import torch

import contracts
import nets
from chase import SparsityConfig
from chase.errors import ConfigError
from chase.sparsity import UPDATERS
from chase.sparsity.schedules import mest_density
from contracts import EVERY, SCOPES, make, snapshot

NAMES = UPDATERS.names()


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("updater", NAMES)
@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_budget_exact_and_masked_state_zero(updater, scope, opt):
    contracts.updater_budget_exact_and_masked_state_zero(updater, scope, opt)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("updater", NAMES)
def test_nothing_changes_between_updates(updater, scope):
    contracts.updater_quiet_between_updates(updater, scope)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("updater", NAMES)
def test_drop_fraction_zero_changes_nothing(updater, scope):
    contracts.updater_zero_drop_changes_nothing(updater, scope)


@pytest.mark.parametrize("updater", NAMES)
def test_global_update_with_zero_drop_fraction_keeps_moved_counts(updater):
    contracts.updater_zero_drop_keeps_moved_counts(updater)


@pytest.mark.parametrize("updater", NAMES)
def test_layer_scope_keeps_every_layer_count(updater):
    contracts.updater_layer_scope_keeps_counts(updater)


@pytest.mark.parametrize("updater", NAMES)
def test_topology_changes_and_global_scope_moves_counts(updater):
    contracts.updater_rewires_as_declared(updater)


@pytest.mark.parametrize("updater", NAMES)
def test_grown_weights_start_at_zero_with_zero_state(updater):
    contracts.updater_grows_at_zero(updater)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("updater", NAMES)
def test_same_seed_same_masks_other_seed_different(updater, scope):
    contracts.updater_seeded(updater, scope)


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


def test_mest_ceiling_is_its_soft_bound_in_phase_a_and_the_budget_after():
    cfg = SparsityConfig(density=0.1, updater="mest", total_steps=100, mest_end=50)
    mest = UPDATERS["mest"](cfg)
    assert mest.ceiling(10, 300, 3000) == round(mest_density(cfg, 10) * 3000) > 300
    assert mest.ceiling(50, 300, 3000) == mest.ceiling(90, 300, 3000) == 300
    assert all(UPDATERS[n](cfg).ceiling(10, 300, 3000) == 300 for n in NAMES if n != "mest")


def test_updaters_own_their_config_checks():
    """MEST's rules live in MEST.check_config and name keys with the caller's prefix."""
    with pytest.raises(ConfigError, match=r"^SparsityConfig\.mest_overshoot = 0\.05 .*at most"):
        SparsityConfig(density=0.98, updater="mest", total_steps=10)
    with pytest.raises(ConfigError, match=r"^sparsity\.mest_overshoot = 0\.05 .*at most"):
        SparsityConfig.from_dict(
            {"density": 0.98, "updater": "mest", "total_steps": 10}, "sparsity."
        )
    with pytest.raises(ConfigError, match=r"^sparsity\.total_steps = None .*'mest'"):
        SparsityConfig.from_dict({"updater": "mest", "drop_schedule": "constant"}, "sparsity.")
    SparsityConfig(updater="static")  # static never reads the drop schedule
