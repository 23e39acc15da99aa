"""``chase plot``: non-empty PNG files for a short run, comparisons, and clear errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PER_RUN = {"curves.png", "channels.png", "widths.png", "channel_density.png", "channel_umm.png"}


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 10_000, path  # a drawn figure, not an empty canvas


def test_one_run_writes_every_figure(cli, run_dir: Path, tmp_path: Path) -> None:
    code, out, err = cli("plot", run_dir, "--out", tmp_path)
    assert code == 0, err
    assert {p.name for p in tmp_path.iterdir()} == PER_RUN
    for path in tmp_path.iterdir():
        assert_png(path)
        assert str(path) in out


def test_the_library_call_takes_a_str_folder_and_no_skipped_list(run_dir: Path, tmp_path) -> None:
    from chase.plots import plot_run
    from chase.train.rundir import RunDir

    written = plot_run(RunDir(run_dir), str(tmp_path / "figs"))
    assert {p.name for p in written} == PER_RUN
    assert all(p.parent == tmp_path / "figs" for p in written)


def test_default_folder_is_inside_the_run(cli, run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    code, _, err = cli("plot", copy)
    assert code == 0, err
    assert {p.name for p in (copy / "plots").iterdir()} == PER_RUN


def test_several_runs_get_comparison_figures(cli, run_dir: Path, tmp_path: Path) -> None:
    code, _, err = cli("plot", run_dir, run_dir, "--out", tmp_path)
    assert code == 0, err
    name = run_dir.name
    assert {p.name for p in (tmp_path / name).iterdir()} == PER_RUN
    assert {p.name for p in (tmp_path / f"{name}-2").iterdir()} == PER_RUN
    for figure in ("curves.png", "accuracy_vs_flops.png"):
        assert_png(tmp_path / figure)


def test_unfinished_run_plots_what_it_can(cli, run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "unfinished"
    shutil.copytree(run_dir, copy)
    for name in ("slim.pt", "report.json", "channels.json"):
        (copy / name).unlink()
    code, out, _ = cli("plot", copy, "--out", tmp_path / "plots")
    assert code == 0
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"curves.png", "channels.png"}
    assert "skipped" in out


def test_missing_matplotlib_is_one_clear_line(
    cli, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    code, out, err = cli("plot", run_dir, "--out", tmp_path)
    assert code == 2 and out == ""
    assert err.strip() == "chase: error: chase plot needs matplotlib: pip install matplotlib"


@pytest.mark.parametrize("extra", [["/no/such/run"], ["RUN", "RUN"]])
def test_bad_input_exits_2_with_one_line(cli, run_dir: Path, extra: list[str]) -> None:
    args = [str(run_dir) if a == "RUN" else a for a in extra]
    code, out, err = cli("plot", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("chase: error:")
