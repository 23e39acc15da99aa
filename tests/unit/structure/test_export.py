"""Exports of slim models: ONNX checked with onnxruntime, TorchScript traces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import emulate
import nets
from chase.structure import (
    ExportMismatchError,
    check_onnx,
    discover_groups,
    export_onnx,
    export_torchscript,
    kept_indices,
    load_torchscript,
    slim_copy,
)

pytest.importorskip("onnxruntime")


def _slim(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    case = nets.CASES[name]
    model = case.build()
    emulate.warm_bn(model, case.shape)
    x = case.inputs()
    groups = discover_groups(model, x)
    return slim_copy(model, kept_indices(groups, emulate.random_keep(groups, seed=9))), x


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2", "concat", "flatten_head"])
def test_onnx_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    slim, x = _slim(name)
    slim.train()  # export must use eval mode and leave the mode alone
    path = export_onnx(slim, x, tmp_path / "m.onnx")
    assert slim.training
    diff = check_onnx(path, slim, x, atol=1e-4)
    assert diff <= 1e-4
    bigger = torch.randn(5, *x.shape[1:])  # dynamic batch axis
    assert check_onnx(path, slim, bigger, atol=1e-4) <= 1e-4


def test_check_onnx_reports_a_mismatch(tmp_path: Path) -> None:
    slim, x = _slim("concat")
    path = export_onnx(slim, x, tmp_path / "m.onnx")
    with torch.no_grad():
        slim.fc.bias.add_(1.0)
    with pytest.raises(ExportMismatchError, match="max abs diff"):
        check_onnx(path, slim, x, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2", "concat"])
def test_torchscript_runs_and_matches(name: str, tmp_path: Path) -> None:
    slim, x = _slim(name)
    path = export_torchscript(slim, x, tmp_path / "m.ts")
    scripted = load_torchscript(path)
    with torch.no_grad():
        y = torch.randn(3, *x.shape[1:])
        assert torch.allclose(scripted(y), slim.eval()(y), atol=1e-5)


def test_check_onnx_tolerance_is_relative_for_large_outputs(tmp_path: Path) -> None:
    slim, x = _slim("concat")
    with torch.no_grad():  # outputs in the thousands, as mnasnet0_5's (~2.6e3)
        slim.fc.weight.mul_(1e4)
        slim.fc.bias.add_(2e3)
    path = export_onnx(slim, x, tmp_path / "m.onnx")
    assert check_onnx(path, slim, x, atol=1e-4, rtol=1e-5) >= 0
    with torch.no_grad():
        slim.fc.bias.add_(0.5)  # 2.5e-4 relative: beyond rtol
    with pytest.raises(ExportMismatchError, match="rtol"):
        check_onnx(path, slim, x, atol=1e-4, rtol=1e-5)
