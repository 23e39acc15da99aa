"""The run folder: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/last.pt``, ``slim.pt``,
``report.json``, ``channels.json`` (and ``plots/``; ``run.lock`` while a run holds it). One
class, ``RunDir``, knows its paths, creates, refuses or overwrites a run safely, and reads a run
back (lazily, read-only) for the measuring commands and figures. A damaged file is a
``CheckpointError`` naming it, except damaged ``metrics.jsonl`` lines: readers skip them with one
warning, and a resumed run cuts the file back to its checkpoint (``MetricsLog``)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from torch import nn

import chase
from chase.data.specs import DataShape, data_shape
from chase.errors import CheckpointError, ConfigError
from chase.files import atomic_write_text, remove_temporaries, storage_error
from chase.sparsity.engine import SparsityEngine
from chase.train.checkpoint import load_checkpoint
from chase.train.config import RunConfig
from chase.train.lock import RunLock
from chase.train.restore import build_model, reader_engine, restore
from chase.train.sources import load_yaml_text

log = logging.getLogger(__name__)

#: Everything a run writes; ``--overwrite`` removes all of it, so nothing of the old run is left.
RUN_FILES = ("config.yaml", "metrics.jsonl", "slim.pt", "report.json", "channels.json")
RUN_DIRS = ("checkpoints", "plots")


class RunDir:
    """One run folder: its paths, its creation, and read-only access to what it holds."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / "metrics.jsonl"
        self.checkpoint_path = self.path / "checkpoints" / "last.pt"
        self.slim_path = self.path / "slim.pt"
        self.report_path = self.path / "report.json"
        self.channels_path = self.path / "channels.json"

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def lock(self) -> RunLock:
        """The folder's lock (``run.lock``); a run holds it from start to end, readers never."""
        return RunLock(self.path)

    # -- writing (only while holding the lock) -----------------------------------------------
    def create(self, config: dict[str, Any], overwrite: bool) -> None:
        """Start a new run here; refuse to touch an existing run unless ``overwrite``."""
        self.refuse_existing(overwrite)
        if overwrite:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name in RUN_DIRS:
                shutil.rmtree(self.path / name, ignore_errors=True)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, self.path, "create the run folder") from None
        self.write_config(config)

    def remove_temporaries(self) -> None:
        """Delete what writes cut short by a kill left behind (``.NAME.XXXXXXXX.tmp``, up to
        a checkpoint in size). Readers ignore these files; only the lock's holder removes them."""
        for folder in (self.path, *(self.path / name for name in RUN_DIRS)):
            for path in remove_temporaries(folder):
                log.info("removed %s, left by an interrupted write", path)

    def refuse_existing(self, overwrite: bool) -> None:
        """``ConfigError`` if this path cannot take a new run (a file, or a run without
        ``overwrite``); changes nothing."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} exists and is not a folder")
        if (self.is_run() or self.checkpoint_path.exists()) and not overwrite:
            raise ConfigError(
                f"{self.path} already holds a run; continue it with --resume {self.path} "
                "or start over with --overwrite"
            )

    def write_config(self, config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
        atomic_write_text(self.config_path, text)

    # -- reading ----------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """The resolved configuration saved in this run folder, as plain data (the whole tree
        ``RunConfig.to_dict`` writes: a file cut short is refused, not filled with defaults)."""
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"{self.path} is a file, not a run folder")
        if not self.path.is_dir():
            raise CheckpointError(f"run folder {self.path} does not exist")
        if not self.is_run():
            raise CheckpointError(f"{self.path} is not a chase run folder (no config.yaml)")
        where = self.config_path
        try:
            text = where.read_bytes().decode("utf-8")
            data = load_yaml_text(text)
        except UnicodeDecodeError:
            raise CheckpointError(f"{where} is damaged: not UTF-8 text") from None
        except yaml.YAMLError:
            raise CheckpointError(f"{where} is damaged: not valid YAML") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{where} is damaged: it does not hold a run configuration")
        missing = _missing_keys(data)
        if missing or not text.endswith("\n"):
            cut = f"no {missing[0]}" if missing else "no final newline"
            raise CheckpointError(f"{where} is damaged: cut short ({cut})")
        return data

    @cached_property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.read_config())

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics_path)

    @cached_property
    def report(self) -> dict[str, Any] | None:
        return _read_json(self.report_path)

    @cached_property
    def channels(self) -> dict[str, Any] | None:
        return _read_json(self.channels_path)

    @cached_property
    def checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.checkpoint_path, map_location="cpu")

    def finished_report(self) -> dict[str, Any] | None:
        """The report of a finished run whose end-of-run files are all intact (``report.json``,
        ``slim.pt`` and, if written, ``channels.json``); None otherwise: the run has not ended,
        or a damaged or missing file needs its end of run again (``--resume`` does that)."""
        try:
            report = _read_json(self.report_path)
            if report is None or not self.slim_path.is_file():
                return None
            chase.load_slim(self.slim_path)
            _read_json(self.channels_path)
        except CheckpointError:
            return None
        return report

    @cached_property
    def slim(self) -> chase.SlimModel | None:
        """The saved slim model, or None for an unfinished run (no ``slim.pt`` yet)."""
        if not self.slim_path.is_file():
            return None
        try:
            return chase.load_slim(self.slim_path)
        except CheckpointError as exc:
            raise CheckpointError(
                f"{exc}; chase train --resume {self.path} writes it again"
            ) from None

    @cached_property
    def shape(self) -> DataShape:
        """Classes and input shape the run's model was built for."""
        d = self.config.data
        shape = data_shape(d.name, synthetic_like=d.synthetic_like, image_size=d.image_size)
        kwargs = self._arch_kwargs()
        classes = int(kwargs.get("num_classes", shape.num_classes))
        channels = int(kwargs.get("in_channels", shape.input_shape[0]))
        return DataShape(classes, (channels, *shape.input_shape[1:]))

    def _arch_kwargs(self) -> dict[str, Any]:
        """Constructor arguments recorded in ``slim.pt`` (exact for ImageNet folders whose
        class count differs from 1000); empty when the run has no slim file yet."""
        arch = self.slim.arch if self.slim is not None else None
        return dict(arch.get("kwargs") or {}) if isinstance(arch, dict) else {}

    def original_model(self) -> nn.Module:
        """A freshly initialised model of the run's original architecture (eval mode)."""
        cfg = self.config
        kwargs = {**self._arch_kwargs(), **cfg.model_kwargs}
        classes = kwargs.pop("num_classes", self.shape.num_classes)
        channels = kwargs.pop("in_channels", self.shape.input_shape[0])
        return build_model(cfg.model, classes, channels, kwargs).eval()

    def rebuild(self) -> tuple[nn.Module, SparsityEngine | None]:
        """The trained (masked) model and its sparsity engine, restored from the checkpoint
        (a model that shrank while training comes back at the checkpoint's shape)."""
        model = self.original_model()
        state = self.checkpoint
        engine = reader_engine(model, state.get("engine"), self.shape.input_shape)
        restore(state, self.checkpoint_path, model=model, engine=engine)
        return model.eval(), engine

    def slim_model(self, model: nn.Module, engine: SparsityEngine | None) -> nn.Module:
        """``slim.pt``'s model, or the slim copy of ``model`` for a run that has not ended."""
        if self.slim is not None:
            return self.slim.model.eval()
        if engine is not None and engine.groups is not None:
            return chase.slim(model, engine).eval()
        return model


