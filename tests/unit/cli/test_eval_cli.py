"""``chase eval``: a run folder, or a slim.pt inside one, is scored on the run's own data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def eval_json(cli, *args: object) -> dict:
    code, out, err = cli("eval", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_slim_pt_in_a_run_folder_uses_the_runs_data(cli, run_dir: Path) -> None:
    by_folder = eval_json(cli, run_dir)
    by_file = eval_json(cli, run_dir / "slim.pt")  # no --dataset: the run's config.yaml says
    assert by_file["target"] == str(run_dir / "slim.pt") == by_folder["target"]
    for key in ("dataset", "test_accuracy", "test_loss", "examples", "parameters"):
        assert by_file[key] == by_folder[key], key


def test_slim_pt_outside_a_run_folder_needs_dataset(cli, run_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "slim.pt"
    shutil.copy(run_dir / "slim.pt", bare)
    code, out, err = cli("eval", bare)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"chase: error: --dataset is needed to evaluate {bare}: it is not in a run folder "
        "(no config.yaml next to it)"
    ]
    result = eval_json(cli, bare, "--dataset", "synthetic")
    assert result["dataset"] == "synthetic" and result["examples"] > 0
