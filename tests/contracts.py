"""Contract checks for registry entries, as plain functions of a registered name.

Each raises ``AssertionError`` when an entry breaks what its registry promises. The sparsity
tests run them over every registered name, and over entries registered inside a test
(``tests/unit/sparsity/test_registries.py``), so a new updater, channel score, allocation or
drop schedule is one function plus one decorator and is checked without a test of its own.
What differs between entries is read from the entry (an updater's ``ceiling`` and
``rewires``, a schedule's ``decays``), never from its name.
"""

from __future__ import annotations

import io
import itertools
import math
from typing import Any

import pytest
import torch

import chase
import nets
from chase import ChannelConfig, SparsityConfig, sparsify
from chase.errors import ConfigError
from chase.sparsity import UPDATERS
from chase.sparsity.allocation import layer_score
from chase.sparsity.schedules import DROP_SCHEDULES, channel_sparsity, decay
from chase.sparsity.scores import SCORES, ChannelStats

SCOPES = ("layer", "global")
STEPS, EVERY = 40, 5

# -- updaters --------------------------------------------------------------------------------


def make(updater: str, scope: str, opt: str = "sgd", seed: int = 0, model=None, **kw: Any):
    """A VGG-style model, its optimizer and an engine with ``updater`` (updates every 5 steps)."""
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


def snapshot(engine) -> dict[str, torch.Tensor]:
    return {n: m.clone() for n, m in engine.masks.items()}


def ceiling(engine, step: int) -> int:
    """What the engine's updater allows right after an update at ``step``."""
    return engine.updater.ceiling(step, engine.budget, engine.total)


def updater_budget_exact_and_masked_state_zero(
    updater: str, scope: str, opt: str = "sgd", **kw: Any
) -> None:
    """After every update the active count is exactly the updater's ceiling (the budget, or a
    soft bound such as MEST's); ``engine.check()`` holds at every step; masked weights and
    their optimizer state are zero."""
    model, optimizer, engine = make(updater, scope, opt, **kw)
    seen = []

    def after(step):
        engine.check()
        active = sum(engine.masks.counts())
        if step % EVERY == 0:
            assert active == ceiling(engine, step), (step, active, ceiling(engine, step))
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


def updater_quiet_between_updates(updater: str, scope: str) -> None:
    """Masks change only at update steps."""
    model, optimizer, engine = make(updater, scope)
    before: dict[str, torch.Tensor] = {}

    def after(step):
        now = snapshot(engine)
        if before and step % EVERY != 0:
            assert all(torch.equal(now[n], before[n]) for n in now), step
        before.clear()
        before.update(now)

    nets.train_steps(model, optimizer, 2 * EVERY + 2, after=after)


def updater_zero_drop_changes_nothing(updater: str, scope: str) -> None:
    """With ζ = 0 (and no MEST overshoot) an update changes nothing."""
    model, optimizer, engine = make(updater, scope, drop_fraction=0.0, mest_overshoot=0.0)
    start = snapshot(engine)
    nets.train_steps(model, optimizer, 3 * EVERY)
    assert all(torch.equal(engine.masks[n], start[n]) for n in start)


