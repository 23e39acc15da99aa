"""The run folder's lock: one holder at a time, named in the refusal; a dead holder's lock is
taken over; the lock file and any folder made for it go when the lock is released."""

import json
import os
import socket

import pytest

from chase.errors import ConfigError, RunInUseError
from chase.train import lock as lock_module
from chase.train.lock import LOCK_NAME, Holder, RunLock


def test_a_second_holder_is_refused_with_the_first_ones_pid_host_and_start(tmp_path):
    first = RunLock(tmp_path / "run")
    first.acquire()
    note = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert note["pid"] == os.getpid() and note["host"] == socket.gethostname()
    with pytest.raises(RunInUseError) as refused:
        RunLock(tmp_path / "run").acquire()  # another open file description: flock conflicts
    message = str(refused.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}, started {note['started']}" in message
    assert "\n" not in message
    first.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with RunLock(tmp_path / "run"):  # free again
        pass


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    """A killed holder leaves its file and note; the kernel has dropped its flock."""
    folder = tmp_path / "run"
    folder.mkdir()
    dead = Holder(pid=2**22 + 12345, host=socket.gethostname(), started="yesterday")
    (folder / LOCK_NAME).write_text(json.dumps(dead.__dict__))
    with caplog.at_level("INFO", logger="chase.train.lock"), RunLock(folder):
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"pid {dead.pid}" in caplog.text and "yesterday" in caplog.text
    assert not (folder / LOCK_NAME).exists()


def test_a_held_lock_with_a_stale_or_missing_note_is_still_refused(tmp_path, monkeypatch):
    """Between taking the lock and writing its note, the holder's file is empty or still holds
    the note of the dead run it took over: the refusal waits briefly, then names no one
    rather than the dead process."""
    monkeypatch.setattr(lock_module, "NOTE_WAIT_S", 0.1)
    holder = RunLock(tmp_path)
    holder.acquire()
    dead = Holder(pid=2**22 + 12345, host=socket.gethostname(), started="yesterday")
    assert dead.gone()
    for note in (b"", json.dumps(dead.__dict__).encode()):
        (tmp_path / LOCK_NAME).write_bytes(note)
        with pytest.raises(RunInUseError, match="has not said who it is") as refused:
            RunLock(tmp_path).acquire()
        assert "yesterday" not in str(refused.value)
    holder.release()


def test_a_refused_lock_leaves_no_folder_behind_and_a_released_one_removes_empty_ones(tmp_path):
    target = tmp_path / "a" / "b"
    with RunLock(target):
        assert target.is_dir()
    assert not (tmp_path / "a").exists()  # made for the lock, still empty: removed
    with RunLock(target):
        (target / "config.yaml").write_text("x")
    assert (target / "config.yaml").exists() and not (target / LOCK_NAME).exists()


def test_a_file_in_the_way_is_a_config_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        RunLock(tmp_path / "file").acquire()
