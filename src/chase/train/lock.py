"""One owner per run folder: ``RUN_DIR/run.lock``, held with ``fcntl.flock`` for the whole life
of a run (rank 0 holds it under ``torchrun``), so a second ``chase train`` on the same folder
fails at once instead of mixing two runs' files.

The kernel releases a ``flock`` when its holder dies, however it dies, so a lock that can be
taken is free: a lock file left by a killed run is simply taken over. The file's content
(pid, host, start time of the holder) is only information for the error message, written
after the lock is taken and removed with the file when the run ends. Readers (``chase eval``,
``flops``, ``bench``, ``plot``) never take the lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from chase.errors import ConfigError, RunInUseError
from chase.files import storage_error

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
#: How long a process that finds the lock taken waits for the holder to write who it is (the
#: holder writes right after taking the lock; an empty or stale note means it is doing so).
NOTE_WAIT_S = 1.0


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a run folder's lock."""

    pid: int
    host: str
    started: str
    command: str = ""

    @classmethod
    def me(cls) -> Holder:
        started = datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), started, " ".join(sys.argv))

    @classmethod
    def parse(cls, text: bytes) -> Holder | None:
        try:
            data = json.loads(text.decode("utf-8"))
            return cls(int(data["pid"]), str(data["host"]), str(data["started"]),
                       str(data.get("command", "")))  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"

    def gone(self) -> bool:
        """Whether this note is known to be stale: its process on this host has ended."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # another user's live process
            return False
        return False


class RunLock:
    """The lock of one run folder; ``acquire`` creates the folder if needed, ``release`` removes
    the lock file and any folder ``acquire`` created that is still empty."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._made: list[Path] = []

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ``RunInUseError`` naming its holder (at once, never waits for
        the holder to finish)."""
        if self.held:
            return
        self._make_folder()
        deadline = time.monotonic() + NOTE_WAIT_S
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Holder.parse(_read(fd))
                os.close(fd)
                if (holder is None or holder.gone()) and time.monotonic() < deadline:
                    time.sleep(0.02)  # the holder has the lock but has not written its note yet
                    continue
                self._remove_made()
                known = holder if holder is not None and not holder.gone() else None
                raise RunInUseError(_in_use(self.folder, known)) from None
            if not _same_file(fd, self.path):  # its holder removed it as we opened it: again
                os.close(fd)
                continue
            self._fd = fd
            break
        previous = Holder.parse(_read(fd))
        if previous is not None:
            log.info("%s: taking over the lock of %s, which ended without releasing it",
                     self.folder, previous.describe())  # fmt: skip
        self._write_note()

    def release(self) -> None:
        """Remove the lock file, then unlock (in that order: a process that opened the file
        meanwhile finds it removed and tries again)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        self._remove_made()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _make_folder(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"{self.folder} exists and is not a folder")
        missing = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, self.folder, "create the run folder") from None
        self._made = missing  # deepest first, the order to remove them in

    def _remove_made(self) -> None:
        for folder in self._made:
            try:
                folder.rmdir()  # only if still empty: the run wrote nothing
            except OSError:
                break
        self._made = []

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            self._remove_made()
            raise storage_error(exc, self.path, "open the lock file") from None

    def _write_note(self) -> None:
        assert self._fd is not None
        text = json.dumps(asdict(Holder.me())).encode("utf-8") + b"\n"
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text, 0)
        except OSError as exc:
            self.release()
            raise storage_error(exc, self.path, "write") from None


def _read(fd: int) -> bytes:
    try:
        return os.pread(fd, 4096, 0)
    except OSError:
        return b""


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _in_use(folder: Path, holder: Holder | None) -> str:
    who = holder.describe() if holder is not None else "a process that has not said who it is"
    return (
        f"run folder {folder} is in use by another chase run ({who}); wait for it to end or "
        f"stop it (lock: {folder / LOCK_NAME})"
    )