#: Settings added after run folders were first written: an older config.yaml lacks them and
#: takes their defaults (each later addition goes here, or old runs would read as damaged).
ADDED_LATER = frozenset({"amenable_every", "data.test_subset"})


def _missing_keys(data: dict[str, Any]) -> list[str]:
    """Keys of the full configuration tree absent from ``data`` (a free-form section such as
    ``sparsity`` or ``model_kwargs`` is only required to be there; ``ADDED_LATER`` keys may be
    absent)."""
    missing = []
    for key, default in RunConfig().to_dict().items():
        if key not in data and key not in ADDED_LATER:
            missing.append(key)
        elif isinstance(default, dict) and default and isinstance(data[key], dict):
            missing += [
                f"{key}.{k}"
                for k in default
                if k not in data[key] and f"{key}.{k}" not in ADDED_LATER
            ]
    return missing


class MetricsLog:
    """Append-only JSON lines. ``offset`` (bytes written) is saved in each checkpoint, after
    ``sync`` has put the lines on disk; a resumed run first cuts the file back to the last
    complete record at or before its checkpoint (``resume_at``), so no line is repeated."""

    def __init__(
        self,
        path: Path,
        enabled: bool = True,
        resume_offset: int | None = None,
        resume_step: int = 0,
    ):
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        if resume_offset is not None:
            resume_at(path, resume_offset, resume_step)
        try:
            self._fh = open(path, "ab")  # noqa: SIM115 - kept open for the run
        except OSError as exc:
            raise storage_error(exc, path, "write") from None

    @property
    def offset(self) -> int:
        if not self.enabled:
            return 0
        with self._writing():
            self._fh.flush()
        return self._fh.tell()

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            line = json.dumps(record, separators=(",", ":")) + "\n"
            with self._writing():
                self._fh.write(line.encode("utf-8"))
                self._fh.flush()

    def sync(self) -> None:
        """Put every line written so far on disk (``fsync``), as a checkpoint is."""
        if self.enabled:
            with self._writing():
                self._fh.flush()
                os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self.enabled and not self._fh.closed:
            try:
                self.sync()
            finally:
                self._fh.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise storage_error(exc, self.path, "write") from None


