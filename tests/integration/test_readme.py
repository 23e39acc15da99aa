"""The README's library snippets run as written, on a tiny CNN and random data, and do what
their comments say (the Chase snippet removes half of the prunable channels)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import chase

README = Path(__file__).resolve().parents[2] / "README.md"


def library_snippets() -> list[str]:
    """The ```python blocks of the README's "Library use" section, in order."""
    text = README.read_text()
    section = text.split("## Library use", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


class MyCNN(nn.Module):
    """What a user's own small CNN looks like: conv-BN-ReLU twice, pooling, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def namespace() -> dict[str, object]:
    """What the snippets take from the user's program: a model class, a loader and epochs
    (300 optimizer steps in all)."""
    g = torch.Generator().manual_seed(0)
    loader = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g))
              for _ in range(30)]  # fmt: skip
    torch.manual_seed(0)
    return {"MyCNN": MyCNN, "loader": loader, "epochs": 10}


def test_the_readme_has_the_two_library_snippets() -> None:
    snippets = library_snippets()
    assert len(snippets) == 2
    assert "chase.sparsify" in snippets[0] and "chase.ChannelConfig" in snippets[1]


@pytest.mark.filterwarnings("error::chase.ScheduleWarning")  # the settings fit the run
def test_the_readme_library_snippets_run_and_remove_channels(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the snippets write slim.pt and slim.onnx
    first, second = library_snippets()
    ns = namespace()
    exec(compile(first, "README.md (library, plain DST)", "exec"), ns)
    engine = ns["engine"]
    assert engine.summary()["active"] == engine.budget == round(0.1 * engine.total)
    assert [step for step, _ in engine.trajectory] == [0, 100, 200, 300]  # start, updates

    exec(compile(second, "README.md (library, Chase)", "exec"), ns)
    engine = ns["engine"]
    channels = engine.summary()["channels"]
    assert channels["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert channels["live"] < channels["total"]
    assert (tmp_path / "slim.pt").is_file() and (tmp_path / "slim.onnx").is_file()
    x = ns["loader"][0][0]
    with torch.no_grad():
        torch.testing.assert_close(ns["loaded"](x), ns["model"](x), rtol=1e-4, atol=1e-5)
    slim_params = sum(p.numel() for p in ns["slim"].parameters())
    assert slim_params < sum(p.numel() for p in ns["model"].parameters())


def test_the_readme_settings_on_a_too_short_run_warn() -> None:
    """The same Chase settings on a 40-step loop cannot act: the engine says so."""
    model = MyCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    config = chase.SparsityConfig(
        density=0.1, updater="mest", scope="global", update_every=100, total_steps=40,
        channels=chase.ChannelConfig(sparsity=0.5, every=100, end=32),
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chase.sparsify(model, optimizer, config, example_inputs=torch.randn(2, 3, 8, 8))
    texts = [str(w.message) for w in caught if issubclass(w.category, chase.ScheduleWarning)]
    assert any(t.startswith("no topology update before the end") for t in texts), texts
    assert any(t.startswith("no channel event before the end") for t in texts), texts
