"""Slim checkpoints: one plain-data file that rebuilds the slim model exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import emulate
import nets
from chase.errors import CheckpointError
from chase.structure import (
    discover_groups,
    kept_indices,
    load_slim,
    read_slim,
    save_slim,
    slice_tensor_dict,
    slim_copy,
)


def _build(name: str, **kwargs: Any) -> nn.Module:
    assert not kwargs
    return nets.CASES[name].build()


def _slim(name: str) -> tuple[nn.Module, Any, dict[str, torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    case = nets.CASES[name]
    model = case.build()
    emulate.warm_bn(model, case.shape)
    x = case.inputs()
    groups = discover_groups(model, x)
    spec = kept_indices(groups, emulate.random_keep(groups, seed=7))
    masks = {n: torch.rand(p.shape) < 0.3 for n, p in model.named_parameters() if p.dim() > 1}
    return slim_copy(model, spec).eval(), spec, slice_tensor_dict(masks, spec), x


@pytest.mark.parametrize("name", nets.SMALL)
def test_round_trip_with_a_fresh_model(name: str, tmp_path: Path) -> None:
    slim, spec, masks, x = _slim(name)
    path = save_slim(tmp_path / "slim.pt", slim, spec, masks=masks, extra={"acc": 0.5})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "chase-slim" and raw["version"] == 1
    loaded = load_slim(path, nets.CASES[name].build())
    assert loaded.extra == {"acc": 0.5} and loaded.arch is None
    assert loaded.masks is not None and set(loaded.masks) == set(masks)
    assert all(torch.equal(loaded.masks[k], v) for k, v in masks.items())
    assert not loaded.model.training  # ready for inference as loaded
    with torch.no_grad():
        assert torch.equal(loaded.model(x), slim(x))
    assert [p.name for p in tmp_path.iterdir()] == ["slim.pt"]  # no temp file left behind


def test_round_trip_through_the_architecture_record(tmp_path: Path) -> None:
    slim, spec, _, x = _slim("mobilenetv2")
    path = save_slim(tmp_path / "m.pt", slim, spec, arch={"name": "mobilenetv2", "kwargs": {}})
    loaded = load_slim(path, build=_build)
    assert loaded.arch == {"name": "mobilenetv2", "kwargs": {}}
    assert loaded.masks is None
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), slim(x))


def test_save_refuses_objects_weights_only_cannot_load(tmp_path: Path) -> None:
    slim, spec, _, _ = _slim("concat")
    with pytest.raises(TypeError, match="extra"):
        save_slim(tmp_path / "x.pt", slim, spec, extra={"model": nn.ReLU()})
    assert not list(tmp_path.iterdir())


def _corrupt(kind: str, good: Path, tmp_path: Path) -> Path:
    bad = tmp_path / f"{kind}.pt"
    if kind == "garbage":
        bad.write_bytes(b"definitely not a checkpoint")
    elif kind == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "foreign":
        torch.save({"state_dict": {}}, bad)
    elif kind == "future":
        torch.save({**torch.load(good, weights_only=True), "version": 2}, bad)
    elif kind == "pickled_module":
        torch.save({"format": "chase-slim", "version": 1, "model": nn.ReLU()}, bad)
    elif kind == "missing":
        pass
    return bad


@pytest.mark.parametrize(
    "kind", ["garbage", "truncated", "foreign", "future", "pickled_module", "missing"]
)
def test_bad_files_raise_checkpoint_error(kind: str, tmp_path: Path) -> None:
    slim, spec, _, _ = _slim("concat")
    good = save_slim(tmp_path / "good.pt", slim, spec)
    bad = _corrupt(kind, good, tmp_path)
    with pytest.raises(CheckpointError) as info:
        load_slim(bad, nets.CASES["concat"].build())
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_mismatched_model_or_missing_arch_raise_checkpoint_error(tmp_path: Path) -> None:
    slim, spec, _, _ = _slim("resnet20")
    path = save_slim(tmp_path / "r.pt", slim, spec, arch={"name": "resnet20", "kwargs": {}})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_slim(path, nets.CASES["resnet56"].build())
    with pytest.raises(CheckpointError, match="cannot build"):
        load_slim(path, build=lambda name, **kw: nets.CASES["nope"].build())
    no_arch = save_slim(tmp_path / "n.pt", slim, spec)
    with pytest.raises(CheckpointError, match="model="):
        load_slim(no_arch)
    assert read_slim(path)["arch"]["name"] == "resnet20"
