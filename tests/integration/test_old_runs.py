"""Run folders written by an earlier version (before a setting existed) still load and resume."""

from __future__ import annotations

import torch
import yaml

from chase.train.rundir import ADDED_LATER, RunDir
from runs import TINY


def test_a_run_folder_without_later_settings_reads_and_resumes(cli, tmp_path) -> None:
    out = tmp_path / "run"
    code, _, err = cli("train", *TINY, "--epochs", "1", "--out", out, "--stop-after-steps", 2)
    assert code == 0, err
    # make it look older: drop every setting added later from config.yaml and the checkpoint
    config = yaml.safe_load((out / "config.yaml").read_text())
    for key in ADDED_LATER:
        _drop(config, key)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    path = out / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    for key in ADDED_LATER:
        _drop(state["config"], key)
    torch.save(state, path)
    assert RunDir(out).config.model == "cifar_resnet20"  # the defaults fill the gaps
    code, _, err = cli("train", "--resume", out, "--quiet")
    assert code == 0, err
    assert (out / "report.json").is_file()


def _drop(config: dict, dotted: str) -> None:
    """Remove ``a.b`` from a nested config (it must be there: the run wrote it)."""
    *parents, last = dotted.split(".")
    for part in parents:
        config = config[part]
    del config[last]
