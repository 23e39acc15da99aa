import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import contracts
import nets
from chase import SparsityConfig, sparsify
from chase.errors import ConfigError
from chase.sparsity.allocation import ALLOCATIONS, apportion, layer_score


@pytest.mark.parametrize("model_name", sorted(contracts.MODELS))
@pytest.mark.parametrize("density", [0.01, 0.05, 0.1, 0.3, 0.5])
@pytest.mark.parametrize("allocation", ALLOCATIONS.names())
def test_budget_exact_and_layers_follow_formula(model_name, density, allocation):
    contracts.allocation_follows_formula(allocation, model_name, density)


def test_layers_that_would_exceed_density_one_are_dense():
    model = nets.ResNetStyle()
    engine = sparsify(
        model, None, SparsityConfig(density=0.5, allocation="erk", updater="static"), attach=False
    )
    counts = dict(zip(engine.layers, engine.masks.counts()))
    scores = {n: layer_score(engine.shapes[n], "erk") for n in engine.layers}
    top = max(scores, key=scores.get)
    assert counts[top] == math.prod(engine.shapes[top])  # the stem (7x7, 3 inputs) saturates
    assert any(c < math.prod(engine.shapes[n]) for n, c in counts.items())


@pytest.mark.parametrize("allocation", ALLOCATIONS.names())
def test_keep_dense_layers_are_dense_and_inside_the_budget(allocation):
    contracts.allocation_keeps_dense_layers(allocation)


def test_keep_dense_globs_and_errors():
    model = nets.ResNetStyle()
    engine = sparsify(
        model,
        None,
        SparsityConfig(density=0.3, keep_dense=["layer1.*.conv1"], updater="static"),
        attach=False,
    )
    assert engine.pinned == {"layer1.0.conv1.weight", "layer1.1.conv1.weight"}
    with pytest.raises(ConfigError, match="matches no maskable layer"):
        sparsify(
            nets.mlp(), None, SparsityConfig(keep_dense=["nope*"], updater="static"), attach=False
        )
    with pytest.raises(ConfigError, match="more than the budget"):
        sparsify(
            nets.vgg_style(),
            None,
            SparsityConfig(density=0.01, keep_dense=["10"], updater="static"),
            attach=False,
        )


def test_apportion_examples():
    assert apportion(10, [1, 1, 1], [10, 10, 10]) == [4, 3, 3]
    assert apportion(10, [8, 1, 1], [2, 10, 10]) == [2, 4, 4]
    assert apportion(100, [1, 1], [3, 5]) == [3, 5]
    assert apportion(5, [0, 1], [10, 2]) == [3, 2]
    assert apportion(0, [1, 2], [5, 5]) == [0, 0]


@given(
    total=st.integers(0, 10_000),
    items=st.lists(
        st.tuples(st.floats(0, 100, allow_nan=False), st.integers(0, 3000)), min_size=1, max_size=12
    ),
)
def test_apportion_properties(total, items):
    weights = [w for w, _ in items]
    caps = [c for _, c in items]
    out = apportion(total, weights, caps)
    assert sum(out) == min(total, sum(caps))
    assert all(0 <= o <= c for o, c in zip(out, caps))


def test_masks_are_bool_one_byte_per_weight():
    engine = sparsify(nets.vgg_style(), None, SparsityConfig(updater="static"), attach=False)
    for name in engine.layers:
        mask = engine.masks[name]
        assert mask.dtype == torch.bool and mask.element_size() == 1
