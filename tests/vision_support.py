"""Test support for the third-party model tests: make torchvision's model definitions importable.

TEST SUPPORT ONLY, never imported by ``src/``. On the project's machines the torchvision wheel
that matches the pinned CPU torch is a CUDA build: its C extension (``torchvision/_C.so``)
does not load, so the custom operators it would define (``torchvision::nms``, ...) do not
exist, and ``import torchvision`` (and ``import timm``, which imports it) fails in
``torchvision/_meta_registrations.py`` with "operator torchvision::nms does not exist" when it
registers fake kernels for them. Model definitions never call these detection operators, so
defining just the schemas that torchvision registers unconditionally at import time (``nms``
and ``qnms``, with the signatures of torchvision's C++ sources) lets the import finish; calling
them would still fail, loudly. Where the C extension does load (a matching CPU/CUDA build),
nothing is defined. Inside the library, the same import failure is reported as one clear line
by ``chase.models.sources``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

#: operator schemas that torchvision's Python side needs at import time
SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARY: torch.library.Library | None = None  # kept alive: dropping it removes the schemas


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return True  # not installed: nothing to work around
    candidates = sorted(Path(spec.origin).parent.glob("_C*.so"))
    if not candidates:
        return False
    try:
        torch.ops.load_library(str(candidates[0]))
    except (OSError, RuntimeError):
        return False
    return True


def _has_schema(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def patch_torchvision() -> None:
    """Define the missing torchvision operator schemas once, if its C extension cannot load."""
    global _LIBRARY
    if _LIBRARY is not None or _extension_loads() or _has_schema("nms"):
        return
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    for schema in SCHEMAS:
        _LIBRARY.define(schema)


def require(package: str) -> None:
    """Skip the calling test module unless ``package`` (torchvision or timm) imports."""
    patch_torchvision()
    pytest.importorskip(package)
