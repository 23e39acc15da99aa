"""The architecture's import arrows (STYLE.md's layout): a walk over every module's imports.

The engine (``chase.sparsity``) never imports the trainer, the CLI or the data layer; the
structure layer never imports the trainer; models and data never import the engine; and
nothing imports ``chase.cli`` but the CLI itself and the entry point ``chase.__main__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: (importing package, imported package, why it is forbidden)
FORBIDDEN = (
    ("chase.sparsity", "chase.train", "the engine works in any training loop"),
    ("chase.sparsity", "chase.cli", "the engine works in any training loop"),
    ("chase.sparsity", "chase.data", "the engine knows no datasets"),
    ("chase.structure", "chase.train", "slimming works on any model"),
    ("chase.models", "chase.sparsity", "models are plain modules"),
    ("chase.data", "chase.sparsity", "data is plain tensors"),
    ("*", "chase.cli", "the CLI only parses and prints; the library never calls it"),
)
#: modules allowed to import chase.cli
ENTRY_POINTS = ("chase.__main__",)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT / "src") if path.is_relative_to(ROOT / "src") else path
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(source: str, module: str) -> set[str]:
    """Every module ``source`` imports, absolute (relative imports resolved against ``module``),
    including imports inside functions."""
    out: set[str] = set()
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level], base]).strip(".")
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(module: str, source: str) -> list[str]:
    """The forbidden arrows from ``module`` (named for a benchmark script by its path)."""
    found = []
    for target in sorted(imported(source, module)):
        for owner, banned, why in FORBIDDEN:
            mine = owner == "*" or _inside(module, owner)
            if not mine or not _inside(target, banned) or _inside(module, banned):
                continue
            if banned == "chase.cli" and module in ENTRY_POINTS:
                continue
            found.append(f"{module} imports {target}: {why}")
    return found


def sources() -> list[tuple[str, str]]:
    files = sorted((ROOT / "src" / "chase").rglob("*.py"))
    files += sorted((ROOT / "benchmarks").rglob("*.py"))
    return [(module_name(p), p.read_text(encoding="utf-8")) for p in files]


def test_no_forbidden_import_anywhere() -> None:
    found = [v for module, text in sources() for v in violations(module, text)]
    assert not found, "\n".join(found)


def test_the_walk_sees_every_package() -> None:
    names = {m for m, _ in sources()}
    for package in ("chase.sparsity", "chase.structure", "chase.train", "chase.cli"):
        assert any(_inside(n, package) for n in names), package


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("chase.sparsity.engine", "from chase.train.loop import Trainer"),
        ("chase.sparsity.engine", "def f():\n    import chase.data.build\n"),
        ("chase.structure.slim", "from ..train import config"),
        ("chase.models.vgg", "from chase.sparsity import MASKABLE"),
        ("chase.metrics.speed", "from chase.cli.console import console"),
        ("benchmarks.slim_speed", "from chase.cli import bench"),
    ],
)
def test_a_forbidden_import_is_caught(module: str, source: str) -> None:
    assert violations(module, source)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("chase.__main__", "from chase.cli.main import entry"),
        ("chase.cli.train", "from chase.cli.console import console"),
        ("chase.train.loop", "from chase.sparsity.engine import SparsityEngine"),
        ("chase.structure.coupling", "from chase.sparsity.groups import ChannelGroup"),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    assert violations(module, source) == []
