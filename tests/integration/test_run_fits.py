"""A run tells the truth about what its settings can do in its length, its end phase says what
it is doing, and resuming a finished run does nothing (unless asked to redo its end)."""

from __future__ import annotations

import json
import re

from runs import TINY, snapshot

#: The demo preset on synthetic Fashion-MNIST-shaped data, small enough for seconds: 170 steps
#: per epoch at batch 8 (the preset's 3 epochs would be 510 steps), no speed measurement.
DEMO_SMALL = [
    "--preset", "fmnist-demo", "--dataset", "synthetic",
    "--set", "data.synthetic_like=fashion-mnist", "--set", "data.synthetic_size=1360",
    "--batch-size", "8", "--set", "bench.repeats=0",
    "--set", "recalibrate_bn_steps=2", "--test-subset", "40", "--quiet",
]  # fmt: skip


def _report(out) -> dict:
    return json.loads((out / "report.json").read_text())


def test_the_demo_preset_with_half_its_epochs_reaches_its_budget_and_channel_target(
    cli, tmp_path, caplog
):
    out = tmp_path / "half"
    code, _, err = cli("train", *DEMO_SMALL, "--epochs", "1.5", "--out", out)
    assert code == 0, err
    report = _report(out)
    assert report["steps"] == 255
    assert report["warnings"] == [] and not [r for r in caplog.records if r.levelname == "WARNING"]
    assert abs(report["density"] - 0.1) < 1e-5  # round(0.1 N) of N: on the budget, not above
    assert report["channel_sparsity"] == 0.5
    assert report["test_examples"] == 40


def test_milestones_in_epochs_that_outlast_a_shortened_run_are_reported(cli, tmp_path, caplog):
    """The same run with the old epoch-valued milestones (2 of 3 epochs, past the end of a
    1-epoch run): warned at the start, and report.json says what was not reached."""
    out = tmp_path / "short"
    code, _, err = cli(
        "train", *DEMO_SMALL, "--epochs", "1", "--out", out,
        "--set", "sparsity.mest_end=2ep", "--set", "sparsity.channels.end=2ep",
    )  # fmt: skip
    assert code == 0, err
    warnings = _report(out)["warnings"]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    predicted = [w for w in warnings if w in logged]  # logged once at the start
    assert any(w.startswith("the final density stays near") for w in predicted), warnings
    assert any(w.startswith("channel sparsity ends near") for w in predicted), warnings
    measured = [w for w in warnings if w not in predicted]  # checked at the end
    (shortfall,) = [w for w in measured if w.startswith("channel sparsity ended")]
    assert re.match(r"channel sparsity ended at 0\.4\d\d, short of the target 0\.5 \(", shortfall)
    # the density, if listed, is above the budget by count (MEST's bound held it there)
    assert all(w.startswith("the final density ") for w in measured if w != shortfall)
    assert _report(out)["channel_sparsity"] < 0.5


def test_a_run_too_short_for_its_settings_warns_that_chase_does_nothing(cli, tmp_path, caplog):
    out = tmp_path / "tiny"
    code, _, err = cli("train", *TINY, "--method", "chase", "--out", out)
    assert code == 0, err
    warnings = _report(out)["warnings"]
    assert [w.split(":")[0].split(" (")[0] for w in warnings] == [
        "no topology update before the end of the run",  # said at the start
        "no channel event before the end of the run",
        "channel sparsity ended at 0.000, short of the target 0.5",  # measured at the end
    ]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert logged == warnings[:2]
    assert _report(out)["channel_sparsity"] == 0.0


def test_resume_of_a_finished_run_does_nothing_and_redo_end_redoes_it(cli, tmp_path):
    out = tmp_path / "done"
    code, _, err = cli("train", *TINY, "--epochs", "1", "--out", out)
    assert code == 0, err
    before = snapshot(out)
    code, text, err = cli("train", "--resume", out)
    assert code == 0, err
    assert text.strip() == (
        f"{out} already finished (step 4, report.json written): nothing to do; --redo-end runs "
        "its end of run again"
    )
    assert snapshot(out) == before
    code, _, err = cli("train", "--resume", out, "--redo-end", "--quiet")
    assert code == 0, err
    after = _report(out)
    assert after["steps"] == 4 and set(after["end_seconds"]) >= {
        "test_masked",
        "test_slim",
        "total",
    }
    assert snapshot(out)["report.json"] != before["report.json"]  # timings measured again


def test_redo_end_without_resume_is_one_clear_error(cli, tmp_path):
    code, _, err = cli("train", *TINY, "--out", tmp_path / "x", "--redo-end")
    assert code == 2
    assert err.strip() == (
        "chase: error: --redo-end only applies with --resume RUN_DIR of a finished run"
    )
    assert not (tmp_path / "x").exists()


def test_the_end_of_a_run_announces_each_phase_with_its_size_and_time(cli, tmp_path):
    out = tmp_path / "loud"
    args = [a for a in TINY if a != "--quiet"]
    code, text, err = cli("train", *args, "--epochs", "1", "--out", out, "--test-subset", "10")
    assert code == 0, err
    assert "end of run: evaluating the masked model on 10 test examples ..." in text
    assert "end of run: recalibrating BatchNorm of the slim model on 2 training batches: " in text
    assert "end of run: measuring dense vs slim inference speed: " in text
    report = _report(out)
    assert report["test_examples"] == 10
    assert set(report["end_seconds"]) == {
        "test_masked", "recalibrate_bn", "test_slim", "speed", "total"
    }  # fmt: skip


def test_a_chase_run_with_no_prunable_channel_ends_with_a_report(cli, tmp_path):
    """Every group excluded: nothing to prune, no division by zero channels at the end."""
    out = tmp_path / "none"
    code, _, err = cli("train", *TINY, "--method", "chase", "--out", out,
                       "--set", "sparsity.channels.exclude=['*']")  # fmt: skip
    assert code == 0, err
    assert not [w for w in _report(out)["warnings"] if w.startswith("channel sparsity ended")]
