"""BatchNorm recalibration: exact pooled statistics, everything else restored."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from chase.structure import recalibrate_bn


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4, momentum=0.3)
        self.fc = nn.Linear(4 * 4 * 4, 6)
        self.bn2 = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv(x)))
        return self.bn2(self.fc(self.drop(h).flatten(1)))


def _batches(sizes: list[int], seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 3, 4, 4, generator=gen) * 3 + 1, torch.zeros(n)) for n in sizes]


def _expected(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """Pooled mean / unbiased variance of each BN's inputs, BN in train mode, dropout off."""
    ref = copy.deepcopy(model).eval()
    seen: dict[str, list[torch.Tensor]] = {"bn1": [], "bn2": []}
    for name in seen:
        bn = getattr(ref, name)
        bn.train()
        bn.register_forward_pre_hook(lambda m, a, name=name: seen[name].append(a[0].double()))
    with torch.no_grad():
        for x, _ in batches:
            ref(x)
    out = {}
    for name, xs in seen.items():
        x = torch.cat([t.transpose(0, 1).reshape(t.shape[1], -1) for t in xs], dim=1)
        out[name] = (x.mean(1), x.var(1, unbiased=True))
    return out


def test_statistics_are_exact_over_uneven_batches() -> None:
    torch.manual_seed(0)
    model = Tiny()
    batches = _batches([5, 3, 7, 2])
    expected = _expected(model, batches)
    assert recalibrate_bn(model, batches) == 4
    for name, (mean, var) in expected.items():
        bn = getattr(model, name)
        assert torch.allclose(bn.running_mean.double(), mean, atol=1e-5)
        assert torch.allclose(bn.running_var.double(), var, rtol=1e-5)
        assert int(bn.num_batches_tracked) == 4


def test_modes_momenta_and_steps() -> None:
    torch.manual_seed(0)
    model = Tiny().train()
    model.bn2.eval()
    modes = [m.training for m in model.modules()]
    batches = _batches([4, 4, 4])
    expected = _expected(model, batches[:2])
    assert recalibrate_bn(model, iter(batches), steps=2, device="cpu") == 2
    assert [m.training for m in model.modules()] == modes
    assert model.bn1.momentum == 0.3 and model.bn2.momentum == 0.1
    assert torch.allclose(model.bn1.running_mean.double(), expected["bn1"][0], atol=1e-5)
    assert all(p.grad is None for p in model.parameters())


def _failing() -> Iterator[torch.Tensor]:
    yield torch.randn(4, 3, 4, 4)
    raise RuntimeError("loader broke")


def test_failure_or_no_data_leaves_statistics_alone() -> None:
    model = Tiny()
    recalibrate_bn(model, _batches([4]))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="loader broke"):
        recalibrate_bn(model, _failing())
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_bn(model, [])
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert recalibrate_bn(nn.Linear(2, 2), [torch.randn(1, 2)]) == 0
