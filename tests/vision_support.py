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
from typing import Any

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


# -- the third-party catalogue shared by tests/thirdparty and benchmarks/coverage.py ---------

#: model name → input side (pixels) it is traced and checked at; small inputs keep the suite
#: bounded, each is what the model needs to run (its downsampling leaves >= 1 pixel).
MODELS: dict[str, int] = {
    # the families of issue 12's table
    "tv:resnext50_32x4d": 64,
    "tv:regnet_x_400mf": 64,
    "tv:regnet_y_400mf": 64,
    "tv:efficientnet_b0": 64,
    "tv:convnext_tiny": 64,
    "tv:shufflenet_v2_x0_5": 64,
    "timm:efficientnet_b0": 64,
    "timm:mobilenetv3_large_100": 64,
    "timm:regnetx_002": 64,
    # plain models that already slimmed exactly before
    "tv:resnet18": 64,
    "tv:resnet50": 64,
    "tv:wide_resnet50_2": 64,
    "tv:mobilenet_v2": 64,
    "tv:densenet121": 64,
    "tv:squeezenet1_0": 64,
    "tv:googlenet": 64,
    "tv:vgg11_bn": 32,
    "tv:mnasnet0_5": 64,
    "timm:resnet26d": 64,
    "timm:dla34": 64,
    "timm:hrnet_w18_small": 64,
}
#: class count of the comparison (ImageNet's, as in the issue's table)
CLASSES = 1000


def build(name: str, classes: int = CLASSES) -> torch.nn.Module:
    """A randomly initialised third-party model straight from its package (no chase code), so
    the coverage script can also measure a checkout that predates ``chase.models.sources``."""
    patch_torchvision()
    prefix, model = name.split(":", 1)
    if prefix == "tv":
        import torchvision

        kw = {"aux_logits": False, "init_weights": True} if model == "googlenet" else {}
        return torchvision.models.get_model(model, weights=None, num_classes=classes, **kw)
    import timm

    return timm.create_model(model, pretrained=False, num_classes=classes)


def example(name: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    side = MODELS[name]
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


def torch_pruning_params(model: torch.nn.Module, x: torch.Tensor, classes: int = CLASSES) -> int:
    """Parameters left after Torch-Pruning's magnitude pruning at ratio 0.5 (in place), the
    classifier (the layer producing ``classes`` outputs) kept whole, as its examples do."""
    import torch_pruning as tp

    heads = [
        m
        for m in model.modules()
        if (isinstance(m, torch.nn.Linear) and m.out_features == classes)
        or (isinstance(m, torch.nn.Conv2d) and m.out_channels == classes)
    ]
    pruner = tp.pruner.MagnitudePruner(
        model,
        x,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=0.5,
        ignored_layers=heads,
    )
    pruner.step()
    return sum(p.numel() for p in model.parameters())


def chase_at(
    model: torch.nn.Module, x: torch.Tensor, groups: Any, prune_skip: bool, shrink: bool = False
) -> Any:
    """Chase's channel selection at S_c 0.5 applied once (``chase.prune_channels_once``'s
    config), ranked by the seeded ``random`` score: on randomly initialised weights UMM ranks
    layers by their initialisation scale, while coverage asks which channels can go at all.
    ``shrink``: the model shrinks in place at the event, as it does while training."""
    import chase
    from chase.sparsity.config import ChannelConfig, SparsityConfig

    channels = ChannelConfig(
        sparsity=0.5,
        every=1,
        end=1,
        offset=0,
        prune_skip=prune_skip,
        score="random",
        shrink=shrink,
    )
    config = SparsityConfig(density=1.0, updater="static", total_steps=1, channels=channels)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0) if shrink else None  # state to cut
    engine = chase.sparsify(model, optimizer, config, groups=groups, attach=False)
    engine.after_step()
    return engine


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
