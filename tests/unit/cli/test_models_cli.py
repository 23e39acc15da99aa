"""``chase models``: every registered model and alias, numbers that match real models, the
third-party naming, and ``docs/models.md`` as the command writes it."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch

from chase.data.synthetic import example_batch
from chase.metrics.flops import layer_costs, total_flops
from chase.models import create_model, default_input_size, list_aliases, list_models, sources
from chase.models.catalog import ModelInfo, describe_models
from chase.models.registry import default_num_classes

DOCS = Path(__file__).parents[3] / "docs" / "models.md"


def test_table_lists_every_model_and_alias(cli) -> None:
    code, out, _ = cli("models")
    assert code == 0
    first_cells = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(list_models()) <= first_cells
    for alias, name in list_aliases().items():
        (line,) = [line for line in out.splitlines() if line.startswith(f"{name} ")]
        assert alias in line
    assert "tv:NAME" in out and "timm:NAME" in out


def test_json_matches_the_registry(cli) -> None:
    code, out, _ = cli("models", "--json")
    assert code == 0
    data = json.loads(out)
    assert [m["name"] for m in data["models"]] == list_models()
    resnet50 = next(m for m in data["models"] if m["name"] == "resnet50")
    assert resnet50["input_size"] == [3, 224, 224] and resnet50["num_classes"] == 1000
    assert [s["form"] for s in data["third_party"]] == ["tv:NAME", "timm:NAME"]


@pytest.fixture(scope="module")
def catalog() -> dict[str, ModelInfo]:
    return {info.name: info for info in describe_models()}


@pytest.mark.parametrize("name", list_models())
def test_counts_are_those_of_the_real_model(catalog: dict[str, ModelInfo], name: str) -> None:
    """The meta-device counts equal a real model's (FLOPs: by a real forward, small inputs)."""
    info = catalog[name]
    assert info.input_size == default_input_size(info.name)
    assert info.num_classes == default_num_classes(info.name)
    model = create_model(info.name, num_classes=info.num_classes, in_channels=info.input_size[0])
    assert info.params == sum(p.numel() for p in model.parameters())
    if info.input_size[1] <= 32:
        with torch.no_grad():
            x = example_batch(info.input_size, 1)
            assert info.flops == total_flops(layer_costs(model.eval(), x))


def test_docs_models_md_is_current(cli) -> None:
    code, out, _ = cli("models", "--markdown")
    assert code == 0
    assert DOCS.read_text() == out, "regenerate: chase models --markdown > docs/models.md"
    for name in list_models():
        assert f"| `{name}` |" in out


def test_source_lists_a_packages_names(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("fake_models")
    fake.names = lambda: ["net_b", "net_a"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_models", fake)
    source = sources.Source("fake", "fake_models", lambda m: sorted(m.names()), None, None)
    monkeypatch.setitem(sources.SOURCES, "fake", source)
    sources._known.cache_clear()
    try:
        code, out, _ = cli("models", "fake")
        assert code == 0 and out.splitlines() == ["fake:net_a", "fake:net_b"]
        code, out, _ = cli("models", "fake", "--json")
        assert code == 0 and json.loads(out) == ["fake:net_a", "fake:net_b"]
    finally:
        sources._known.cache_clear()


def test_missing_package_is_one_line(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    source = sources.Source("gone", "no_such_package_xyz", None, None, None)
    monkeypatch.setitem(sources.SOURCES, "gone", source)
    code, out, err = cli("models", "gone")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "chase: error: model 'gone:NAME' needs no_such_package_xyz, which is not installed "
        "(pip install 'chase-sparse[vision]')"
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["xx"], "model source 'xx' is not allowed: one of tv, timm"),
        (["tv", "--markdown"], "--markdown describes the registry; drop SOURCE"),
    ],
)
def test_bad_input_exits_2_with_one_line(cli, args: list[str], needle: str) -> None:
    code, out, err = cli("models", *args)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and needle in err