def resume_at(path: Path, offset: int, step: int) -> None:
    """Cut ``metrics.jsonl`` back to where a run resumes: to the last complete record within
    the first ``offset`` bytes (the checkpoint's offset) whose step is at most ``step``. The
    file only ever gets shorter (a file cut short or emptied is never padded); records the
    checkpoint expects but the file lost are reported once, as a warning."""
    try:
        data = path.read_bytes() if path.exists() else b""
    except OSError as exc:
        raise storage_error(exc, path, "read") from None
    keep = data.rfind(b"\n", 0, min(offset, len(data))) + 1
    start = 0
    while start < keep:
        end = data.index(b"\n", start) + 1
        record = _record(data[start:end])
        if record is not None and isinstance(record.get("step"), int) and record["step"] > step:
            keep = start
            break
        start = end
    if len(data) < offset:
        log.warning("%s holds %d of the %d bytes its checkpoint (step %d) expects: the records "
                    "it lost stay lost; the run goes on after the last complete one",
                    path, len(data), offset, step)  # fmt: skip
    if keep < len(data):
        try:
            with open(path, "r+b") as fh:
                fh.truncate(keep)
        except OSError as exc:
            raise storage_error(exc, path, "write") from None


def _record(line: bytes) -> dict[str, Any] | None:
    """One ``metrics.jsonl`` line as a record, or None if it is damaged."""
    try:
        record = json.loads(line.decode("utf-8"))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    return record if isinstance(record, dict) else None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl``; damaged lines (a torn last line after a crash,
    bytes that are not UTF-8 JSON) are skipped and reported in one warning."""
    p = Path(path)
    if not p.exists():
        return []
    out: list[dict[str, Any]] = []
    damaged: list[int] = []
    for number, line in enumerate(p.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        record = _record(line)
        if record is None:
            damaged.append(number)
        else:
            out.append(record)
    if damaged:
        log.warning("%s: skipped %d damaged line(s) (line %s%s)", p, len(damaged), damaged[0],
                    " and later" if len(damaged) > 1 else "")  # fmt: skip
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object the end of a run wrote, None if the file is absent (the run has not
    ended); damaged content is a ``CheckpointError`` that says how to rebuild it."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        data = None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path} is damaged (not a JSON object); chase train --resume {path.parent} "
            "writes it again"
        )
    return data
