"""The run folder: overwrite leaves nothing of the old run; files get the usual permissions."""

import os
import stat

import pytest

from chase.files import atomic_write_text
from chase.train.config import RunConfig
from chase.train.rundir import RUN_DIRS, RUN_FILES, MetricsLog, RunDir, read_metrics, resume_at


def config(model: str) -> dict:
    return {**RunConfig().to_dict(), "model": model}


def test_overwrite_removes_everything_the_old_run_wrote(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create(config("a"), overwrite=False)
    for name in RUN_FILES:
        (run.path / name).write_text("old")
    for name in RUN_DIRS:
        (run.path / name).mkdir(exist_ok=True)
        (run.path / name / "old.bin").write_text("old")
    (run.path / "notes.txt").write_text("the user's own file")
    run.create(config("b"), overwrite=True)
    assert run.read_config() == config("b")
    left = sorted(p.name for p in run.path.iterdir())
    assert left == ["config.yaml", "notes.txt"]


def test_existing_run_is_refused_without_overwrite(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create(config("a"), overwrite=False)
    with pytest.raises(Exception, match="--overwrite"):
        run.create(config("b"), overwrite=False)
    assert run.read_config() == config("a")


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


def _records(n: int) -> bytes:
    return b"".join(b'{"kind":"train","step":%d}\n' % i for i in range(1, n + 1))


@pytest.mark.parametrize(
    ("content", "offset", "step", "kept"),
    [
        (_records(5), len(_records(3)), 3, _records(3)),  # lines after the checkpoint go
        (_records(3), len(_records(3)), 3, _records(3)),  # nothing to cut
        (_records(2) + b'{"kind":"tr', len(_records(3)), 3, _records(2)),  # cut short: torn
        (b"", len(_records(3)), 3, b""),  # emptied: stays empty, never padded
        (_records(5), len(_records(5)), 3, _records(3)),  # a record beyond the step goes
        (_records(5), len(_records(3)) - 4, 3, _records(2)),  # offset inside a line
        (_records(3), 0, 0, b""),  # no checkpoint: the run starts again from step 0
    ],
)
def test_resume_cuts_metrics_back_to_the_checkpoint_and_never_pads(
    tmp_path, content, offset, step, kept
):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(content)
    resume_at(path, offset, step)
    assert path.read_bytes() == kept
    assert b"\x00" not in path.read_bytes()


def test_metrics_shorter_than_the_checkpoint_expects_are_reported(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(_records(1))
    with caplog.at_level("WARNING"):
        log = MetricsLog(path, resume_offset=len(_records(3)), resume_step=3)
    log.write({"kind": "train", "step": 4})
    log.close()
    assert "expects" in caplog.text
    assert [r["step"] for r in read_metrics(path)] == [1, 4]


def test_metrics_are_synced_and_their_offset_counts_bytes(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write({"step": 1, "loss": "é"})
    log.sync()
    assert synced and log.offset == (tmp_path / "metrics.jsonl").stat().st_size
    log.close()


def test_readers_skip_damaged_metrics_lines_with_one_warning(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    third = _records(3)[len(_records(2)) :]
    path.write_bytes(_records(2) + b"\xff\xfe garbage\n[1, 2]\n" + third + b'{"to')
    with caplog.at_level("WARNING"):
        records = read_metrics(path)
    assert [r["step"] for r in records] == [1, 2, 3]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "3 damaged line(s) (line 3 and later)" in warnings[0].message


def test_leftovers_of_interrupted_writes_are_removed_and_nothing_else(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create({"model": "a"}, overwrite=False)
    (run.path / "checkpoints").mkdir()
    left = [run.path / ".config.yaml.ab12cd34.tmp", run.path / "checkpoints/.last.pt.x_9y8z7w.tmp"]
    kept = [run.path / "notes.tmp", run.path / ".hidden", run.path / "checkpoints" / "last.pt"]
    for p in left + kept:
        p.write_text("x")
    run.remove_temporaries()
    assert not any(p.exists() for p in left)
    assert all(p.exists() for p in kept)
