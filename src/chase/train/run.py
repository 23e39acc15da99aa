"""One training run, start to end: where its settings come from, its folder and its lock,
signals, the training loop and the end of the run. ``chase train`` and ``chase
train-reference`` only parse arguments into ``Sources`` and print what ``run_training``
returns; a notebook can do the same.

Settings merge in this order, each source laid over the one before (``chase.train.sources``):
defaults < preset < the authors' flags (``chase train-reference``) < ``--config`` YAML <
``--set key=value`` < flags.

A run folder has one owner: ``run_training`` holds its lock (``chase.train.lock``) from before
it reads or writes anything there to the end. Whatever stops a run — a signal at any moment,
a killed process, a full disk, a process of a ``torchrun`` job that died — leaves a folder
that ``chase train --resume RUN_DIR`` continues: every file is written atomically, a folder
without a checkpoint starts again from step 0 with its ``config.yaml``, a resume cuts
``metrics.jsonl`` back to its checkpoint and removes what interrupted writes left.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chase.errors import ChaseError, ConfigError
from chase.train import distributed
from chase.train.config import RunConfig
from chase.train.distributed import Dist
from chase.train.lock import RunLock
from chase.train.loop import Progress, StopReason, Trainer
from chase.train.presets import preset
from chase.train.rundir import RunDir
from chase.train.sources import deep_merge, load_yaml, nested, parse_assignment

log = logging.getLogger(__name__)


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
    """What a run ended with: why, the step its folder holds (None: not known, the run was
    stopped before it started or resumed), where, and (finished runs) its report."""

    reason: StopReason
    step: int | None
    run_dir: RunDir
    report: dict[str, Any] | None = None
    #: a resume found the run already finished and did nothing (``report`` is the saved one)
    already_finished: bool = False

    @property
    def finished(self) -> bool:
        return self.reason is StopReason.FINISHED


def check_stop_after(value: int | None) -> None:
    """``--stop-after-steps`` must be a positive number of steps (checked by the CLI when it
    parses the flag and again here, with the same words)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"--stop-after-steps {value} is not allowed: an integer >= 1")


def run_training(
    cfg: RunConfig | None,
    run_dir: str | os.PathLike[str] | RunDir,
    *,
    resume: bool = False,
    overwrite: bool = False,
    stop_after: int | None = None,
    progress: Progress | None = None,
    on_start: Any = None,
    redo_end: bool = False,
) -> Outcome:
    """Train ``cfg`` in ``run_dir`` to the end (slim model, report) or until stopped.

    ``resume`` continues the run in ``run_dir`` with its saved configuration (``cfg`` must
    be None then); otherwise the folder must not hold a run unless ``overwrite``. The folder is
    locked for the whole call (``RunInUseError`` if another process has it). The first
    SIGINT/SIGTERM inside the training loop finishes the current step, writes a checkpoint and
    returns; anywhere else (setup, the end of the run) it stops at once, leaving the last
    checkpoint; a second signal exits the process at once. ``on_start(trainer)`` is called once
    the run is set up (the CLI prints where it runs). Under ``torchrun`` every rank calls this
    (rank 0 holds the lock); the process group is left on every exit path.

    Resuming a finished run (its end-of-run files intact: ``RunDir.finished_report``) does
    nothing and returns the saved report (``Outcome.already_finished``); ``redo_end`` runs its
    end (slim model, report) again from the last checkpoint instead, as a resume does when one
    of those files is damaged.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    check_stop_after(stop_after)
    if resume and cfg is not None:
        raise ConfigError("resume continues a run with its saved configuration: give no cfg")
    if not resume and cfg is None:
        raise ConfigError("a new run needs a configuration")
    if redo_end and not resume:
        raise ConfigError("redo_end (--redo-end) only applies when resuming a finished run")
    if resume:
        cfg = RunConfig.from_dict(run.read_config())
        report = None if redo_end else _finished_report(run)
        if report is not None:
            step = report.get("steps")
            step = step if isinstance(step, int) else None
            return Outcome(StopReason.FINISHED, step, run, report, already_finished=True)
    assert cfg is not None
    job = _Job(cfg, run, resume, overwrite)
    with stop_on_signals(run) as signals:
        together = False  # on a failure the other ranks may be gone already
        try:
            outcome = job.execute(signals, stop_after, progress, on_start)
            together = True
        except Stopped as stop:
            outcome = Outcome(stop.reason, job.saved_step(), run)
        except RuntimeError as exc:
            if not job.peer_failed(exc):
                raise
            outcome = Outcome(signals.reason or StopReason.PEER, job.saved_step(), run)
        finally:
            signals.quiet()  # leaving needs no interruption: a signal now only sets the reason
            job.close(together)
    return outcome


def _finished_report(run: RunDir) -> dict[str, Any] | None:
    """``run.finished_report()``, read under the folder's lock by rank 0 (``RunInUseError``
    while another process has the folder, e.g. one redoing its end)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return run.finished_report()
    with run.lock():
        return run.finished_report()


class Stopped(BaseException):
    """A signal stopped the run outside the training loop (a ``BaseException``, like
    ``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it)."""

    def __init__(self, reason: StopReason):
        super().__init__(reason.value)
        self.reason = reason


