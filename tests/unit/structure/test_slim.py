"""Slimming equivalence: the slim model computes what the channel-masked model computes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

import emulate
import nets
from chase.sparsity.groups import ChannelGroup
from chase.structure import (
    SlimSpec,
    apply_spec,
    discover_groups,
    kept_indices,
    slice_tensor_dict,
    slim_copy,
)


def _setup(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor, list[ChannelGroup]]:
    torch.manual_seed(seed)
    case = nets.CASES[name]
    model = case.build()
    emulate.warm_bn(model, case.shape, seed=seed)
    x = case.inputs(seed + 1)
    return model, x, discover_groups(model, x)


def _assert_close(want: torch.Tensor, got: torch.Tensor) -> None:
    scale = float(want.abs().max())
    assert scale > 0
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-4 * scale


@pytest.mark.parametrize("name", list(nets.CASES))
def test_slim_matches_masked_model(name: str) -> None:
    model, x, groups = _setup(name)
    keep = emulate.random_keep(groups, seed=3)
    assert any(not bool(v.all()) for v in keep.values())
    spec = kept_indices(groups, keep)
    slim = slim_copy(model, spec)
    masked = emulate.masked_copy(model, groups, keep)
    with torch.no_grad():
        _assert_close(masked.eval()(x), slim.eval()(x))
    assert emulate.n_params(slim) == emulate.predicted_params(model, groups, keep)
    assert emulate.n_params(slim) < emulate.n_params(model)
    _assert_attributes_consistent(slim)


def _assert_attributes_consistent(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.weight.shape[0] == m.out_channels
            assert m.weight.shape[1] * m.groups == m.in_channels
        elif isinstance(m, nn.Linear):
            assert tuple(m.weight.shape) == (m.out_features, m.in_features)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            assert m.running_mean is not None
            assert m.weight.shape[0] == m.running_mean.shape[0] == m.num_features


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2", "resnet50_imagenet"])
def test_residual_streams_slim_everywhere(name: str) -> None:
    model, x, groups = _setup(name)
    keep = {g.name: torch.arange(g.size) % 3 != 1 for g in groups if g.residual}
    assert keep
    spec = kept_indices(groups, keep)
    slim = slim_copy(model, spec)
    with torch.no_grad():
        _assert_close(emulate.masked_copy(model, groups, keep)(x), slim(x))
    dws = [m for m in slim.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert all(m.groups == m.in_channels == m.out_channels for m in dws)


def test_slice_tensor_dict_matches_direct_slicing() -> None:
    model, _, groups = _setup("concat")
    keep = emulate.random_keep(groups, seed=5, frac=0.5)
    spec = kept_indices(groups, keep)
    gen = torch.Generator().manual_seed(0)
    masks = {
        n: torch.rand(p.shape, generator=gen) < 0.5
        for n, p in model.named_parameters()
        if n.endswith("weight") and p.dim() > 1
    }
    sliced = slice_tensor_dict(masks, spec)
    removed = emulate.removed_positions(groups, keep)
    slim = slim_copy(model, spec)
    for n, mask in masks.items():
        want = mask
        for axis in range(2):
            gone = removed.get((n, axis), torch.empty(0, dtype=torch.int64))
            alive = torch.ones(mask.shape[axis], dtype=torch.bool)
            alive[gone] = False
            want = want.index_select(axis, alive.nonzero().reshape(-1))
        assert torch.equal(sliced[n], want), n
        assert sliced[n].shape == slim.get_parameter(n).shape
    assert slice_tensor_dict({"not.in.spec": torch.ones(3)}, spec)["not.in.spec"].shape == (3,)


def test_apply_spec_keeps_parameter_objects_and_flags() -> None:
    model, _, groups = _setup("resnet20")
    model.conv1.weight.requires_grad_(False)
    model.layer1[0].conv1.weight.grad = torch.ones_like(model.layer1[0].conv1.weight)
    before = dict(model.named_parameters())
    spec = kept_indices(groups, emulate.random_keep(groups, seed=1))
    assert apply_spec(model, spec) is model
    after = dict(model.named_parameters())
    assert all(after[n] is p for n, p in before.items())
    assert not model.conv1.weight.requires_grad
    assert model.layer1[0].conv1.weight.grad is None


def test_spec_round_trips_as_plain_data() -> None:
    _, _, groups = _setup("mobilenetv2")
    spec = kept_indices(groups, emulate.random_keep(groups, seed=2))
    again = SlimSpec.from_dict(spec.to_dict())
    assert again.sizes == spec.sizes
    assert all(
        torch.equal(again.keep[t][a], i) for t, ax in spec.keep.items() for a, i in ax.items()
    )
    assert spec.removed() > 0
    full = kept_indices(groups, {})
    assert full.removed() == 0 and set(full.keep) == set(spec.keep)
    with pytest.raises(ValueError, match="version"):
        SlimSpec.from_dict({"version": 99})


def test_kept_indices_rejects_bad_keep_vectors() -> None:
    _, _, groups = _setup("permute_roll")
    by_name = {g.name: g for g in groups}
    with pytest.raises(ValueError, match="unknown"):
        kept_indices(groups, {"nope:out": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="bool tensor of shape"):
        kept_indices(groups, {"conv4:out": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="every channel"):
        kept_indices(groups, {"conv4:out": torch.zeros(16, dtype=torch.bool)})
    drop_one = torch.ones(8, dtype=torch.bool)
    drop_one[0] = False
    with pytest.raises(ValueError, match="not prunable"):
        kept_indices(groups, {"conv1:out": drop_one})
    assert not by_name["conv1:out"].prunable


def test_apply_spec_refuses_a_spec_for_another_model() -> None:
    model, _, groups = _setup("resnet20")
    spec = kept_indices(groups, emulate.random_keep(groups, seed=4))
    slim = slim_copy(model, spec)
    with pytest.raises(ValueError, match="applied already"):
        apply_spec(slim, spec)
    with pytest.raises(ValueError, match="does not have"):
        apply_spec(nets.CASES["concat"].build(), spec)


def test_trusting_torch_pruning_on_a_permuting_op_would_corrupt_the_model() -> None:
    """Why the whitelist exists: force the roll group prunable and slimming stops matching."""
    model, x, groups = _setup("permute_roll")
    forced = [replace(g, prunable=True, reason="") if g.name == "conv1:out" else g for g in groups]
    keep = {"conv1:out": torch.tensor([True, False, True, True, False, True, True, True])}
    slim = slim_copy(model, kept_indices(forced, keep))
    with torch.no_grad():
        want, got = emulate.masked_copy(model, forced, keep)(x), slim(x)
    assert float((want - got).abs().max()) > 1e-3 * float(want.abs().max())


def test_apply_spec_checks_every_module_before_cutting_any() -> None:
    """A spec that one module cannot take is refused with the model untouched, even when the
    modules planned before it could be cut."""
    model, _, groups = _setup("resnet20")
    spec = kept_indices(groups, emulate.random_keep(groups, seed=4))
    params = dict(model.named_parameters())
    last = [n for n in spec.keep if n in params and params[n].dim() == 4][-1]  # a late conv
    spec.keep[last] = {**spec.keep[last], 2: torch.tensor([0])}  # one row of its kernel
    spec.sizes[last] = {**spec.sizes[last], 2: params[last].shape[2]}
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="cannot cut"):
        apply_spec(model, spec)
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == shapes