def updater_zero_drop_keeps_moved_counts(updater: str) -> None:
    """ζ reaches 0 at the last step (cosine schedule); by then global scope has moved counts
    away from the initial allocation, and an update with ζ = 0 must still change nothing.
    (``mest_end`` ends MEST's overshooting phase A at half time; an updater whose ceiling is
    above the budget at the end cannot keep its masks and is not held to this.)"""
    model, optimizer, engine = make(updater, "global", mest_end=STEPS // 2)
    if ceiling(engine, STEPS - EVERY) != engine.budget:
        pytest.skip(f"{updater}: its ceiling at the end is above the budget")
    start = engine.masks.counts()
    seen = {}

    def after(step):
        if step in (STEPS - EVERY, STEPS):
            seen[step] = snapshot(engine)

    nets.train_steps(model, optimizer, STEPS, after=after)
    before, last = seen[STEPS - EVERY], seen[STEPS]
    moved = [int(before[n].sum()) for n in engine.layers] != start
    assert moved == engine.updater.rewires
    assert all(torch.equal(before[n], last[n]) for n in before)


def updater_layer_scope_keeps_counts(updater: str) -> None:
    """Under ``scope: layer`` every layer keeps its count at updates bounded by the budget."""
    model, optimizer, engine = make(updater, "layer")
    start = engine.masks.counts()

    def after(step):
        if step % EVERY == 0 and ceiling(engine, step) == engine.budget:
            assert engine.masks.counts() == start

    nets.train_steps(model, optimizer, STEPS, after=after)


def updater_rewires_as_declared(updater: str) -> None:
    """An updater that ``rewires`` changes the topology and, under global scope, moves counts
    between layers; one that does not never changes a mask."""
    model, optimizer, engine = make(updater, "global")
    start_masks, start_counts = snapshot(engine), engine.masks.counts()
    nets.train_steps(model, optimizer, 4 * EVERY)
    changed = any(not torch.equal(engine.masks[n], start_masks[n]) for n in start_masks)
    assert changed == engine.updater.rewires
    assert (engine.masks.counts() != start_counts) == engine.updater.rewires


def updater_grows_at_zero(updater: str) -> None:
    """A grown weight starts at 0 with zero optimizer state."""
    model, optimizer, engine = make(updater, "layer")
    before: dict[str, torch.Tensor] = {}

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


def updater_seeded(updater: str, scope: str) -> None:
    """The same seed gives the same masks, another seed other masks."""
    runs = []
    for seed in (3, 3, 4):
        model, optimizer, engine = make(updater, scope, seed=seed)
        nets.train_steps(model, optimizer, 2 * EVERY)
        runs.append(snapshot(engine))
    assert all(torch.equal(runs[0][n], runs[1][n]) for n in runs[0])
    assert any(not torch.equal(runs[0][n], runs[2][n]) for n in runs[0])


def build(updater="rigl", scope="global", opt="sgd", seed=0, **kw: Any):
    """A VGG-style model, its optimizer (Nesterov SGD or AdamW) and an engine updating every
    4 of 24 steps."""
    torch.manual_seed(1)
    model = nets.vgg_style()
    if opt == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    cfg = SparsityConfig(
        density=0.15, updater=updater, scope=scope, update_every=4, total_steps=24, seed=seed, **kw
    )
    return model, optimizer, sparsify(model, optimizer, cfg)


def updater_resumes_bit_identically(updater: str, opt: str = "sgd") -> None:
    """Model, optimizer and engine state saved half way (through ``torch.save`` and
    ``weights_only`` loading) and loaded into a fresh engine continue bit for bit."""
    model, optimizer, engine = build(updater, opt=opt)
    nets.train_steps(model, optimizer, 24)

    model2, optimizer2, engine2 = build(updater, opt=opt)
    nets.train_steps(model2, optimizer2, 12)
    saved = {
        "model": {k: v.clone() for k, v in model2.state_dict().items()},
        "optimizer": optimizer2.state_dict(),
        "engine": engine2.state_dict(),
    }
    buf = io.BytesIO()
    torch.save(saved, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model3, optimizer3, engine3 = build(updater, opt=opt, seed=99)  # fresh, other masks
    model3.load_state_dict(saved["model"])
    optimizer3.load_state_dict(saved["optimizer"])
    engine3.load_state_dict(saved["engine"])
    assert engine3.step == 12
    nets.train_steps(model3, optimizer3, 12, start=12)

    for (k, a), b in zip(model.state_dict().items(), model3.state_dict().values()):
        assert torch.equal(a, b), k
    for n in engine.layers:
        assert torch.equal(engine.masks[n], engine3.masks[n]), n
    assert engine.trajectory == engine3.trajectory


def check_updater(updater: str) -> None:
    """Every updater contract, for one registered updater."""
    assert updater in UPDATERS
    for scope in SCOPES:
        updater_budget_exact_and_masked_state_zero(updater, scope)
        updater_quiet_between_updates(updater, scope)
        updater_zero_drop_changes_nothing(updater, scope)
        updater_seeded(updater, scope)
    updater_zero_drop_keeps_moved_counts(updater)
    updater_layer_scope_keeps_counts(updater)
    updater_rewires_as_declared(updater)
    updater_grows_at_zero(updater)
    updater_resumes_bit_identically(updater)


# -- channel scores --------------------------------------------------------------------------


def channel_run(seed=0, steps=30, density=0.2, updater="set", engine_kw=None, **channel_kw):
    """A VGG-style run with channel pruning (events every 3 steps until step 24); returns the
    engine and the keep vector after every step."""
    torch.manual_seed(0)
    model = nets.vgg_style((16, 32, 32, 64))
    shape = (2, 3, 16, 16)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    ch = dict(sparsity=0.6, every=3, end=24, offset=1, min_keep_ratio=0.3) | channel_kw
    cfg = SparsityConfig(
        density=density,
        updater=updater,
        scope="global",
        update_every=3,
        total_steps=steps,
        seed=seed,
        channels=ChannelConfig(**ch),
        **(engine_kw or {}),
    )
    engine = chase.sparsify(model, opt, cfg, example_inputs=torch.randn(shape))
    history = []
    g = torch.Generator().manual_seed(7)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(shape, generator=g)).square().mean().backward()
        opt.step()
        history.append(engine.channels.alive.clone())
    return engine, history


def score_values(score: str) -> None:
    """One finite float per channel, the same for the same generator state."""
    stats = ChannelStats(
        torch.tensor([4.0, 0.0, 3.0, 1e-9], dtype=torch.float64),
        torch.tensor([3.0, 0.0, 1.0, 1.0], dtype=torch.float64),
        torch.tensor([4.0, 4.0, 4.0, 2.0], dtype=torch.float64),
    )
    fn = SCORES[score]
    a = fn(stats, torch.Generator().manual_seed(1))
    b = fn(stats, torch.Generator().manual_seed(1))
    assert a.shape == (4,) and a.is_floating_point()
    assert bool(torch.isfinite(a).all())
    assert torch.equal(a, b)


def score_drives_the_schedule(score: str) -> None:
    """A channel-pruning run with this score: each event reaches the cubic schedule's target
    unless floors bind, no group falls below its floor, removed channels never return."""
    engine, history = channel_run(score=score)
    ch = engine.channels
    assert ch.events, "no channel event ran"
    for event in ch.events:
        t = event["step"]
        target = round(ch.total * (1 - channel_sparsity(0.6, t, 24)))
        assert event["target"] == target
        live_after = int(history[t - 1].sum())
        assert live_after == event["live"]
        if live_after != target:  # only allowed where floors bind
            live_g = torch.bincount(ch.gid[history[t - 1]], minlength=len(ch.groups))
            assert bool((live_g == ch.floors).all())
    for before, after in itertools.pairwise(history):
        assert not bool((after & ~before).any())  # removed channels never return
    sizes = [g.size for g in ch.groups]
    floor = torch.tensor([max(1, math.floor(c * (1 - 0.6) * 0.3)) for c in sizes])
    assert bool((ch.live_per_group() >= floor).all())
    assert ch.live == ch.target(30)
    assert ch.check() == []
    engine.check()


def check_score(score: str) -> None:
    score_values(score)
    score_drives_the_schedule(score)


# -- allocations -----------------------------------------------------------------------------

MODELS = {"mlp": nets.mlp, "vgg": nets.vgg_style, "resnet": nets.ResNetStyle}


def expected_counts(shapes, budget, allocation, dense=()):
    """Independent ER/ERK-style solution: ε over the free layers, densities capped at 1."""
    dense = set(dense)
    while True:
        free = [n for n in shapes if n not in dense]
        left = budget - sum(math.prod(shapes[n]) for n in dense)
        raw = {n: layer_score(shapes[n], allocation) * math.prod(shapes[n]) for n in free}
        eps = left / sum(raw.values())
        over = [n for n in free if eps * raw[n] > math.prod(shapes[n])]
        if not over:
            out = {n: eps * raw[n] for n in free}
            out.update({n: float(math.prod(shapes[n])) for n in dense})
            return out
        dense.update(over)


def allocation_follows_formula(allocation: str, model_name: str, density: float) -> None:
    """Positive scores; counts sum to the budget exactly, each within 1 of the scaled formula
    and at most the layer's size; masked weights are zero from the start."""
    model = MODELS[model_name]()
    cfg = SparsityConfig(density=density, allocation=allocation, updater="static")
    engine = sparsify(model, None, cfg, attach=False)
    for shape in engine.shapes.values():
        score = layer_score(shape, allocation)
        assert math.isfinite(score) and score > 0, (shape, score)
    counts = dict(zip(engine.layers, engine.masks.counts()))
    assert sum(counts.values()) == round(density * engine.total) == engine.budget
    expected = expected_counts(engine.shapes, engine.budget, allocation)
    for name, count in counts.items():
        assert abs(count - expected[name]) <= 1.0, (name, count, expected[name])
        assert count <= math.prod(engine.shapes[name])
    for name in engine.layers:
        weight = engine.masks.params[name]
        assert bool((weight[~engine.masks[name]] == 0).all())


def allocation_keeps_dense_layers(allocation: str) -> None:
    """``keep_dense`` layers are dense and inside the budget; the rest follow the formula."""
    model = nets.vgg_style()
    cfg = SparsityConfig(
        density=0.2, allocation=allocation, keep_dense=["first", "last"], updater="static"
    )
    engine = sparsify(model, None, cfg, attach=False)
    counts = dict(zip(engine.layers, engine.masks.counts()))
    first, last = engine.layers[0], engine.layers[-1]
    assert counts[first] == math.prod(engine.shapes[first])
    assert counts[last] == math.prod(engine.shapes[last])
    assert sum(counts.values()) == engine.budget
    expected = expected_counts(engine.shapes, engine.budget, allocation, dense=(first, last))
    for name, count in counts.items():
        assert abs(count - expected[name]) <= 1.0


def check_allocation(allocation: str) -> None:
    for model_name, density in itertools.product(MODELS, (0.05, 0.3)):
        allocation_follows_formula(allocation, model_name, density)
    allocation_keeps_dense_layers(allocation)


# -- drop schedules --------------------------------------------------------------------------


def schedule_shape(name: str) -> None:
    """Starts at ``start``, stays between ``start`` and ``end``; a schedule that ``decays``
    reaches ``end`` at its horizon and stays there, one that does not stays at ``start``."""
    decays = DROP_SCHEDULES[name].decays
    for start, end in [(0.5, 0.005), (0.3, 0.0), (0.1, 0.4)]:
        values = [decay(start, end, t, 100, name) for t in range(0, 131, 5)]
        assert values[0] == pytest.approx(start)
        low, high = min(start, end), max(start, end)
        assert all(low - 1e-12 <= v <= high + 1e-12 for v in values), values
        if decays:
            assert values[20:] == pytest.approx([end] * len(values[20:]))
        else:
            assert values == pytest.approx([start] * len(values))


def schedule_horizon_rule(name: str) -> None:
    """A topology updater with a decaying schedule needs the run length; otherwise not."""
    if DROP_SCHEDULES[name].decays:
        with pytest.raises(ConfigError, match="total_steps"):
            SparsityConfig(updater="rigl", drop_schedule=name)
        SparsityConfig(updater="rigl", drop_schedule=name, dst_end=100)
    else:
        SparsityConfig(updater="rigl", drop_schedule=name)


def check_schedule(name: str) -> None:
    schedule_shape(name)
    schedule_horizon_rule(name)
    for scope in SCOPES:
        updater_budget_exact_and_masked_state_zero("rigl", scope, drop_schedule=name)
