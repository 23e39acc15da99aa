"""The reference trainer: one forward per step, the engine as an optimizer post-hook, exact
resume from any step, DDP under ``torchrun``, and a final slim model with its report."""

from __future__ import annotations

import enum
import gc
import logging
import random
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from chase.data import DataBundle, build_data
from chase.data.synthetic import example_batch
from chase.errors import CheckpointError, ConfigError, ScheduleWarning
from chase.sparsity.engine import ShrinkEvent, SparsityEngine
from chase.sparsity.report import amenable_summary
from chase.train import distributed
from chase.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from chase.train.config import RunConfig, steps_for
from chase.train.evaluate import Evaluation, evaluate
from chase.train.optim import build_optimizer, build_scheduler
from chase.train.probe import check_model_input
from chase.train.restore import build_engine, build_model, restore
from chase.train.rundir import MetricsLog, RunDir

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What the trainer tells the console (the CLI implements it; the default is silent).

    ``update(done, stats)`` is called after every step: with the training record at log
    points, with ``{}`` (only the step count moved) in between, so it must be cheap."""

    def start(self, total: int, done: int, description: str) -> None: ...
    def update(self, done: int, stats: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


class StopReason(enum.Enum):
    """Why ``Trainer.fit`` returned."""

    FINISHED = "finished"
    STEP_LIMIT = "--stop-after-steps"
    SIGINT = "SIGINT"
    SIGTERM = "SIGTERM"
    PEER = "another process stopped"


class Silent:
    def start(self, total: int, done: int, description: str) -> None: ...
    def update(self, done: int, stats: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None:
        log.info(text)

    def stop(self) -> None: ...


@dataclass
class Clock:
    """Where the run is: iterations done, the epoch and the next batch inside it."""

    it: int = 0
    epoch: int = 0
    position: int = 0
    seconds: float = 0.0
    stats: dict[str, float] = field(default_factory=dict)
    #: (step, seconds of training so far) at every shrink of the model
    shrinks: list[tuple[int, float]] = field(default_factory=list)


class Trainer:
    """Builds everything a run needs from a ``RunConfig`` and trains it in a run folder."""

    def __init__(self, cfg: RunConfig, run: RunDir, progress: Progress | None = None):
        self.cfg = cfg
        self.run = run
        self.progress = progress or Silent()
        self.dist, self.device = distributed.setup(cfg.device)
        self.stop_reason: StopReason | None = None
        self.clock = Clock()
        self.saved_step: int | None = None  # the step the run folder's checkpoint holds
        if cfg.amp == "fp16" and self.device.type != "cuda":
            raise ConfigError(f"amp = 'fp16' is not allowed on {self.device}: use 'bf16' or 'none'")
        _seed_everything(cfg.seed)
        self.data = self._build_data()
        self.steps_per_epoch = len(self.data.train)
        self.total = steps_for(cfg.epochs, self.steps_per_epoch)
        self.model = self._build_model()
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(
            self.optimizer, cfg.schedule, self.total, self.steps_per_epoch
        )
        #: what the run's settings cannot do in its length (said at the start, in report.json)
        self.warnings: list[str] = []
        self.engine = self._build_engine()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing)
        self.ddp: nn.Module = self.model
        self.metrics: MetricsLog | None = None
        self._began = time.perf_counter()
        self._rewrap = False

    # -- construction ------------------------------------------------------------------------
    def _build_data(self) -> DataBundle:
        return build_data(
            self.cfg.data, seed=self.cfg.seed, rank=self.dist.rank,
            world_size=self.dist.world_size,
        )  # fmt: skip

    def _build_model(self) -> nn.Module:
        model = build_model(
            self.cfg.model, self.data.num_classes, self.data.in_channels, self.cfg.model_kwargs
        ).to(self.device)
        if self.cfg.channels_last and self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        d = self.cfg.data
        check_model_input(model, self.example_inputs(), self.cfg.model, d.name, d.image_size)
        return model

    def original_model(self) -> nn.Module:
        """A fresh model of the original (unshrunk) architecture on this run's device, for
        comparing speed with the slim one (its weights do not matter to dense kernels). The
        global random state is left as it was."""
        with torch.random.fork_rng(devices=[]):
            return self._build_model()

    def example_inputs(self, batch: int = 2) -> torch.Tensor:
        h, w = self.data.image_size
        x = example_batch((self.data.in_channels, h, w), batch).to(self.device)
        return self.layout(x)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.channels_last and self.device.type == "cuda" and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def _build_engine(self) -> SparsityEngine | None:
        scfg = self.cfg.sparsity_config(self.steps_per_epoch, self.total)
        if scfg is None:
            return None
        with warnings.catch_warnings():  # said once below, on the console and in the report
            warnings.simplefilter("ignore", ScheduleWarning)
            engine = build_engine(self.model, scfg, self.example_inputs(), self.optimizer)
        self.warnings.extend(engine.schedule_problems)
        engine.on_shrink(self._shrunk)
        return engine

    def _shrunk(self, event: ShrinkEvent) -> None:
        """The model shrank inside the optimizer step: note when, and have the DDP wrapper
        (which holds the old parameter shapes) rebuilt before the next forward."""
        self.clock.shrinks.append((event.step, time.perf_counter() - self._began))
        self._rewrap = self.dist.enabled

    def _wrap(self) -> None:
        """Wrap the model in DDP (again, after a shrink) when training in several processes."""
        self._rewrap = False
        if self.dist.enabled:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None
            )
            gc.collect()  # the replaced wrapper holds the process group until collected

    @property
    def arch(self) -> dict[str, Any]:
        """How to rebuild the original model (stored in ``slim.pt``)."""
        kwargs = {"num_classes": self.data.num_classes, "in_channels": self.data.in_channels}
        return {"name": self.cfg.model, "kwargs": {**kwargs, **self.cfg.model_kwargs}}

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        c = self.clock
        return {
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "engine": None if self.engine is None else self.engine.state_dict(),
            "step": c.it,
            "epoch": c.epoch,
            "position": c.position,
            "seconds": c.seconds,
            "rng": rng_state(),
            "metrics_offset": self.metrics.offset if self.metrics else 0,
            "stats": {k: float(v) for k, v in c.stats.items()},
            "shrinks": [[t, float(sec)] for t, sec in c.shrinks],
            "world_size": self.dist.world_size,
        }

    def save(self) -> None:
        if self.dist.main:
            if self.metrics is not None:
                self.metrics.sync()  # on disk before the checkpoint that counts its bytes
            save_checkpoint(self.run.checkpoint_path, self.state_dict())
        distributed.barrier()
        self.saved_step = self.clock.it

    def load(self) -> int:
        """Restore the run folder's checkpoint; returns the metrics.jsonl offset to resume at.
        A run stopped before its first checkpoint starts again from step 0 (its config.yaml is
        all it needs)."""
        path = self.run.checkpoint_path
        if not path.exists():
            self.saved_step = 0
            return 0
        state = load_checkpoint(path, map_location=self.device)
        if RunConfig.from_dict(state["config"]).to_dict() != self.cfg.to_dict():
            raise CheckpointError(f"{path} was written with another configuration")
        restore(
            state, path, model=self.model, engine=self.engine, optimizer=self.optimizer,
            scheduler=self.scheduler, scaler=self.scaler,
        )  # fmt: skip
        set_rng_state(state["rng"])
        shrinks = [(int(t), float(sec)) for t, sec in state.get("shrinks", [])]
        self.clock = Clock(
            state["step"], state["epoch"], state["position"], state["seconds"], state["stats"],
            shrinks,
        )  # fmt: skip
        self.saved_step = self.clock.it
        return int(state["metrics_offset"])

    # -- training ----------------------------------------------------------------------------
    def request_stop(self, reason: StopReason) -> None:
        """Finish the current step, write a checkpoint and return from ``fit``."""
        self.stop_reason = reason

    def fit(self, resume: bool = False, stop_after: int | None = None) -> StopReason:
        """Train to the end (``FINISHED``) or until a stop is requested (the request's reason);
        either way the run folder ends with a checkpoint of the last completed step."""
        offset = self.load() if resume else None
        self.metrics = MetricsLog(self.run.metrics_path, self.dist.main, offset, self.clock.it)
        self._wrap()
        c = self.clock
        for problem in self.warnings if self.dist.main else ():
            log.warning("%s", problem)
        self.progress.start(self.total, c.it, "train")
        began = self._began = time.perf_counter() - c.seconds
        stopped = False
        if c.it == 0:
            self._log_amenable()
        while c.it < self.total and not stopped:
            for x, y in self.data.train.epoch(c.epoch, start=c.position):
                self._step(x, y)
                c.it += 1
                c.position += 1
                c.seconds = time.perf_counter() - began
                if c.it % self.cfg.log_every == 0 or c.it == self.total:
                    self._log_train()
                else:  # the bar moves every step; its statistics change at log points
                    self.progress.update(c.it, {})
                self._log_amenable()
                if c.it >= self.total:
                    break
                if self._should_stop(stop_after):
                    stopped = True
                    break
                if c.it % self.cfg.checkpoint_every == 0:
                    self.save()
            if c.position >= self.steps_per_epoch:
                self._end_epoch()
        self.save()
        self.progress.stop()
        if self.engine is not None:
            self.engine.check()  # exact budget, zeros, floors; identical masks on every rank
        if not stopped:
            return StopReason.FINISHED
        assert self.stop_reason is not None
        return self.stop_reason

    def _should_stop(self, stop_after: int | None) -> bool:
        if stop_after is not None and self.clock.it >= stop_after:
            self.stop_reason = self.stop_reason or StopReason.STEP_LIMIT
        if not self.dist.enabled:  # decided in Python: no wait for the device
            return self.stop_reason is not None
        # Ranks agree (a signal may reach them at different steps): every rank stops after
        # the same step. This small all-reduce is the only per-step wait on the device.
        flag = torch.tensor([1.0 if self.stop_reason else 0.0], device=self.device)
        stop = float(distributed.all_sum(flag)) > 0
        if stop and self.stop_reason is None:
            self.stop_reason = StopReason.PEER
        return stop

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.ddp.train()
        x = self.layout(x.to(self.device, non_blocking=True))
        y = y.to(self.device, non_blocking=True)
        amp = self.cfg.amp
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        ctx = torch.autocast(self.device.type, dtype=dtype) if amp != "none" else nullcontext()
        with ctx:
            out = self.ddp(x)
            loss = self.criterion(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)  # the engine acts here, after a real step
        if self._rewrap:
            self._wrap()
        self.scaler.update()
        self.scheduler.step()
        s = self.clock.stats
        n = float(y.numel())
        s["loss"] = s.get("loss", 0.0) + loss.detach() * n
        s["correct"] = s.get("correct", 0.0) + (out.argmax(1) == y).sum()
        s["count"] = s.get("count", 0.0) + n

    def _log_train(self) -> None:
        c = self.clock
        s = c.stats
        if not s:
            return
        total = distributed.all_sum(
            torch.stack([torch.as_tensor(s[k], dtype=torch.float64, device=self.device)
                         for k in ("loss", "correct", "count")])
        ).tolist()  # fmt: skip
        c.stats = {}
        record = {
            "kind": "train", "step": c.it, "epoch": c.epoch + c.position / self.steps_per_epoch,
            "loss": total[0] / total[2], "acc": total[1] / total[2],
            "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(c.seconds, 3),
        }  # fmt: skip
        record.update(self._sparsity_stats())
        assert self.metrics is not None
        self.metrics.write(record)
        self.progress.update(c.it, record)

    def _sparsity_stats(self) -> dict[str, Any]:
        if self.engine is None:
            return {"density": 1.0}
        s = self.engine.summary()
        out: dict[str, Any] = {"density": s["density"]}
        if "channels" in s:
            out["live_channels"] = s["channels"]["live"]
            out["channel_sparsity"] = s["channels"]["sparsity"]
        return out

    def _log_amenable(self, epoch_end: bool = False) -> None:
        """An ``amenable`` record (``amenable_summary`` of the engine's channel report) every
        ``amenable_every`` steps, at step 0 and at each epoch end, once per step; 0: never."""
        k, c, engine = self.cfg.amenable_every, self.clock, self.engine
        if k <= 0 or engine is None or engine.groups is None or not self.dist.main:
            return
        if (c.it % k == 0) == epoch_end:  # epoch ends on a multiple of k are logged already
            return
        record = {"kind": "amenable", "step": c.it,
                  "epoch": c.epoch + c.position / self.steps_per_epoch}  # fmt: skip
        record.update(amenable_summary(engine.channel_report()))
        assert self.metrics is not None
        self.metrics.write(record)

    def _end_epoch(self) -> None:
        c = self.clock
        c.epoch += 1
        c.position = 0
        self._log_amenable(epoch_end=True)
        assert self.metrics is not None
        if self.engine is not None and self.engine.channels is not None:
            groups = self.engine.summary()["channels"]["groups"]
            self.metrics.write(
                {
                    "kind": "channels",
                    "step": c.it,
                    "epoch": c.epoch,
                    "groups": {k: v["live"] for k, v in groups.items()},
                }
            )
        if self.data.val is not None and c.epoch % self.cfg.eval_every == 0:
            result = self.evaluate(self.model, self.data.val)
            record = {
                "kind": "eval",
                "split": "val",
                "step": c.it,
                "epoch": c.epoch,
                "loss": result.loss,
                "acc": result.accuracy,
            }
            self.metrics.write(record)
            self.progress.message(
                f"epoch {c.epoch}: val loss {result.loss:.4f}, val acc {result.accuracy:.2%}"
            )

    def evaluate(self, model: nn.Module, loader: Any) -> Evaluation:
        """``chase.train.evaluate`` on this run's device and memory layout."""
        return evaluate(model, loader, self.device, self.layout)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
