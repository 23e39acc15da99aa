"""Files the project writes: atomically (never half-written), and read back with checks."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from chase.errors import CheckpointError, StorageError

#: The temporary files ``atomic_write`` makes: ``.NAME.XXXXXXXX.tmp`` beside ``NAME``
#: (``tempfile.mkstemp``'s eight random characters); a process killed mid-write leaves one.
TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def atomic_write(path: str | os.PathLike[str], write: Callable[[Any], None]) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it onto
    ``path`` (``os.replace`` is atomic): the old file stays valid until the new one is whole.

    A failure of the file system (a full disk, no permission) removes the temporary file and
    raises ``StorageError`` naming ``path``, with the original ``errno``."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _plain_file_mode())  # mkstemp's 0600 would hide results
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise storage_error(exc, path, "write") from exc
        raise
    return path


def storage_error(exc: OSError, path: str | os.PathLike[str], verb: str) -> StorageError:
    """``exc`` as a ``StorageError``: "cannot VERB PATH: <cause>" (same ``errno``)."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    return StorageError(exc.errno, f"cannot {verb} {path}: {cause}", str(path))


def remove_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed ``atomic_write`` calls left in ``folder``
    (only names ``atomic_write`` makes); returns them. Only the folder's owner may call this:
    another process's write in progress would lose its temporary file."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if TEMPORARY.match(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _plain_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0o666 less the process umask.

    Read from ``/proc`` where it can be (setting the umask to read it back is not thread-safe).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def load_versioned(
    path: str | os.PathLike[str], fmt: str, version: int, what: str, map_location: Any = "cpu"
) -> dict[str, Any]:
    """A ``torch.save``d dict with ``format == fmt`` and ``version == version``, loaded with
    ``weights_only=True``; anything else raises ``CheckpointError`` with one sentence."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or garbled files
        raise CheckpointError(
            f"{what} {path} is corrupt or not a chase file ({type(exc).__name__})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise CheckpointError(f"{path} is not a {what} (format is not {fmt!r})")
    if data.get("version") != version:
        raise CheckpointError(
            f"{what} {path} has format version {data.get('version')!r}; this version of "
            f"chase reads version {version}"
        )
    return data
