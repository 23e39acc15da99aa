"""The trainer and engine on CUDA: AMP, channels_last, masks on the device, slim equivalence."""

from __future__ import annotations

import json

import pytest
import torch

import chase
from chase import ChannelConfig, SparsityConfig
from chase.cli.main import main
from chase.models import create_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_chase_run_on_cuda_with_amp_and_channels_last(tmp_path, amp):
    out = tmp_path / "run"
    code = main([
        "train", "--model", "cifar_resnet20", "--dataset", "synthetic", "--device", "cuda",
        "--batch-size", "32", "--epochs", "2", "--set", "data.synthetic_size=128",
        "--set", f"amp={amp}", "--set", "channels_last=true", "--set", "sparsity.update_every=2",
        "--set", "sparsity.channels.every=2", "--set", "bench.repeats=3", "--quiet",
        "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["channel_sparsity"] > 0.3
    assert report["equivalence_max_abs_diff"] < 1e-3
    assert report["speed"][0]["device"].startswith("cuda")


def test_engine_masks_live_on_the_device_and_updates_are_exact():
    model = create_model("resnet18_cifar").cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    channels = ChannelConfig(sparsity=0.5, every=2, end=6)
    cfg = SparsityConfig(density=0.1, updater="rigl", scope="global", update_every=2,
                         total_steps=8, channels=channels)  # fmt: skip
    x = torch.randn(8, 3, 32, 32, device="cuda")
    engine = chase.sparsify(model, opt, cfg, example_inputs=x[:2])
    for _ in range(8):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        engine.check()
    assert all(m.is_cuda and m.dtype == torch.bool for m in engine.masks.values())
    assert sum(engine.masks.counts()) == engine.budget
    model.eval()
    slim = chase.slim(model, engine).eval()
    with torch.no_grad():
        assert torch.allclose(model(x), slim(x), atol=1e-4, rtol=1e-4)
