"""Export a (slim) model for deployment: ONNX (checked against onnxruntime) and TorchScript.

ONNX uses the TorchScript-based exporter (``dynamo=False``): torch 2.13's default exporter
needs ``onnxscript``, which the project does not depend on, and for the static CNN graphs Chase
produces the classic exporter is exact; ``check_onnx`` verifies every export numerically.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chase.structure.coupling import preserved_modes


class ExportMismatchError(RuntimeError):
    """An exported model's outputs differ from the PyTorch model's beyond the tolerance."""


def _as_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    return (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)


@contextmanager
def _quiet_deprecations() -> Iterator[None]:
    # the TorchScript paths are chosen deliberately (see module docstring); their
    # DeprecationWarnings are noise to users of this function
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _reference(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    with preserved_modes(model), torch.no_grad():
        out = model.eval()(*inputs)
    if not isinstance(out, torch.Tensor):
        raise TypeError("export checks support models with a single tensor output")
    return out


def export_onnx(
    model: nn.Module,
    example_inputs: Any,
    path: str | os.PathLike[str],
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
) -> Path:
    """Export ``model`` in eval mode to ONNX with inputs ``input{i}`` and output ``output``."""
    inputs = _as_tuple(example_inputs)
    names = [f"input{i}" for i in range(len(inputs))]
    axes = {n: {0: "batch"} for n in [*names, "output"]} if dynamic_batch else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with preserved_modes(model), torch.no_grad(), _quiet_deprecations():
        torch.onnx.export(
            model.eval(),
            inputs,
            str(path),
            input_names=names,
            output_names=["output"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return path


def check_onnx(
    path: str | os.PathLike[str],
    model: nn.Module,
    example_inputs: Any,
    atol: float = 1e-4,
    rtol: float = 1e-5,
) -> float:
    """Run the ONNX file with onnxruntime (CPU) and return the max abs difference to ``model``.

    Raises ExportMismatchError unless every output element satisfies
    ``|onnx - torch| <= atol + rtol * |torch|`` (as ``numpy.allclose``): large outputs
    (mnasnet's reach ~2.6e3) differ by more than any useful absolute tolerance in float32.
    """
    import onnxruntime as ort  # optional dependency (chase-sparse[export])

    inputs = _as_tuple(example_inputs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {f"input{i}": x.detach().cpu().numpy() for i, x in enumerate(inputs)}
    got = torch.from_numpy(session.run(["output"], feeds)[0])
    want = _reference(model, inputs).cpu()
    if got.shape != want.shape:
        raise ExportMismatchError(
            f"ONNX output shape {tuple(got.shape)} differs from PyTorch's {tuple(want.shape)}"
        )
    err = (got - want).abs()
    diff = float(err.max()) if want.numel() else 0.0
    bound = atol + rtol * want.abs()
    if want.numel() and not bool((err <= bound).all()):
        worst = int(torch.argmax(err - bound))
        raise ExportMismatchError(
            f"ONNX output differs from PyTorch: max abs diff {diff:.3g}; element {worst} is off "
            f"by {float(err.view(-1)[worst]):.3g} > atol {atol:.3g} + rtol {rtol:.3g} × "
            f"{float(want.abs().view(-1)[worst]):.3g}"
        )
    return diff


def export_torchscript(
    model: nn.Module, example_inputs: Any, path: str | os.PathLike[str], *, atol: float = 1e-5
) -> Path:
    """Trace ``model`` in eval mode, check the trace reproduces it, and save it.

    Tracing (not scripting) because Chase models are plain feed-forward CNNs whose Python
    control flow does not depend on the data. Raises ExportMismatchError if the trace differs.
    """
    inputs = _as_tuple(example_inputs)
    want = _reference(model, inputs)
    with preserved_modes(model), torch.no_grad(), _quiet_deprecations():
        traced = torch.jit.trace(model.eval(), inputs, check_trace=False)
        got = traced(*inputs)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(traced, str(path))
    diff = float((got - want).abs().max()) if want.numel() else 0.0
    if not diff <= atol:
        raise ExportMismatchError(f"TorchScript trace differs from the model by {diff:.3g}")
    return path


def load_torchscript(path: str | os.PathLike[str]) -> torch.jit.ScriptModule:
    """Load a file written by ``export_torchscript`` (on the CPU)."""
    with _quiet_deprecations():
        return torch.jit.load(str(path), map_location="cpu")
