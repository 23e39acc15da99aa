"""FLOPs accounting: agreement with torch's counter, hand counts, sparse/slim/training formulas."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from chase.metrics.flops import (
    LayerCost,
    flops_report,
    forward_flops,
    gpu_supported_flops,
    layer_costs,
    total_flops,
)
from chase.metrics.training import training_flops

# ---------------------------------------------------------------- models built for the tests


def vgg(widths: tuple[int, ...] = (16, 32, 64), classes: int = 10) -> nn.Sequential:
    """VGG-style CIFAR net: conv3x3-BN-ReLU blocks with max-pooling, linear head."""
    layers: list[nn.Module] = []
    c_in = 3
    for w in widths:
        layers += [nn.Conv2d(c_in, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes)]
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, mid: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.down: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return torch.relu(self.bn3(self.conv3(y)) + self.down(x))


def resnet50(classes: int = 1000) -> nn.Sequential:
    """ResNet-50 (v1.5: stride on the 3×3 conv), the architecture of the paper's ImageNet runs."""
    stages: list[nn.Module] = []
    c_in = 64
    for i, (blocks, mid) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
        for b in range(blocks):
            stages.append(Bottleneck(c_in, mid, 4 * mid, 2 if b == 0 and i > 0 else 1))
            c_in = 4 * mid
    stem = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes)]
    return nn.Sequential(*stem, *stages, *head)


class SmallResNet(nn.Module):
    """7×7 stem, two bottlenecks (1×1 and 3×3 convs, 1×1 downsample), Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(Bottleneck(16, 8, 32, 1), Bottleneck(32, 16, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer1(nn.functional.max_pool2d(x, 3, 2, 1))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def depthwise_net() -> nn.Sequential:
    """MobileNet-style: stem, depthwise 3×3 (groups = C), pointwise 1×1, grouped conv, head."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.Conv2d(16, 16, 3, padding=1, groups=16),
        nn.Conv2d(16, 24, 1),
        nn.Conv2d(24, 24, 3, padding=1, groups=4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(24, 5),
    )


def token_mlp() -> nn.Sequential:
    """Linear layers applied to a (batch, tokens, features) input."""
    return nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.Linear(32, 12), nn.Linear(12, 3))


def conv1d_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(4, 8, 5, stride=2), nn.ReLU(), nn.Conv1d(8, 8, 3, groups=2))


def torch_count(model: nn.Module, x: torch.Tensor) -> float:
    """Per-example FLOPs according to torch.utils.flop_counter."""
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / x.shape[0]


# ---------------------------------------------------------------- dense FLOPs


@pytest.mark.parametrize(
    ("build", "shape"),
    [
        (vgg, (2, 3, 32, 32)),
        (SmallResNet, (2, 3, 64, 64)),
        (depthwise_net, (2, 3, 32, 32)),
        (token_mlp, (3, 7, 12)),
        (conv1d_net, (2, 4, 50)),
    ],
)
def test_dense_flops_agree_with_torch_flop_counter(build, shape) -> None:
    torch.manual_seed(0)
    model = build()
    x = torch.randn(shape)
    ours = total_flops(layer_costs(model, x))
    assert ours == pytest.approx(torch_count(model, x), rel=0.01)


def test_resnet50_dense_flops_match_published_figure() -> None:
    """RigL and the Chase paper quote ≈ 8.2e9 FLOPs for dense ResNet-50 at 224×224."""
    model = resnet50()
    x = torch.randn(1, 3, 224, 224)
    ours = total_flops(layer_costs(model, x))
    assert ours == pytest.approx(8.2e9, rel=0.01)
    assert ours == 8_178_368_512  # 4.09e9 multiply–accumulates, as torch's counter finds


def test_hand_count_on_tiny_conv_net() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # 8×8 out
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),  # 4×4 out
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10),
    )
    costs = layer_costs(model, torch.randn(2, 3, 8, 8))
    # conv 0: 8·8 = 64 positions, weight 4·3·3·3 = 108 -> 2·64·108 = 13824
    # conv 2: 4·4 = 16 positions, weight 6·4·3·3 = 216 -> 2·16·216 = 6912
    # linear: 1 position, weight 10·96 = 960 -> 2·1·960 = 1920
    assert costs == {
        "0.weight": LayerCost(dense_flops=13824, positions=64, weight_numel=108),
        "2.weight": LayerCost(dense_flops=6912, positions=16, weight_numel=216),
        "4.weight": LayerCost(dense_flops=1920, positions=1, weight_numel=960),
    }
    assert total_flops(costs) == 13824 + 6912 + 1920


