"""Speed measurement on CUDA: synchronised timing, channels_last and compile run end to end."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chase.metrics.speed import benchmark

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def net(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 10),
    )


@pytest.mark.parametrize(
    ("channels_last", "compile"), [(False, False), (True, False), (True, True)]
)
def test_benchmark_on_cuda(channels_last: bool, compile: bool) -> None:
    rows = benchmark(
        net(64),
        net(32),
        input_shape=(3, 32, 32),
        batch_sizes=(1, 64),
        device="cuda",
        channels_last=channels_last,
        compile=compile,
        warmup=3,
        repeats=5,
    )
    for row in rows:
        assert row["device"].startswith("cuda")
        assert row["dense_ms"] > 0 and row["slim_ms"] > 0
        assert row["flops_ratio"] > 1
