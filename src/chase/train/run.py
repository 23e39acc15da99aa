"""One training run, start to end: where its settings come from, its folder, signals, the
training loop and the end of the run. ``chase train`` and ``chase train-reference`` only parse
arguments into ``Sources`` and print what ``run_training`` returns; a notebook can do the same.

Settings merge in this order, each source laid over the one before (``chase.train.sources``):
defaults < preset < the authors' flags (``chase train-reference``) < ``--config`` YAML <
``--set key=value`` < flags.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chase.errors import ConfigError
from chase.train import distributed
from chase.train.config import RunConfig
from chase.train.loop import Progress, StopReason, Trainer
from chase.train.presets import preset
from chase.train.rundir import RunDir
from chase.train.sources import deep_merge, load_yaml, nested, parse_assignment


@dataclass(frozen=True)
class Sources:
    """Where a run's settings come from (see the module docstring for the order).

    ``reference``: a partial configuration (nested dict), e.g. translated from the authors'
    command line; ``sets``: ``key=value`` strings; ``flags``: dotted key → value.
    """

    preset: str | None = None
    reference: Mapping[str, Any] | None = None
    config_file: str | None = None
    sets: Sequence[str] = ()
    flags: Mapping[str, Any] = field(default_factory=dict)

    def given(self) -> bool:
        """Whether any setting was given at all (``--resume`` refuses them)."""
        return bool(self.preset or self.reference or self.config_file or self.sets or self.flags)


def resolve_config(sources: Sources) -> dict[str, Any]:
    """The merged configuration of ``sources`` as one plain dict (build it with
    ``RunConfig.from_dict``, which checks every value)."""
    cfg: dict[str, Any] = RunConfig().to_dict()
    layers: list[Mapping[str, Any]] = []
    if sources.preset:
        layers.append(preset(sources.preset))
    if sources.reference:
        layers.append(sources.reference)
    if sources.config_file:
        layers.append(load_yaml(sources.config_file))
    layers += [parse_assignment(text) for text in sources.sets]
    layers += [nested(key, value) for key, value in sources.flags.items() if value is not None]
    for layer in layers:
        cfg = deep_merge(cfg, layer)
    return cfg


def default_run_dir(cfg: RunConfig, preset_name: str | None = None) -> Path:
    """``runs/<preset>`` or ``runs/<model>-<dataset>-<method>``."""
    return Path("runs") / (preset_name or f"{cfg.model}-{cfg.data.name}-{cfg.method}")


@dataclass(frozen=True)
class Outcome:
    """What a run ended with: why, after which step, where, and (finished runs) its report."""

    reason: StopReason
    step: int
    run_dir: RunDir
    report: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.reason is StopReason.FINISHED


def run_training(
    cfg: RunConfig | None,
    run_dir: str | os.PathLike[str] | RunDir,
    *,
    resume: bool = False,
    overwrite: bool = False,
    stop_after: int | None = None,
    progress: Progress | None = None,
    on_start: Any = None,
) -> Outcome:
    """Train ``cfg`` in ``run_dir`` to the end (slim model, report) or until stopped.

    ``resume`` continues the run in ``run_dir`` with its saved configuration (``cfg`` must
    be None then); otherwise the folder must not hold a run unless ``overwrite``. The first
    SIGINT/SIGTERM finishes the current step, writes a checkpoint and returns; a second one
    exits at once. ``on_start(trainer)`` is called once the run is set up (the CLI prints
    where it runs). Under ``torchrun`` every rank calls this; the process group is left on
    every exit path.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if stop_after is not None and stop_after < 1:
        raise ConfigError(f"--stop-after-steps {stop_after} is not allowed: an integer >= 1")
    try:
        outcome = _run(cfg, run, resume, overwrite, stop_after, progress, on_start)
    except BaseException:
        distributed.teardown(together=False)  # the other ranks may be gone already
        raise
    distributed.teardown()
    return outcome


def _run(
    cfg: RunConfig | None,
    run: RunDir,
    resume: bool,
    overwrite: bool,
    stop_after: int | None,
    progress: Progress | None,
    on_start: Any,
) -> Outcome:
    from chase.train.report import finish

    if resume:
        if cfg is not None:
            raise ConfigError("resume continues a run with its saved configuration: give no cfg")
        cfg = RunConfig.from_dict(run.read_config())
    else:
        if cfg is None:
            raise ConfigError("a new run needs a configuration")
        run.refuse_existing(overwrite)  # before any expensive setup
    main = int(os.environ.get("RANK", "0")) == 0
    trainer = Trainer(cfg, run, progress)
    if not resume and main:
        run.create(cfg.to_dict(), overwrite=overwrite)
    if on_start is not None:
        on_start(trainer)
    with stop_on_signals(trainer):
        reason = trainer.fit(resume=resume, stop_after=stop_after)
    if reason is not StopReason.FINISHED:
        return Outcome(reason, trainer.clock.it, run)
    return Outcome(reason, trainer.clock.it, run, finish(trainer))


_SIGNALS = {signal.SIGINT: StopReason.SIGINT, signal.SIGTERM: StopReason.SIGTERM}


@contextmanager
def stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """First SIGINT/SIGTERM: ask ``trainer`` to finish the step, checkpoint and stop. Second:
    exit at once (the last checkpoint stays intact because checkpoints are written
    atomically). Handlers are only installed from the main thread (Python's rule)."""

    def handle(signum: int, frame: Any) -> None:
        if trainer.stop_reason is not None:
            os._exit(128 + signum)
        trainer.request_stop(_SIGNALS[signal.Signals(signum)])

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handle) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def exit_code(reason: StopReason) -> int:
    """The process exit code of a run that ended for ``reason`` (128 + signal for signals)."""
    codes = {StopReason.SIGINT: 128 + int(signal.SIGINT),
             StopReason.SIGTERM: 128 + int(signal.SIGTERM), StopReason.PEER: 129}  # fmt: skip
    return codes.get(reason, 0)
