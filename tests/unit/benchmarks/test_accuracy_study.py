"""The accuracy study's bookkeeping on fake run folders: the grid, which runs it skips,
resumes or refuses, and the aggregation of final numbers into mean ± std."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import accuracy_study
import pytest
from study_cells import cells, collect, fmt, stat
from study_plan import METHODS, MODELS, SIZES, Run, config, plan

from chase.train.loop import StopReason
from chase.train.rundir import RunDir

SMOKE = SIZES["smoke"]


def fake_run(study: Path, run: Run, *, report: dict[str, Any] | None = None,
             checkpoint: bool = False, cfg: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """A run folder with the study's config.yaml (or ``cfg``), optionally a checkpoint file
    and a report.json; metrics.jsonl holds a validation record better than any test number."""
    folder = RunDir(run.folder(study))
    folder.path.mkdir(parents=True)
    folder.write_config(cfg or config(run, SMOKE).to_dict())
    folder.metrics_path.write_text(json.dumps({"kind": "eval", "split": "val", "acc": 0.999}))
    if checkpoint:
        folder.checkpoint_path.parent.mkdir()
        folder.checkpoint_path.write_bytes(b"not read here")
    if report is not None:
        folder.report_path.write_text(json.dumps(report))
    return folder.path


def report(acc: float, gpu: float = 1.0, seconds: float = 10.0, **flops: float) -> dict[str, Any]:
    return {
        "test_accuracy": acc, "test_accuracy_masked": acc + 0.01, "density": 0.1,
        "channel_sparsity": 0.0, "seconds": seconds,
        "flops": {"gpu_supported_ratio": gpu, "sparse_ratio": 0.1, "train_ratio": 0.2, **flops},
        "speed": [{"batch_size": 1, "speedup": 1.5}, {"batch_size": 256, "speedup": 2.0}],
    }  # fmt: skip


def test_the_grid_runs_dense_once_and_prune_skip_only_on_the_resnet() -> None:
    runs = plan(list(MODELS), list(METHODS), [0.1, 0.02], [0, 1])
    assert len(runs) == len(set(runs)) == 106
    dense = [r for r in runs if r.method == "dense"]
    assert len(dense) == 3 * 2 and {r.density for r in dense} == {1.0}
    assert {r.model for r in runs if r.method.endswith("skip")} == {"resnet20"}
    assert runs[0].folder(Path("s")) == Path("s/small_cnn/dense-d1-s0")


def test_every_method_shares_the_schedule() -> None:
    runs = plan(["vgg11"], list(METHODS), [0.1], [0])
    shared = {"epochs", "data", "optim", "schedule", "bench", "seed", "model", "model_kwargs"}
    configs = [config(r, SIZES["study"]).to_dict() for r in runs]
    for key in shared:
        assert all(c[key] == configs[0][key] for c in configs), key
    for c in configs:
        s = c["sparsity"]
        assert (s["update_every"], s["channels"]["every"], s["channels"]["end"]) == (60, 60, "2ep")
        assert c["data"]["val_split"] == 2000 and c["data"]["subset"] == 20000
    assert configs[0]["model_kwargs"] == {"width": 0.5}


def test_states_skip_resume_restart_and_mismatch(tmp_path: Path) -> None:
    done, resume, restart, other, new = (Run("small_cnn", "rigl", 0.1, s) for s in range(5))
    fake_run(tmp_path, done, report=report(0.8))
    fake_run(tmp_path, resume, checkpoint=True)
    fake_run(tmp_path, restart)
    fake_run(tmp_path, other, cfg={**config(other, SMOKE).to_dict(), "epochs": 7})
    expected = {done: "done", resume: "resume", restart: "new", other: "mismatch", new: "new"}
    for run, want in expected.items():
        assert accuracy_study.state(run, tmp_path, config(run, SMOKE).to_dict()) == want


def study_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--study-dir", str(tmp_path), "--size", "smoke", "--models", "small_cnn",
            "--methods", "rigl", "--densities", "0.1", "--seeds", "0,1,2", *extra]  # fmt: skip


def test_run_all_trains_only_what_is_missing(tmp_path: Path, monkeypatch, capsys) -> None:
    runs = [Run("small_cnn", "rigl", 0.1, s) for s in range(3)]
    fake_run(tmp_path, runs[0], report=report(0.8))
    fake_run(tmp_path, runs[1], checkpoint=True)
    calls: list[tuple[Any, str, bool]] = []

    class Outcome:
        finished, reason = True, StopReason.FINISHED
        report = report(0.5)

    def fake_training(cfg: Any, folder: Any, resume: bool = False, overwrite: bool = False):
        calls.append((cfg, Path(folder).name, resume))
        return Outcome()

    monkeypatch.setattr(accuracy_study, "run_training", fake_training)
    assert accuracy_study.main(study_args(tmp_path)) == 0
    assert [(c is None, name, resume) for c, name, resume in calls] == [
        (True, "rigl-d0.1-s1", True),  # resumed with its saved configuration
        (False, "rigl-d0.1-s2", False),
    ]
    log = accuracy_study.read_log(tmp_path)
    assert [e["run"] for e in log] == ["small_cnn/rigl-d0.1-s1", "small_cnn/rigl-d0.1-s2"]
    assert all(e["size"] == "smoke" and e["wall_s"] >= 0 and e["env"]["cpu"] for e in log)


def test_a_folder_of_another_configuration_stops_the_study(tmp_path: Path, monkeypatch) -> None:
    run = Run("small_cnn", "rigl", 0.1, 0)
    fake_run(tmp_path, run, cfg={**config(run, SMOKE).to_dict(), "seed": 99})
    monkeypatch.setattr(accuracy_study, "run_training", lambda *a, **k: pytest.fail("trained"))
    assert accuracy_study.main(study_args(tmp_path, "--seeds", "0")) == 2


def test_dry_run_lists_states_and_an_estimate(tmp_path: Path, capsys) -> None:
    fake_run(tmp_path, Run("small_cnn", "rigl", 0.1, 0), report=report(0.8))
    assert accuracy_study.main(study_args(tmp_path, "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "done     " in out and out.count("new      ") == 2
    assert "3 runs (1 done, 2 new)" in out and " h for the 2 not done" in out


def test_cells_average_the_final_numbers_only(tmp_path: Path) -> None:
    for seed, acc in enumerate((0.80, 0.90)):
        fake_run(tmp_path, Run("small_cnn", "rigl", 0.1, seed), report=report(acc, seconds=seed))
    fake_run(
        tmp_path,
        Run("small_cnn", "dense", 1.0, 0),
        report=report(0.95, train_gpu_supported_ratio=1.0),
    )
    fake_run(tmp_path, Run("small_cnn", "set", 0.1, 0))  # unfinished: no report, not counted
    grid = cells(collect(tmp_path), list(METHODS))
    assert [(c.method, c.density, c.seeds) for c in grid] == [
        ("dense", 1.0, [0]),
        ("rigl", 0.1, [0, 1]),
    ]
    rigl = grid[1]
    acc = rigl.stat("acc")
    assert acc is not None and acc.mean == pytest.approx(0.85) and acc.n == 2
    assert acc.std == pytest.approx(0.0707107, rel=1e-5)  # sample std, not the 0.999 val record
    assert rigl.stat("acc_masked").mean == pytest.approx(0.86)  # type: ignore[union-attr]
    assert rigl.stat("speedup_b256").mean == 2.0  # type: ignore[union-attr]
    assert rigl.stat("train_gpu_ratio") is None  # absent from these reports: no number
    assert grid[0].stat("train_gpu_ratio").mean == 1.0  # type: ignore[union-attr]
    assert fmt(acc, 100) == "85.00 ± 7.07"
    assert fmt(stat([0.5]), 100, 1, "%") == "50.0%" and fmt(None) == "—"


@pytest.mark.slow
def test_a_tiny_study_runs_resumes_and_writes_its_report(tmp_path: Path) -> None:
    study, results = tmp_path / "study", tmp_path / "docs" / "results.md"
    args = ["--study-dir", str(study), "--size", "smoke", "--dataset", "synthetic",
            "--models", "small_cnn", "--methods", "rigl,chase-sc0.5", "--densities", "0.1",
            "--seeds", "0"]  # fmt: skip
    assert accuracy_study.main(args) == 0
    assert len(accuracy_study.read_log(study)) == 2
    assert accuracy_study.main(args) == 0  # everything done: nothing runs again
    assert len(accuracy_study.read_log(study)) == 2
    assert accuracy_study.main([*args[:2], "--report", "--results", str(results)]) == 0
    text = results.read_text()
    for needle in ("## small_cnn", "| rigl | 0.1 | 1 |", "| chase-sc0.5 | 0.1 | 1 |",
                   "Sparse-amenable channels", "Per layer: small_cnn", "## Protocol",
                   "**Partial**: this page covers 2 of the full grid's",
                   "small_cnn 2 of 34", "resnet20 0 of"):  # fmt: skip
        assert needle in text, needle
    figures = results.parent / "figures"
    assert (figures / "accuracy_vs_flops.png").is_file()
    assert (figures / "amenable_small_cnn_rigl_d0.1_density.png").is_file()


def test_the_report_says_whether_it_covers_the_full_grid() -> None:
    import study_report
    from study_cells import Result
    from study_plan import DENSITIES, SEEDS

    full = plan(list(MODELS), list(METHODS), list(DENSITIES), list(SEEDS))
    found = [Result(r.model, r.method, r.density, r.seed, Path("."), {}) for r in full]
    assert study_report._coverage(found) == f"This page covers the full grid: all {len(full)} runs."
    text = study_report._coverage(found[1:])
    assert text.startswith(f"**Partial**: this page covers {len(full) - 1} of")
    assert f"{full[0].model} {sum(r.model == full[0].model for r in full) - 1} of" in text


def test_archive_keeps_finished_runs_results_and_is_a_study_folder(tmp_path: Path) -> None:
    study, kept = tmp_path / "runs", tmp_path / "kept"
    done, unfinished = plan(["small_cnn"], ["rigl"], [0.1], [0, 1])
    folder = fake_run(study, done, report=report(0.9), checkpoint=True)
    (folder / "slim.pt").write_bytes(b"a model")
    fake_run(study, unfinished, checkpoint=True)
    entry = {"run": done.key, "finished": True, "wall_s": 3.0}
    (study / accuracy_study.LOG).write_text(json.dumps(entry) + "\n")
    assert accuracy_study.archive(study, kept) == 1
    assert accuracy_study.archive(study, kept) == 1  # again: the log is not repeated
    copied = kept / done.folder(Path(".")).as_posix()
    assert sorted(p.name for p in copied.iterdir()) == [
        "config.yaml",
        "metrics.jsonl",
        "report.json",
    ]
    assert not (kept / unfinished.folder(Path("."))).exists()
    assert accuracy_study.read_log(kept) == [entry]
    cfg = config(done, SMOKE).to_dict()
    assert accuracy_study.state(done, kept, cfg) == "done"  # the study skips it there


def test_the_report_counts_runs_that_overlapped() -> None:
    from study_report import overlap

    def entry(start: str, wall: float) -> dict[str, Any]:
        return {"started": f"2026-01-01T10:{start}+00:00", "wall_s": wall}

    assert overlap([]) == 0
    assert overlap([entry("00:00", 60), entry("01:00", 60)]) == 1  # one after the other
    assert overlap([entry("00:00", 120), entry("01:00", 120), entry("02:30", 10)]) == 2
