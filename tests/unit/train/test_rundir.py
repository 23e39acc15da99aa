"""The run folder: overwrite leaves nothing of the old run; files get the usual permissions."""

import os
import stat

import pytest

from chase.files import atomic_write_text
from chase.train.rundir import RUN_DIRS, RUN_FILES, RunDir


def test_overwrite_removes_everything_the_old_run_wrote(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create({"model": "a"}, overwrite=False)
    for name in RUN_FILES:
        (run.path / name).write_text("old")
    for name in RUN_DIRS:
        (run.path / name).mkdir(exist_ok=True)
        (run.path / name / "old.bin").write_text("old")
    (run.path / "notes.txt").write_text("the user's own file")
    run.create({"model": "b"}, overwrite=True)
    assert run.read_config() == {"model": "b"}
    left = sorted(p.name for p in run.path.iterdir())
    assert left == ["config.yaml", "notes.txt"]


def test_existing_run_is_refused_without_overwrite(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create({"model": "a"}, overwrite=False)
    with pytest.raises(Exception, match="--overwrite"):
        run.create({"model": "b"}, overwrite=False)
    assert run.read_config() == {"model": "a"}


def test_every_run_file_the_trainer_writes_is_listed():
    run = RunDir("r")
    written = {run.config_path, run.metrics_path, run.slim_path, run.report_path}
    written.add(run.channels_path)
    assert {p.name for p in written} == set(RUN_FILES)
    assert run.checkpoint_path.parent.name in RUN_DIRS


@pytest.mark.parametrize("umask", [0o022, 0o027])  # neither gives mkstemp's 0o600
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