def test_fqns_of_nested_and_wrapped_models() -> None:
    model = SmallResNet()
    names = set(layer_costs(nn.DataParallel(model), torch.randn(1, 3, 32, 32)))
    assert "layer1.0.conv1.weight" in names
    assert "layer1.1.down.0.weight" in names
    assert "fc.weight" in names
    assert not any(n.startswith("module.") for n in names)


@settings(max_examples=25, deadline=None)
@given(
    c=st.integers(1, 4),
    groups=st.sampled_from([1, 2]),
    k=st.integers(1, 4),
    stride=st.integers(1, 3),
    pad=st.integers(0, 2),
    size=st.integers(5, 12),
)
def test_conv2d_cost_matches_formula(c, groups, k, stride, pad, size) -> None:
    conv = nn.Conv2d(2 * c, 2 * c + 2, k, stride=stride, padding=pad, groups=groups)
    out = (size + 2 * pad - k) // stride + 1
    cost = layer_costs(conv, torch.randn(3, 2 * c, size, size))["weight"]
    numel = (2 * c + 2) * (2 * c // groups) * k * k
    assert cost == LayerCost(2 * out * out * numel, out * out, numel)


def test_layer_called_twice_accumulates() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(self.conv(x))  # 2 × 6·6 positions
            return self.fc(self.fc(x.mean((2, 3))))

    costs = layer_costs(Twice(), torch.randn(2, 4, 6, 6))
    assert costs["conv.weight"] == LayerCost(2 * 72 * 144, 72, 144)
    assert costs["fc.weight"] == LayerCost(2 * 2 * 16, 2, 16)


def test_batch_folding_reshape_counts_per_example() -> None:
    class Folded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.reshape(-1, 6))  # (B·T, 6) rows

    costs = layer_costs(Folded(), torch.randn(4, 3, 6))
    assert costs["fc.weight"] == LayerCost(2 * 3 * 30, 3, 30)


def test_modes_restored_and_batchnorm_untouched() -> None:
    model = vgg()
    model.train()
    model[1].eval()  # a deliberately mixed state must come back exactly
    bn = model[5]
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    modes = [m.training for m in model.modules()]
    layer_costs(model, torch.randn(2, 3, 32, 32))
    assert [m.training for m in model.modules()] == modes
    for k, v in bn.state_dict().items():
        assert torch.equal(v, before[k]), k
    model.eval()
    layer_costs(model, torch.randn(2, 3, 32, 32))
    assert not any(m.training for m in model.modules())


def test_bad_batch_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        layer_costs(nn.Linear(3, 3), torch.randn(4, 3), batch_size=3)


# ---------------------------------------------------------------- sparse FLOPs and params


def random_masks(costs_model: nn.Module, density: float, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        f"{name}.weight": torch.rand(m.weight.shape, generator=gen) < density
        for name, m in costs_model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    }


def test_sparse_flops_equal_dense_times_density() -> None:
    model = SmallResNet()
    costs = layer_costs(model, torch.randn(1, 3, 64, 64))
    masks = random_masks(model, 0.2, seed=1)
    del masks["fc.weight"]  # a layer without a mask counts dense
    expected = sum(
        c.dense_flops * (masks[n].double().mean().item() if n in masks else 1.0)
        for n, c in costs.items()
    )
    report = flops_report(costs, masks)
    assert report.dense_flops == total_flops(costs)
    assert report.sparse_flops == pytest.approx(expected, rel=1e-9)
    assert report.sparse_ratio == pytest.approx(expected / report.dense_flops, rel=1e-9)
    rows = {r["name"]: r for r in report.per_layer}
    assert rows["fc.weight"]["density"] == 1.0
    assert rows["fc.weight"]["sparse_flops"] == costs["fc.weight"].dense_flops
    d = masks["conv1.weight"].float().mean().item()
    assert rows["conv1.weight"]["density"] == pytest.approx(d)


