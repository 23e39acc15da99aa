"""The run folder: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/last.pt``, ``slim.pt``,
``report.json``, ``channels.json`` (and ``plots/``). One class, ``RunDir``, knows its paths,
creates, refuses or overwrites a run safely, and reads a run back (lazily, read-only) for the
measuring commands and figures."""

from __future__ import annotations

import json
import os
import shutil
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from torch import nn

import chase
from chase.data.specs import DataShape, data_shape
from chase.errors import CheckpointError, ConfigError
from chase.files import atomic_write_text
from chase.sparsity.engine import SparsityEngine
from chase.train.checkpoint import load_checkpoint
from chase.train.config import RunConfig
from chase.train.restore import build_model, reader_engine, restore
from chase.train.sources import load_yaml_text

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

    # -- writing ----------------------------------------------------------------------------
    def create(self, config: dict[str, Any], overwrite: bool) -> None:
        """Start a new run here; refuse to touch an existing run unless ``overwrite``."""
        self.refuse_existing(overwrite)
        if overwrite:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name in RUN_DIRS:
                shutil.rmtree(self.path / name, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_config(config)

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
        """The resolved configuration saved in this run folder, as plain data."""
        if not self.path.is_dir():
            raise CheckpointError(f"run folder {self.path} does not exist")
        if not self.is_run():
            raise CheckpointError(f"{self.path} is not a chase run folder (no config.yaml)")
        try:
            data = load_yaml_text(self.config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raise CheckpointError(f"{self.config_path} is not valid YAML") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{self.config_path} does not hold a run configuration")
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

    @cached_property
    def slim(self) -> chase.SlimModel | None:
        """The saved slim model, or None for an unfinished run (no ``slim.pt`` yet)."""
        return chase.load_slim(self.slim_path) if self.slim_path.is_file() else None

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


class MetricsLog:
    """Append-only JSON lines; ``offset`` is saved in checkpoints and restored on resume so a
    resumed run does not repeat the lines written after its last checkpoint."""

    def __init__(self, path: Path, enabled: bool = True, resume_offset: int | None = None):
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        if resume_offset is not None and path.exists():
            with open(path, "r+b") as fh:
                fh.truncate(resume_offset)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    @property
    def offset(self) -> int:
        if not self.enabled:
            return 0
        self._fh.flush()
        return self._fh.tell()

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self.enabled:
            self._fh.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (a torn last line from a crash is skipped)."""
    out: list[dict[str, Any]] = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is not valid JSON") from None
    return data if isinstance(data, dict) else None
