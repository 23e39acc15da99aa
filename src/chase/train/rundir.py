"""The run folder: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/last.pt``, ``slim.pt``,
``report.json``, ``channels.json`` (and ``plots/``). Creating, refusing, overwriting and
resuming it safely."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from chase.errors import CheckpointError, ConfigError
from chase.files import atomic_write_text
from chase.train.sources import load_yaml_text

#: Everything a run writes; ``--overwrite`` removes all of it, so nothing of the old run is left.
RUN_FILES = ("config.yaml", "metrics.jsonl", "slim.pt", "report.json", "channels.json")
RUN_DIRS = ("checkpoints", "plots")


class RunDir:
    """Paths of one run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoint = self.path / "checkpoints" / "last.pt"
        self.slim = self.path / "slim.pt"
        self.report = self.path / "report.json"
        self.channels = self.path / "channels.json"

    def is_run(self) -> bool:
        return self.config.is_file()

    def create(self, config: dict[str, Any], overwrite: bool) -> None:
        """Start a new run here; refuse to touch an existing run unless ``overwrite``."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} exists and is not a folder")
        if self.is_run() or self.checkpoint.exists():
            if not overwrite:
                raise ConfigError(
                    f"{self.path} already holds a run; continue it with --resume {self.path} "
                    "or start over with --overwrite"
                )
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name in RUN_DIRS:
                shutil.rmtree(self.path / name, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_config(config)

    def write_config(self, config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
        atomic_write_text(self.config, text)

    def read_config(self) -> dict[str, Any]:
        """The resolved configuration saved in this run folder."""
        if not self.path.is_dir():
            raise CheckpointError(f"run folder {self.path} does not exist")
        if not self.is_run():
            raise CheckpointError(f"{self.path} is not a chase run folder (no config.yaml)")
        try:
            data = load_yaml_text(self.config.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raise CheckpointError(f"{self.config} is not valid YAML") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{self.config} does not hold a run configuration")
        return data


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
