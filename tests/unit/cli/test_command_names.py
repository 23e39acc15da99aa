"""Messages and documents name existing ``chase`` commands only: every ``chase WORD`` in a
string of the source (error messages, help, docstrings), in a `code span` or a command line of
the docs, README and scripts is a subcommand the parser knows."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from chase.cli.main import build_parser

ROOT = Path(__file__).parents[3]

#: ``chase WORD`` in running text that is not a command: "a chase run folder", "another chase
#: run (pid ...)", "this version of chase reads", "not a chase file", "[chase options]",
#: "run by chase as:", "from chase import"
PROSE = re.compile(r"\bchase (?:run (?:folder|\()|reads\b|file\b|options\b|as:|import\b)")
COMMAND = re.compile(r"\bchase ([a-z][a-z_-]*)")
#: a command line in a code block or script: ``chase ...``, ``$ chase ...``, ``.venv/bin/chase``
COMMAND_LINE = re.compile(r"^\s*(?:\$ )?(?:\S*/)?chase ([a-z][a-z_-]*)", re.MULTILINE)
CODE_SPAN = re.compile(r"`chase\s+([a-z][a-z_-]*)")


def commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def python_strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def named_in_python(path: Path) -> set[str]:
    return {w for text in python_strings(path) for w in COMMAND.findall(PROSE.sub("", text))}


def named_in_text(path: Path) -> set[str]:
    text = path.read_text()
    return set(CODE_SPAN.findall(text)) | set(COMMAND_LINE.findall(text))


def test_the_pattern_finds_commands_and_skips_prose() -> None:
    text = "use chase evaluate; a chase run folder; chase reads version 2; not a chase file"
    assert COMMAND.findall(PROSE.sub("", text)) == ["evaluate"]
    doc = "see `chase bench RUN`\n```\n$ chase plot runs/x\n.venv/bin/chase models\n```\n"
    assert CODE_SPAN.findall(doc) + COMMAND_LINE.findall(doc) == ["bench", "plot", "models"]


def test_every_named_command_exists() -> None:
    known = commands()
    assert {"train", "eval", "bench", "models"} <= known
    wrong = []
    for path in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]):
        wrong += [f"{path.relative_to(ROOT)}: chase {w}" for w in named_in_python(path) - known]
    docs = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "scripts").glob("*.sh")]
    for path in sorted(docs):
        wrong += [f"{path.relative_to(ROOT)}: chase {w}" for w in named_in_text(path) - known]
    assert wrong == []
