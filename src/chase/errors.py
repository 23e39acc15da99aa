"""Exceptions the CLI turns into one clear line and exit code 2 (bad input, never a bug)."""

from __future__ import annotations


class ChaseError(Exception):
    """Base class of every user-facing error raised by the project."""


class ConfigError(ChaseError, ValueError):
    """An invalid configuration value: names the field, the value and what is allowed."""


class DataError(ChaseError):
    """A data folder is missing, incomplete or in the wrong format."""


class CheckpointError(ChaseError):
    """A checkpoint or run folder is corrupt, incompatible or not what was expected."""


class InvariantError(RuntimeError):
    """An internal invariant of the sparsity engine is broken (a bug or outside tampering)."""


class StorageError(ChaseError, OSError):
    """A run file could not be written (a full disk, no permission): an ``OSError`` with the
    original ``errno`` whose message names the file and the cause."""

    def __str__(self) -> str:
        return str(self.strerror)


class RunInUseError(ChaseError):
    """Another process holds the run folder's lock (its pid, host and start time are named)."""


class ScheduleWarning(UserWarning):
    """Sparsity settings that cannot act within the run's ``total_steps``: no topology update or
    channel event before the end, a channel target or a density budget not reached."""