def test_sparse_flops_from_densities() -> None:
    model = vgg()
    costs = layer_costs(model, torch.randn(1, 3, 32, 32))
    dens = {"0.weight": 0.5, "4.weight": 0.1}
    report = flops_report(costs, densities=dens)
    expected = sum(c.dense_flops * dens.get(n, 1.0) for n, c in costs.items())
    assert report.sparse_flops == pytest.approx(expected)


def test_params_dense_and_nonzero() -> None:
    model = vgg()
    costs = layer_costs(model, torch.randn(1, 3, 32, 32))
    masks = random_masks(model, 0.3, seed=2)
    report = flops_report(costs, masks, model=model)
    total = sum(p.numel() for p in model.parameters())  # weights, biases, BN affines
    masked_out = sum(int((~m).sum()) for m in masks.values())
    assert report.params_dense == total
    assert report.params_nonzero == total - masked_out
    assert report.params_ratio == pytest.approx((total - masked_out) / total)
    assert flops_report(costs).params_dense is None


def test_report_input_errors() -> None:
    costs = layer_costs(nn.Linear(4, 3), torch.randn(1, 4))
    with pytest.raises(ValueError, match="one of masks, densities or active counts"):
        flops_report(costs, {"weight": torch.ones(3, 4, dtype=torch.bool)}, {"weight": 0.5})
    with pytest.raises(ValueError, match="bool mask"):
        flops_report(costs, {"weight": torch.ones(3, 4)})
    with pytest.raises(ValueError, match="bool mask"):
        flops_report(costs, {"weight": torch.ones(2, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="not Conv/Linear"):
        flops_report(costs, densities={"bias": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        flops_report(costs, densities={"weight": 1.5})


# ---------------------------------------------------------------- slim (GPU-supported) FLOPs


def narrow_copy(wide: nn.Sequential, keep: list[torch.Tensor]) -> nn.Sequential:
    """Physically narrower copy of a ``vgg`` model: keep[i] = kept channels of conv block i."""
    layers = list(wide.children())
    prev = torch.arange(3)
    out: list[nn.Module] = []
    for i, idx in enumerate(keep):
        conv = layers[4 * i]
        new = nn.Conv2d(len(prev), len(idx), 3, padding=1)
        new.weight.data = conv.weight.data[idx][:, prev].clone()
        new.bias.data = conv.bias.data[idx].clone()
        out += [new, nn.BatchNorm2d(len(idx)), nn.ReLU(), nn.MaxPool2d(2)]
        prev = idx
    fc = layers[-1]
    head = nn.Linear(len(prev), fc.out_features)
    head.weight.data = fc.weight.data[:, prev].clone()
    return nn.Sequential(*out, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)


def test_slim_flops_equal_dense_flops_of_narrow_architecture() -> None:
    wide = vgg((16, 32, 64))
    keep = [torch.tensor([0, 3, 5, 6, 9, 15]), torch.arange(0, 32, 2), torch.arange(40)]
    slim = narrow_copy(wide, keep)
    x = torch.randn(1, 3, 32, 32)
    assert layer_costs(slim, x) == layer_costs(vgg((6, 16, 40)), x)
    gpu = gpu_supported_flops(slim, x)
    assert gpu == total_flops(layer_costs(vgg((6, 16, 40)), x))
    report = flops_report(layer_costs(wide, x), slim_costs=layer_costs(slim, x))
    assert report.gpu_supported_flops == gpu
    ratio = gpu / total_flops(layer_costs(wide, x))
    assert report.gpu_supported_ratio == pytest.approx(ratio)
    assert report.flops_dict()["gpu_supported_ratio"] == pytest.approx(ratio)


def test_sparse_flops_same_on_masked_and_slim_model() -> None:
    """Effective masks on the original and sliced masks on the slim model count the same."""
    wide = vgg((8, 8, 8))
    keep = [torch.tensor([0, 2, 4]), torch.arange(8), torch.tensor([1, 7])]
    slim = narrow_copy(wide, keep)
    x = torch.randn(1, 3, 32, 32)
    masks = random_masks(wide, 0.5, seed=3)
    prev = torch.arange(3)
    slim_masks = {}
    for i, idx in enumerate(keep):  # channel masks: zero removed rows and columns
        name = f"{4 * i}.weight"
        dropped_out = torch.ones(8, dtype=torch.bool)
        dropped_out[idx] = False
        masks[name][dropped_out] = False
        dropped_in = torch.ones(masks[name].shape[1], dtype=torch.bool)
        dropped_in[prev] = False
        masks[name][:, dropped_in] = False
        slim_masks[name] = masks[name][idx][:, prev]
        prev = idx
    dropped = torch.ones(8, dtype=torch.bool)
    dropped[prev] = False
    masks["14.weight"][:, dropped] = False
    slim_masks["14.weight"] = masks["14.weight"][:, prev]
    on_wide = flops_report(layer_costs(wide, x), masks).sparse_flops
    on_slim = flops_report(layer_costs(slim, x), slim_masks).sparse_flops
    assert on_wide == on_slim


# ---------------------------------------------------------------- training FLOPs

COSTS = {
    "a.weight": LayerCost(dense_flops=2 * 10 * 100, positions=10, weight_numel=100),
    "b.weight": LayerCost(dense_flops=2 * 1 * 50, positions=1, weight_numel=50),
}  # f_dense = 2000 + 100 = 2100


def test_training_flops_hand_computed() -> None:
    trajectory = [
        (0, {"a.weight": 50, "b.weight": 25}),  # f = 2·10·50 + 2·1·25 = 1050, steps 0..3
        (4, {"a.weight": 30}),  # b absent = dense: f = 600 + 100 = 700, steps 4..5
        (6, {"a.weight": 20, "b.weight": 10}),  # f = 400 + 20 = 420, steps 6..9
        (12, {"a.weight": 1}),  # beyond total_steps: ignored
    ]
    result = training_flops(COSTS, trajectory, total_steps=10, dense_grad_steps=[3, 5, 9])
    sparse_part = 3 * (4 * 1050 + 2 * 700 + 4 * 420)  # 21840
    dense_grads = (2100 - 1050) + (2100 - 700) + (2100 - 420)  # 4130
    assert result.train_flops_per_example == sparse_part + dense_grads == 25970
    assert result.dense_train_flops_per_example == 3 * 2100 * 10
    assert result.ratio == pytest.approx(25970 / 63000)


def test_training_flops_static_snfs_and_dense() -> None:
    traj = [(0, {"a.weight": 10, "b.weight": 5})]  # f = 200 + 10 = 210
    static = training_flops(COSTS, traj, total_steps=100)
    assert static.ratio == pytest.approx(210 / 2100)
    snfs = training_flops(COSTS, traj, total_steps=100, dense_grad_steps=range(100))
    assert snfs.train_flops_per_example == 100 * (2 * 210 + 2100)
    dense = training_flops(COSTS, [(0, {})], total_steps=7, dense_grad_steps=range(7))
    assert dense.ratio == 1.0


def test_later_record_at_same_step_wins() -> None:
    traj = [(0, {"a.weight": 100}), (0, {"a.weight": 50, "b.weight": 0})]
    result = training_flops(COSTS, traj, total_steps=2)
    assert result.train_flops_per_example == 3 * 2 * forward_flops(COSTS, traj[1][1])


def test_training_flops_input_errors() -> None:
    with pytest.raises(ValueError, match="step 0"):
        training_flops(COSTS, [(1, {})], total_steps=5)
    with pytest.raises(ValueError, match="non-decreasing"):
        training_flops(COSTS, [(0, {}), (3, {}), (2, {})], total_steps=5)
    with pytest.raises(ValueError, match="dense_grad_steps"):
        training_flops(COSTS, [(0, {})], total_steps=5, dense_grad_steps=[5])
    with pytest.raises(ValueError, match="active count"):
        training_flops(COSTS, [(0, {"b.weight": 51})], total_steps=5)
    with pytest.raises(ValueError, match="total_steps"):
        training_flops(COSTS, [(0, {})], total_steps=0)
