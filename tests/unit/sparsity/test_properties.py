"""Property-based tests: random small models, densities and schedules keep every invariant."""

import itertools

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from chase import SparsityConfig, sparsify
from chase.sparsity import ALLOCATIONS, DROP_SCHEDULES, UPDATERS


@st.composite
def models(draw):
    if draw(st.booleans()):
        widths = draw(st.lists(st.integers(1, 24), min_size=2, max_size=5))
        layers: list[nn.Module] = [nn.Linear(6, widths[0])]
        for a, b in itertools.pairwise(widths):
            layers += [nn.ReLU(), nn.Linear(a, b)]
        return nn.Sequential(*layers), (5, 6)
    widths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3))
    kernels = draw(st.lists(st.sampled_from([1, 3]), min_size=len(widths), max_size=len(widths)))
    layers, c = [], 2
    for w, k in zip(widths, kernels):
        layers += [nn.Conv2d(c, w, k, padding=k // 2), nn.ReLU()]
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 3)]
    return nn.Sequential(*layers), (3, 2, 6, 6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=models(),
    density=st.floats(0.02, 0.7),
    updater=st.sampled_from(UPDATERS.names()),
    scope=st.sampled_from(["layer", "global"]),
    allocation=st.sampled_from(ALLOCATIONS.names()),
    every=st.integers(1, 4),
    drop=st.floats(0.0, 1.0),
    schedule=st.sampled_from(DROP_SCHEDULES.names()),
    steps=st.integers(1, 10),
    seed=st.integers(0, 1000),
)
def test_invariants_hold_every_step(
    spec, density, updater, scope, allocation, every, drop, schedule, steps, seed
):
    model, shape = spec
    overshoot = min(0.05, 1.0 - density)
    cfg = SparsityConfig(
        density=density,
        updater=updater,
        scope=scope,
        allocation=allocation,
        update_every=every,
        drop_fraction=drop,
        drop_schedule=schedule,
        total_steps=steps,
        seed=seed,
        mest_overshoot=overshoot,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = sparsify(model, optimizer, cfg)
    assert sum(engine.masks.counts()) == round(density * engine.total)
    g = torch.Generator().manual_seed(seed)
    for t in range(1, steps + 1):
        optimizer.zero_grad()
        out = model(torch.randn(shape, generator=g))
        out.square().mean().backward()
        optimizer.step()
        engine.check()
        if t % every == 0:
            active = sum(engine.masks.counts())
            expected = engine.updater.ceiling(t, engine.budget, engine.total)
            assert active == min(expected, engine.total)
