"""Contract tests over every registered model, plus registry behaviour and reference counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from chase.errors import ConfigError
from chase.models import (
    create_model,
    default_input_size,
    list_aliases,
    list_models,
    register_model,
    resolve_name,
)

MAX_SIDE = 64  # ImageNet-stem models are exercised at 64x64 to keep the tests fast


def _test_input(name: str, batch: int = 2, in_channels: int | None = None) -> torch.Tensor:
    channels, height, width = default_input_size(name)
    channels = channels if in_channels is None else in_channels
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, channels, min(height, MAX_SIDE), min(width, MAX_SIDE), generator=gen)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    in_channels = default_input_size(name)[0]
    model = create_model(name, num_classes=7, in_channels=in_channels)
    x = _test_input(name)
    out = model(x)
    assert out.shape == (2, 7)
    out.logsumexp(dim=1).sum().backward()
    for fqn, param in model.named_parameters():
        assert param.grad is not None, fqn
        assert torch.isfinite(param.grad).all(), fqn


@pytest.mark.parametrize("name", list_models())
def test_in_channels_and_init(name: str) -> None:
    torch.manual_seed(0)
    in_channels = 1 if default_input_size(name)[0] == 3 else 3
    model = create_model(name, num_classes=5, in_channels=in_channels).eval()
    with torch.no_grad():
        assert model(_test_input(name, batch=1, in_channels=in_channels)).shape == (1, 5)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == in_channels
    for fqn, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), fqn
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() > 4096]
    big = max(convs, key=lambda m: m.weight.numel())
    fan_out = big.out_channels * big.kernel_size[0] * big.kernel_size[1] // big.groups
    assert big.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.1)


@pytest.mark.parametrize("name", ["vgg11", "vgg19", "cifar_resnet20", "resnet18_cifar"])
def test_cifar_models_accept_28x28_grey(name: str) -> None:
    model = create_model(name, num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_aliases_resolve_to_reference_spellings() -> None:
    expected = {
        "vgg19": "vgg19",
        "cifar_resnet_20": "cifar_resnet20",
        "cifar_resnet_32": "cifar_resnet32",
        "ResNet34": "resnet34_cifar",
        "ResNet50": "resnet50_cifar",
    }
    for alias, canonical in expected.items():
        assert resolve_name(alias) == canonical
    assert set(list_aliases()) >= set(expected) - {"vgg19"}
    a, b = create_model("ResNet50"), create_model("resnet50_cifar")
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [
        (k, v.shape) for k, v in b.state_dict().items()
    ]
    assert a.conv1.kernel_size == (3, 3) and isinstance(a.maxpool, nn.Identity)


def test_unknown_name_lists_models_and_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        create_model("vgg91")
    message = str(info.value)
    assert "'vgg91'" in message
    assert "did you mean 'vgg19'?" in message
    for name in list_models():
        assert name in message


def test_duplicate_registration_is_rejected() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("vgg19")(lambda **kw: nn.Linear(1, 1))
    with pytest.raises(ValueError, match="already registered"):
        register_model("a_new_name", aliases=("ResNet50",))(lambda **kw: nn.Linear(1, 1))
    assert "a_new_name" not in list_models()


def test_bad_class_count_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("small_cnn", num_classes=0)


def test_conventional_fqns() -> None:
    resnet = dict(create_model("resnet50").named_parameters())
    expected = ["conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.0.conv3.weight"]
    expected += ["layer1.0.downsample.0.weight", "layer4.2.bn3.bias", "fc.weight"]
    for fqn in expected:
        assert fqn in resnet
    cifar = dict(create_model("cifar_resnet20").named_parameters())
    assert "layer2.0.downsample.0.weight" in cifar and "layer1.0.downsample.0.weight" not in cifar
    vgg = dict(create_model("vgg19").named_parameters())
    assert "features.0.weight" in vgg and "classifier.weight" in vgg
    mobile = dict(create_model("mobilenetv2").named_parameters())
    assert "features.0.0.weight" in mobile and "classifier.1.weight" in mobile


def test_resnet50_imagenet_flops_and_params() -> None:
    with torch.device("meta"):
        model = create_model("resnet50", num_classes=1000).eval()
        x = torch.empty(1, 3, 224, 224)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(25.6e6, rel=0.01)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert counter.get_total_flops() == pytest.approx(8.2e9, rel=0.01)


def test_small_cnn_compute_and_width() -> None:
    model = create_model("small_cnn", in_channels=1).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 1, 28, 28))
    assert 30e6 <= counter.get_total_flops() <= 60e6
    half = create_model("small_cnn", in_channels=1, width=0.5)
    widths = [m.out_channels for m in half.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [16, 32, 64, 128]


def test_vgg_width_scales_every_conv_and_defaults_to_the_paper_model() -> None:
    torch.manual_seed(0)
    plain = create_model("vgg11", in_channels=1)
    torch.manual_seed(0)
    same = create_model("vgg11", in_channels=1, width=1.0)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(),
                                                  same.state_dict().values()))  # fmt: skip
    half = create_model("vgg11", in_channels=1, width=0.5)
    widths = [m.out_channels for m in half.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [32, 64, 128, 128, 256, 256, 256, 256]
    assert half(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="width"):
        create_model("vgg11", width=0)


def test_mobilenetv2_structure() -> None:
    model = create_model("mobilenetv2", num_classes=1000)
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17
    assert all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    residual = [m for m in model.modules() if getattr(m, "use_residual", False)]
    assert len(residual) == 10
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(3.5e6, rel=0.01)
    cifar = create_model("mobilenetv2_cifar").eval()
    with torch.no_grad():
        feats = cifar.features(torch.randn(1, 3, 32, 32))
    assert feats.shape[-2:] == (4, 4)
