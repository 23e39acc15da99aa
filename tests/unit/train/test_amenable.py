"""``amenable`` records: the sparse-amenable channels measured during training, not only at
the end (``amenable_every`` steps, step 0 and epoch ends; 0 turns them off)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chase.errors import ConfigError
from chase.sparsity.report import amenable_summary
from chase.train.config import RunConfig
from chase.train.run import Sources, resolve_config, run_training
from chase.train.rundir import read_metrics

#: 8 steps (2 epochs of 4 batches) of a quarter-width small CNN on synthetic grey 28x28 images.
FLAGS: dict[str, Any] = {
    "model": "small_cnn", "model_kwargs": {"width": 0.25}, "method": "rigl", "epochs": 2,
    "data.name": "synthetic", "data.synthetic_like": "fashion-mnist", "data.synthetic_size": 64,
    "data.batch_size": 16, "data.workers": 0, "sparsity.update_every": 2, "log_every": 4,
    "bench.repeats": 0, "recalibrate_bn_steps": 1,
}  # fmt: skip


def tiny(**flags: Any) -> RunConfig:
    return RunConfig.from_dict(resolve_config(Sources(flags={**FLAGS, **flags})))


def amenable_records(run: Path) -> list[dict[str, Any]]:
    return [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "amenable"]


def test_records_at_start_every_k_steps_and_at_epoch_ends(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_training(tiny(amenable_every=3), run).finished
    records = amenable_records(run)
    assert [r["step"] for r in records] == [0, 3, 4, 6, 8]  # 4 and 8 end an epoch
    assert [r["epoch"] for r in records] == [0, 0.75, 1, 1.5, 2]
    end = json.loads((run / "channels.json").read_text())
    assert records[-1]["fraction"] == end["amenable_fraction"]  # same masks, same report
    assert records[-1]["groups"].keys() <= end["groups"].keys()
    for r in records:
        assert 0.0 <= r["fraction"] <= 1.0
        assert r["live"] > 0 and r["ratio"] == 0.5
        assert len(r["density_rel"]) == 3 and r["density_rel"] == sorted(r["density_rel"])


def test_zero_turns_records_off_and_negative_is_rejected(tmp_path: Path) -> None:
    run = tmp_path / "off"
    assert run_training(tiny(amenable_every=0, epochs=1), run).finished
    assert amenable_records(run) == []
    with pytest.raises(ConfigError, match="amenable_every"):
        tiny(amenable_every=-1)


def test_summary_of_a_report() -> None:
    report = {
        "ratio": 0.5, "live": 4, "amenable": 1, "amenable_fraction": 0.25,
        "groups": {
            "a": {"live": 3, "amenable": 1, "density": 0.4, "alive": [True, True, True, False],
                  "channel_density": [0.1, 0.5, 0.6, 0.0], "channel_umm": [1.0, 2.0, 3.0, 0.0]},
            "b": {"live": 1, "amenable": 0, "density": 0.2, "alive": [True],
                  "channel_density": [0.2], "channel_umm": [0.5]},
            "gone": {"live": 0, "amenable": 0, "density": 0.0, "alive": [False],
                     "channel_density": [0.0], "channel_umm": [0.0]},
        },
    }  # fmt: skip
    s = amenable_summary(report)
    assert s["fraction"] == 0.25 and s["live"] == 4
    assert set(s["groups"]) == {"a", "b"}
    a = s["groups"]["a"]
    assert a["fraction"] == pytest.approx(1 / 3)
    assert a["density_rel"][1] == pytest.approx(1.25)  # median of 0.25, 1.25, 1.5
    assert a["umm_rel"][1] == pytest.approx(1.0)  # median UMM 2.0 over a mean of 2.0
    assert s["groups"]["b"]["density_rel"] == [1.0, 1.0, 1.0]
