"""benchmarks/gpu_check.sh parses as bash and answers --help and bad options before doing any
work (the whole script runs only on a GPU, or with --cpu-smoke)."""

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_check.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def bash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", *args], capture_output=True, text=True, timeout=60)


def test_the_script_parses() -> None:
    result = bash("-n", str(SCRIPT))
    assert result.returncode == 0, result.stderr


def test_help_and_a_bad_option(tmp_path: Path) -> None:
    shown = bash(str(SCRIPT), "--help")
    assert shown.returncode == 0 and "--cpu-smoke" in shown.stdout
    bad = bash(str(SCRIPT), "--out", str(tmp_path / "o"), "--frobnicate")
    assert bad.returncode == 2 and "unknown option --frobnicate" in bad.stderr
    assert not (tmp_path / "o").exists()  # refused before creating anything
