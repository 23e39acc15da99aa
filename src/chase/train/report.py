"""The end of a run: slim, recalibrate BatchNorm, evaluate on the test set, measure FLOPs and
speed, save ``slim.pt`` and write ``report.json``. The reported model is the final one; the
test set is used here, once, and never to choose anything."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

import chase
from chase.files import atomic_write_text
from chase.metrics import benchmark, engine_flops, param_counts
from chase.metrics.speed import json_rows
from chase.structure import SlimSpec, recalibrate_bn
from chase.structure import save_slim as save_slim_spec

if TYPE_CHECKING:
    from chase.train.loop import Trainer

log = logging.getLogger(__name__)


class _Phases:
    """The end of a run in named phases: each announced on the console with its size, then
    its wall time; the times go into report.json (``end_seconds``)."""

    def __init__(self, trainer: Trainer):
        self.progress = trainer.progress
        self.seconds: dict[str, float] = {}
        self.began = time.perf_counter()

    @contextmanager
    def phase(self, key: str, text: str) -> Iterator[None]:
        self.progress.message(f"end of run: {text} ...")
        began = time.perf_counter()
        yield
        self.seconds[key] = round(time.perf_counter() - began, 3)
        self.progress.message(f"end of run: {text}: {self.seconds[key]:.1f} s")

    def total(self) -> dict[str, float]:
        return {**self.seconds, "total": round(time.perf_counter() - self.began, 3)}


def finish(trainer: Trainer) -> dict[str, Any]:
    """Everything after the last training step; returns the report (rank 0 writes files)."""
    cfg, model, engine, data = trainer.cfg, trainer.model, trainer.engine, trainer.data
    model.eval()
    phases = _Phases(trainer)
    test = f"{data.test.num_examples:,} test examples"
    if trainer.dist.world_size > 1:
        test += " per process"
    with phases.phase("test_masked", f"evaluating the masked model on {test}"):
        masked = trainer.evaluate(model, data.test)
    slim = _slim(model, engine)
    x_test = trainer.layout(next(iter(data.test.epoch(0)))[0][:8].to(trainer.device))
    with torch.no_grad():
        diff = float((model(x_test).float() - slim(x_test).float()).abs().max())
    steps = cfg.recalibrate_bn_steps
    if steps != 0 and _has_bn(slim):
        used = len(data.train) if steps is None else min(steps, len(data.train))
        batches = f"{used} training batches"
        with phases.phase(
            "recalibrate_bn", f"recalibrating BatchNorm of the slim model on {batches}"
        ):
            batches_in = (trainer.layout(x.to(trainer.device)) for x, _ in data.train.epoch(0))
            recalibrate_bn(slim, batches_in, steps=steps, device=trainer.device)
            _average_bn_over_ranks(slim)
    with phases.phase("test_slim", f"evaluating the slim model on {test}"):
        result = trainer.evaluate(slim, data.test)
    report: dict[str, Any] = {
        "method": cfg.method,
        "model": cfg.model,
        "dataset": data.name,
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "test_accuracy_masked": masked.accuracy,
        "test_loss_masked": masked.loss,
        "test_examples": result.count,
        "equivalence_max_abs_diff": diff,
        "steps": trainer.clock.it,
        "epochs": cfg.epochs,
        "seconds": trainer.clock.seconds,
        "world_size": trainer.dist.world_size,
        "shrink": _shrink_times(trainer),
    }
    report.update(_sparsity(engine))
    report["warnings"] = trainer.warnings + _end_warnings(engine)
    report.update(_flops_and_params(trainer, slim))
    if trainer.dist.main:
        report["speed"] = []
        if cfg.bench.repeats > 0:
            with phases.phase("speed", "measuring dense vs slim inference speed"):
                report["speed"] = _speed(trainer, slim)
        report["end_seconds"] = phases.total()
        _save(trainer, slim, report)
    return report


def _slim(model: nn.Module, engine: Any) -> nn.Module:
    if engine is not None and engine.groups is not None:
        return chase.slim(model, engine).eval()
    return copy.deepcopy(model).eval()


def _shrink_times(trainer: Trainer) -> dict[str, Any]:
    """How much of training ran on a model narrowed by shrinking: the shrink events, and the
    steps and seconds after the first one."""
    c = trainer.clock
    if not c.shrinks:
        return {
            "events": 0, "first_step": None, "steps_after_first": 0,
            "seconds_after_first": 0.0, "steps": [],
        }  # fmt: skip
    step, seconds = c.shrinks[0]
    return {
        "events": len(c.shrinks),
        "first_step": step,
        "steps_after_first": c.it - step,
        "seconds_after_first": max(0.0, c.seconds - seconds),
        "steps": [t for t, _ in c.shrinks],
    }


def _has_bn(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _average_bn_over_ranks(model: nn.Module) -> None:
    """Pool BN statistics that each rank measured on its shard (equal-sized shards)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            mean, var = m.running_mean, m.running_var
            assert var is not None  # tracked together with running_mean
            second = var + mean * mean
            dist.all_reduce(mean)
            dist.all_reduce(second)
            mean.div_(world)
            var.copy_(second.div_(world) - mean * mean)


