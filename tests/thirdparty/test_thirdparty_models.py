"""Third-party contract: torchvision and timm models (random init) slim exactly under Chase.

For every model of ``vision_support.MODELS`` (``-m slow``; about 15 minutes on 2 CPU cores at
the small inputs listed there): Chase at S_c 0.5 runs, the slim model equals the masked one
(relative difference <= 1e-5, eval mode), it is narrower, and with prune skip on its parameter
count is within 1.25x of what Torch-Pruning's 50% magnitude pruning leaves (computed here, with
the pinned Torch-Pruning, so the reference never goes stale). The default suite keeps a few
cases of seconds: a grouped-conv + BatchNormAct model, the ShuffleNet refusal, the CLI.
"""

from __future__ import annotations

import pytest
import torch

import chase
import vision_support
from chase.errors import ConfigError
from chase.models import create_model, resolve_name
from chase.structure import describe_groups, discover_groups

vision_support.require("torchvision")
vision_support.require("timm")

#: models whose residual streams are LayerNorm-normalised: removing a channel there is exact
#: only when it leaves the model, so a masked model keeps them (the reason names LayerNorm) and
#: the coverage bound is met by shrinking while training, as ``chase train`` does
SHRINK_ONLY = {"tv:convnext_tiny": "LayerNorm"}
#: models Torch-Pruning itself cannot trace; Chase must refuse them with a clear reason
REFUSED = {"tv:shufflenet_v2_x0_5": ("ZeroDivisionError", "at op ViewBackward0 after 'stage")}


def _check_exact(name: str, prune_skip: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    x = vision_support.example(name)
    model = vision_support.build(name).eval()
    groups = discover_groups(model, x)
    engine = vision_support.chase_at(model, x, groups, prune_skip)
    slim = chase.slim(model, engine).eval()
    with torch.no_grad():
        assert vision_support.max_rel_diff(model(x), slim(x)) <= 1e-5
    return model, slim


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in vision_support.MODELS if n not in REFUSED])
def test_chase_slims_exactly_and_covers_like_torch_pruning(name: str) -> None:
    model, slim = _check_exact(name, prune_skip=False)
    assert vision_support.n_params(slim) < vision_support.n_params(model)
    model, slim = _check_exact(name, prune_skip=True)
    ours = vision_support.n_params(slim)
    assert ours < vision_support.n_params(model)
    x = vision_support.example(name)
    theirs = vision_support.torch_pruning_params(vision_support.build(name), x)
    if name in SHRINK_ONLY:
        model = vision_support.build(name).eval()
        groups = discover_groups(model, x)
        engine = vision_support.chase_at(model, x, groups, prune_skip=True)
        assert engine.channels is not None
        assert any(SHRINK_ONLY[name] in r for r in engine.channels.skipped.values())
        model = vision_support.build(name).eval()  # now shrinking: the streams go too
        engine = vision_support.chase_at(model, x, groups, prune_skip=True, shrink=True)
        assert engine.shrinks == [1]
        ours = vision_support.n_params(model)
        with torch.no_grad():
            out = model(x)
            assert vision_support.max_rel_diff(out, chase.slim(model, engine)(x)) == 0.0
    assert ours <= 1.25 * theirs, (ours, theirs)


@pytest.mark.parametrize("name", list(REFUSED))
def test_untraceable_model_is_refused_with_a_reason(name: str) -> None:
    x = vision_support.example(name)
    groups = discover_groups(vision_support.build(name, classes=10).eval(), x)
    assert len(groups) == 1 and not groups[0].prunable
    for words in (*REFUSED[name], "nothing prunable"):
        assert words in groups[0].reason
        assert words in describe_groups(groups)
    model = vision_support.build(name, classes=10)
    engine = chase.prune_channels_once(model, x, 0.5)  # runs: nothing to remove
    assert engine.channels is not None and engine.channels.total == 0
    assert vision_support.n_params(chase.slim(model, engine)) == vision_support.n_params(model)


def test_grouped_conv_batchnormact_model_slims_exactly() -> None:
    """timm regnetx_002: grouped convs (units of one channel per conv group), timm's
    BatchNormAct2d and Linear subclasses, at 32x32 and 10 classes (seconds)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    model = create_model("timm:regnetx_002", num_classes=10).eval()
    groups = discover_groups(model, x)
    assert sum(g.prunable for g in groups) == len(groups) - 1  # all but the classifier
    assert any(g.unit > 1 for g in groups)
    engine = vision_support.chase_at(model, x, groups, prune_skip=True)
    slim = chase.slim(model, engine).eval()
    with torch.no_grad():
        assert vision_support.max_rel_diff(model(x), slim(x)) <= 1e-5
    assert vision_support.n_params(slim) < 0.6 * vision_support.n_params(model)


def test_names_resolve_and_bad_names_are_one_line_errors() -> None:
    assert resolve_name("tv:resnet18") == "tv:resnet18"
    assert resolve_name("timm:efficientnet_b0") == "timm:efficientnet_b0"
    with pytest.raises(ConfigError, match=r"did you mean 'tv:resnet50'"):
        resolve_name("tv:resnet5O")
    with pytest.raises(ConfigError, match=r"unknown timm model"):
        resolve_name("timm:no_such_net")
    net = create_model("tv:resnet18", num_classes=7, in_channels=1).eval()
    assert net(torch.randn(1, 1, 32, 32)).shape == (1, 7)
    net = create_model("timm:resnet26d", num_classes=5, in_channels=1).eval()
    assert net(torch.randn(1, 1, 32, 32)).shape == (1, 5)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["timm:regnetx_002", "tv:convnext_tiny", "tv:efficientnet_b0", "tv:resnext50_32x4d"]
)
def test_onnx_export_of_slim_third_party_models(name: str, tmp_path) -> None:
    """Grouped conv (regnetx, resnext), ConvNeXt, squeeze-excitation (efficientnet)."""
    x = vision_support.example(name)
    model = vision_support.build(name, classes=10).eval()
    engine = vision_support.chase_at(model, x, discover_groups(model, x), prune_skip=True)
    slim = chase.slim(model, engine).eval()
    path = chase.export_onnx(slim, x, tmp_path / "slim.onnx")
    assert chase.check_onnx(path, slim, x, atol=1e-4, rtol=1e-5) >= 0