class _Job:
    """The parts of one ``run_training`` call that must be undone on every exit path."""

    def __init__(self, cfg: RunConfig, run: RunDir, resume: bool, overwrite: bool):
        self.cfg, self.run, self.resume, self.overwrite = cfg, run, resume, overwrite
        self.dist = Dist()
        self.lock: RunLock | None = None
        self.trainer: Trainer | None = None

    def execute(
        self,
        signals: SignalStop,
        stop_after: int | None,
        progress: Progress | None,
        on_start: Any,
    ) -> Outcome:
        from chase.train.report import finish

        self.dist, _ = distributed.setup(self.cfg.device)
        with signals.deferred():  # the lock, once taken, is never left to a stray fd
            self.lock = _on_main(self.dist, self._claim)
        signals.check()
        self.trainer = trainer = Trainer(self.cfg, self.run, progress)
        signals.trainer = trainer
        if not self.resume and self.dist.main:
            with signals.deferred():
                self.run.create(self.cfg.to_dict(), overwrite=self.overwrite)
            signals.check()
        if on_start is not None:
            on_start(trainer)
        with signals.deferred():  # the loop checks for a stop after every step
            reason = trainer.fit(resume=self.resume, stop_after=stop_after)
        signals.check()  # a signal during the last checkpoint: stop before the end of the run
        if reason is not StopReason.FINISHED:
            return Outcome(reason, trainer.clock.it, self.run)
        return Outcome(reason, trainer.clock.it, self.run, finish(trainer))

    def _claim(self) -> RunLock:
        """Rank 0's part: lock the folder, then check and tidy it for this run."""
        lock = self.run.lock()
        lock.acquire()
        try:
            if not self.resume:
                self.run.refuse_existing(self.overwrite)  # before any expensive setup
            self.run.remove_temporaries()
        except BaseException:
            lock.release()
            raise
        return lock

    def saved_step(self) -> int | None:
        return None if self.trainer is None else self.trainer.saved_step

    def peer_failed(self, exc: RuntimeError) -> bool:
        """Whether ``exc`` says another process of the job is gone: a collective lost its
        connection (not any NCCL or gloo error: those can be bugs worth their traceback)."""
        if not self.dist.enabled:
            return False
        lost = isinstance(exc, getattr(distributed.dist, "DistNetworkError", ()))
        lost = lost or bool(_PEER_GONE.search(str(exc)))
        if lost:
            log.info("another process of the job is gone: %s", str(exc).strip()[:500])
        return lost

    def close(self, together: bool) -> None:
        """Close the metrics, release the lock, leave the process group: each even if the one
        before fails (a full disk fails the metrics' last sync again)."""
        try:
            if self.trainer is not None and self.trainer.metrics is not None:
                metrics, self.trainer.metrics = self.trainer.metrics, None
                metrics.close()
        finally:
            try:
                if self.lock is not None:
                    self.lock.release()
                    self.lock = None
            finally:
                distributed.teardown(together=together)


_PEER_GONE = re.compile(r"connection (reset|closed|refused)|broken pipe", re.I)


def _on_main(d: Dist, work: Callable[[], RunLock]) -> RunLock | None:
    """Rank 0 does ``work``; every rank raises its ``ChaseError``, if any (so that no rank goes
    on to wait for a rank 0 that has stopped)."""
    result: RunLock | None = None
    error: ChaseError | None = None
    if d.main:
        try:
            result = work()
        except ChaseError as exc:
            if not d.enabled:
                raise
            error = exc
    if d.enabled:
        shared = distributed.broadcast_object(None if error is None else str(error))
        if shared is not None:
            if result is not None:
                result.release()
            raise error if error is not None else ChaseError(str(shared))
    return result


_SIGNALS = {signal.SIGINT: StopReason.SIGINT, signal.SIGTERM: StopReason.SIGTERM}


class SignalStop:
    """What SIGINT/SIGTERM do during a run. The first: inside ``deferred()`` (the training
    loop, the lock, writing a checkpoint) it asks the trainer to finish the step and stop;
    anywhere else it raises ``Stopped`` at once. The second: the process exits at once with
    128 + signal (every file is written atomically, so the folder stays resumable)."""

    def __init__(self, run: RunDir):
        self.run = run
        self.reason: StopReason | None = None
        self.trainer: Trainer | None = None
        self._defer = 0
        self._quiet = False

    def handle(self, signum: int, frame: Any) -> None:
        reason = _SIGNALS[signal.Signals(signum)]
        if self.reason is not None:
            if int(os.environ.get("RANK", "0")) == 0:
                os.write(2, f"chase: {reason.value} again: exiting at once; resume with: chase "
                            f"train --resume {self.run.path}\n".encode())  # fmt: skip
            os._exit(128 + signum)
        self.reason = self.reason or reason
        if self.trainer is not None:
            self.trainer.request_stop(reason)
        if not self._defer and not self._quiet:
            raise Stopped(reason)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1

    def check(self) -> None:
        """Raise ``Stopped`` if a signal came during a ``deferred()`` block."""
        if self.reason is not None:
            raise Stopped(self.reason)

    def quiet(self) -> None:
        """From now on a signal only records its reason (the run is already ending)."""
        self._quiet = True


@contextmanager
def stop_on_signals(run: RunDir) -> Iterator[SignalStop]:
    """``SignalStop``'s handlers for SIGINT and SIGTERM while the block runs. Handlers are only
    installed from the main thread (Python's rule); elsewhere signals keep their defaults."""
    signals = SignalStop(run)
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return
    previous = {sig: signal.signal(sig, signals.handle) for sig in _SIGNALS}
    try:
        yield signals
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def exit_code(reason: StopReason) -> int:
    """The process exit code of a run that ended for ``reason`` (128 + signal for signals)."""
    codes = {StopReason.SIGINT: 128 + int(signal.SIGINT),
             StopReason.SIGTERM: 128 + int(signal.SIGTERM), StopReason.PEER: 129}  # fmt: skip
    return codes.get(reason, 0)