def _sparsity(engine: Any) -> dict[str, Any]:
    if engine is None:
        return {"density": 1.0, "channel_sparsity": 0.0}
    s = engine.summary()
    out = {"density": s["density"], "budget": s["budget"], "channel_sparsity": 0.0}
    if "channels" in s:
        ch = s["channels"]
        out.update(channel_sparsity=ch["sparsity"], live_channels=ch["live"],
                   prunable_channels=ch["total"])  # fmt: skip
    return out


def _end_warnings(engine: Any) -> list[str]:
    """What the run did not reach, counted as the engine counts: more active weights than the
    budget, more live prunable channels than the channel target of ``channels.end``."""
    if engine is None:
        return []
    out = []
    summary = engine.summary()
    if summary["active"] > summary["budget"]:
        out.append(
            f"the final density {summary['density']:.4f} is above the budget "
            f"{engine.config.density:g} ({summary['active']} active weights, budget "
            f"{summary['budget']})"
        )
    pruner = engine.channels
    if pruner is not None and pruner.physical > 0:
        live, target = pruner.live_physical(), pruner.target(engine.config.channel_end)
        if live > target:
            out.append(
                f"channel sparsity ended at {1 - live / pruner.physical:.3f}, short of the "
                f"target {engine.config.channels.sparsity:g} ({live} of {pruner.physical} "
                f"prunable channels live, the target is {target})"
            )
    return out


def _flops_and_params(trainer: Trainer, slim: nn.Module) -> dict[str, Any]:
    engine = trainer.engine
    rep, train = engine_flops(trainer.model, engine, slim, trainer.example_inputs(1), trainer.total)
    assert train is not None  # a run has at least one step
    slim_masks = chase.slim_masks(engine) if engine is not None and engine.groups else {}
    params_slim, params_slim_nonzero = param_counts(slim, slim_masks)
    return {
        "params_dense": rep.params_dense,
        "params_nonzero": rep.params_nonzero,
        "params_slim": params_slim,
        "params_slim_nonzero": params_slim_nonzero,
        "flops": {**rep.flops_dict(), **train.flops_dict()},
    }


def _speed(trainer: Trainer, slim: nn.Module) -> list[dict[str, Any]]:
    b = trainer.cfg.bench
    if b.repeats <= 0:
        return []
    h, w = trainer.data.image_size
    rows = benchmark(
        trainer.original_model().eval(), slim, input_shape=(trainer.data.in_channels, h, w),
        batch_sizes=b.batch_sizes, device=trainer.device, warmup=b.warmup, repeats=b.repeats,
        channels_last=trainer.cfg.channels_last and trainer.device.type == "cuda",
    )  # fmt: skip
    return json_rows(rows)


def _save(trainer: Trainer, slim: nn.Module, report: dict[str, Any]) -> None:
    run, engine = trainer.run, trainer.engine
    extra = {"test_accuracy": report["test_accuracy"], "method": report["method"]}
    if engine is not None and engine.groups is not None:
        # the model report.json scores: sliced and BN-recalibrated, with the spec of the
        # original architecture and the masks at the slim shapes
        spec, masks = chase.slim_spec(engine), chase.slim_masks(engine)
        save_slim_spec(run.slim_path, slim, spec, masks=masks, arch=trainer.arch, extra=extra)
        channels = engine.channel_report()
        atomic_write_text(run.channels_path, json.dumps(channels))
    else:
        save_slim_spec(run.slim_path, slim, SlimSpec({}, {}), arch=trainer.arch, extra=extra)
    atomic_write_text(run.report_path, json.dumps(report, indent=2))
