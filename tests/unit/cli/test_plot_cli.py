"""``chase plot``: non-empty PNG files for a short run, comparisons, and clear errors."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Any

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


def test_a_chase_runs_figures_explain_its_density_and_amenable_channels(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The density panel carries the run's budget and MEST's soft bound, set at each update
    and held until the next, which covers every rise of the density above the budget; the
    histograms state the amenable criterion."""
    from chase.plots import figures, plot_run
    from chase.train.rundir import RunDir

    drawn: dict[str, Any] = {}
    real = figures.save

    def keep(fig: Any, path: Path) -> Path:
        drawn[path.name] = fig
        return real(fig, path)

    monkeypatch.setattr(figures, "save", keep)
    run = RunDir(run_dir)
    plot_run(run, tmp_path)
    engine = run.checkpoint["engine"]["config"]
    budget, overshoot, every = engine["density"], engine["mest_overshoot"], engine["update_every"]
    end = run.report["steps"]  # MEST's phase A lasts the whole run here
    records = [(r["step"], r["density"]) for r in run.metrics if r.get("kind") == "train"]
    assert max(d for _, d in records) > budget + 0.01  # the run does overshoot: the case
    panel = drawn["curves.png"].axes[2]
    lines = {line.get_label(): line for line in panel.get_lines()}
    assert set(lines[f"budget {budget:g}"].get_ydata()) == {budget}
    (bound,) = [line for label, line in lines.items() if label.startswith("MEST soft bound")]
    held = dict(zip(bound.get_xdata(), bound.get_ydata()))
    expected = {t: budget + overshoot * (1 + math.cos(math.pi * t / end)) / 2
                for t in range(every, end, every)}  # fmt: skip
    assert held == pytest.approx({**expected, end: budget})
    for step, density in records:  # under the bound last set (before any update: the budget)
        ceiling = max([(t, d) for t, d in held.items() if t <= step], default=(0, budget))[1]
        assert density <= ceiling + 1e-4, step
    assert panel.get_ylim()[1] < 2 * max(d for _, d in records)  # scaled to the density
    for name in ("channel_density.png", "channel_umm.png"):
        title = drawn[name].get_suptitle()
        assert "density < 0.5 × its group's density" in title.replace("\n", " ")
