"""Contract test over the model registry: every model builds, trains a few Chase steps and
slims into an equivalent smaller model. A newly registered model is tested automatically."""

import pytest
import torch

import chase
from chase import ChannelConfig, SparsityConfig
from chase.models import create_model, default_input_size, list_models


def small_input(name: str) -> torch.Tensor:
    c, h, _ = default_input_size(name)
    side = min(h, 64)  # ImageNet-stem models run at 64x64 to keep the test fast
    return torch.randn(2, c, side, side, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list_models())
def test_model_trains_sparse_and_slims_equivalently(name):
    torch.manual_seed(0)
    x = small_input(name)
    model = create_model(name, num_classes=10, in_channels=x.shape[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    cfg = SparsityConfig(density=0.2, updater="rigl", scope="global", update_every=2,
                         total_steps=6, channels=ChannelConfig(sparsity=0.5, every=2, end=4,
                                                               offset=1))  # fmt: skip
    engine = chase.sparsify(model, optimizer, cfg, example_inputs=x)
    for step in range(6):
        optimizer.zero_grad()
        out = model(x + 0.1 * step)
        assert out.shape == (2, 10)
        torch.nn.functional.cross_entropy(out, torch.tensor([1, 2])).backward()
        optimizer.step()
    engine.check()
    assert engine.summary()["channels"]["sparsity"] > 0.2
    model.eval()
    slim = chase.slim(model, engine).eval()
    with torch.no_grad():
        ref, got = model(x), slim(x)
    assert float((ref - got).abs().max()) <= 1e-4 * float(ref.abs().max().clamp_min(1e-6))
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in model.parameters())
