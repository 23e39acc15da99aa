"""Helpers for tests that drive the ``chase`` CLI in-process."""

from __future__ import annotations

import pytest

from chase.cli.main import main


@pytest.fixture
def cli(capsys):
    """Run ``chase ARGS...`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
