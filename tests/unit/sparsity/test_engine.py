import pytest
import torch
from torch import nn

import contracts
import nets
from chase import SparsityConfig, sparsify
from chase.errors import CheckpointError, ConfigError, InvariantError
from chase.sparsity import UPDATERS
from contracts import build


@pytest.mark.parametrize("updater", UPDATERS.names())
@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_resume_from_state_dicts_is_bit_identical(updater, opt):
    contracts.updater_resumes_bit_identically(updater, opt)


def test_state_dict_rejects_other_versions_and_models():
    _, _, engine = build()
    state = engine.state_dict()
    with pytest.raises(CheckpointError, match="version"):
        engine.load_state_dict({**state, "version": 99})
    other = sparsify(nets.mlp(), None, SparsityConfig(updater="static"), attach=False)
    with pytest.raises(CheckpointError, match="other layers"):
        other.load_state_dict(state)
    future = {**state, "updater": {**state["updater"], "version": 2}}
    with pytest.raises(CheckpointError, match=r"updater 'rigl' state has version 2"):
        engine.load_state_dict(future)


@pytest.mark.parametrize("updater", ["snfs", "rigl"])
def test_sub_states_carry_versions_and_the_old_layout_still_loads(updater):
    """Checkpoints written before sub-states had versions (no 'version' key) load as before."""
    model, optimizer, engine = build(updater)
    nets.train_steps(model, optimizer, 6)
    state = engine.state_dict()
    assert state["version"] == 1 and state["updater"]["version"] == 1
    old = {**state, "updater": {k: v for k, v in state["updater"].items() if k != "version"}}
    _, _, fresh = build(updater, seed=5)
    fresh.load_state_dict(old)
    assert all(torch.equal(fresh.masks[n], engine.masks[n]) for n in engine.layers)
    if updater == "snfs":
        assert set(fresh.updater.ema) == set(engine.updater.ema)


def test_steps_skipped_by_grad_scaler_do_not_advance_the_engine():
    model, optimizer, engine = build()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)
    x, y = nets.batch(model, 0)
    optimizer.zero_grad()
    scaler.scale(nn.functional.cross_entropy(model(x), y) * float("inf")).backward()
    scaler.step(optimizer)
    scaler.update()
    assert engine.step == 0
    optimizer.zero_grad()
    scaler.scale(nn.functional.cross_entropy(model(x), y)).backward()
    scaler.step(optimizer)
    scaler.update()
    assert engine.step == 1
    engine.check()


def test_gradient_accumulation_counts_optimizer_steps_only():
    model, optimizer, engine = build("rigl", "layer")
    for step in range(8):
        optimizer.zero_grad()
        for micro in range(3):
            x, y = nets.batch(model, 3 * step + micro)
            (nn.functional.cross_entropy(model(x), y) / 3).backward()
        optimizer.step()
        engine.check()
    assert engine.step == 8
    assert sum(engine.masks.counts()) == engine.budget


def test_attach_false_needs_explicit_after_step():
    model = nets.vgg_style()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = sparsify(
        model,
        optimizer,
        SparsityConfig(updater="set", update_every=2, total_steps=10),
        attach=False,
    )
    nets.train_steps(model, optimizer, 3)
    assert engine.step == 0
    engine.after_step()
    assert engine.step == 1
    with pytest.raises(ConfigError, match="attach=True needs an optimizer"):
        sparsify(nets.mlp(), None, SparsityConfig(updater="static"))


def test_detach_stops_the_hook():
    model, optimizer, engine = build()
    nets.train_steps(model, optimizer, 2)
    engine.detach()
    nets.train_steps(model, optimizer, 2, start=2)
    assert engine.step == 2


def test_check_reports_broken_invariants():
    model, optimizer, engine = build()
    nets.train_steps(model, optimizer, 4)
    engine.check()
    name = engine.layers[1]
    with torch.no_grad():
        param = engine.masks.params[name]
        flat_mask = engine.masks[name].reshape(-1)
        param.view(-1)[(~flat_mask).nonzero()[0]] = 1.0
    with pytest.raises(InvariantError, match="masked weights are not zero"):
        engine.check()
    engine.masks.apply()
    engine.check()
    engine.masks.set(name, torch.ones_like(engine.masks[name]))
    with pytest.raises(InvariantError, match="expected exactly"):
        engine.check()


def test_summary_is_plain_data():
    model, optimizer, engine = build()
    nets.train_steps(model, optimizer, 5)
    s = engine.summary()
    assert s["step"] == 5 and s["budget"] == engine.budget == s["active"]
    assert s["density"] == pytest.approx(engine.budget / engine.total)
    assert set(s["layers"]) == set(engine.layers)
    for layer in s["layers"].values():
        assert set(layer) == {"active", "total", "density"}
        assert isinstance(layer["active"], int)
    assert "channels" not in s


def test_masks_keyed_without_ddp_prefix_and_model_unwrapped():
    model = nets.mlp()
    wrapped = nn.DataParallel(model)
    engine = sparsify(wrapped, None, SparsityConfig(updater="static"), attach=False)
    assert engine.layers == ["1.weight", "3.weight", "5.weight"]
    assert set(engine.masks) == set(engine.layers)


def test_trajectory_records_every_change():
    model, optimizer, engine = build("rigl", "global")
    nets.train_steps(model, optimizer, 12)
    assert [t for t, _ in engine.trajectory] == [0, 4, 8, 12]
    assert all(sum(c) == engine.budget for _, c in engine.trajectory)
