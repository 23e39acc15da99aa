"""The clean protocol: nothing is selected with the test set. Training reads only the training
and validation splits; the test set is read once the last step is done, by the end of the run
alone (masked model, the equivalence batch, slim model); only the last checkpoint is kept."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chase.train.config import RunConfig
from chase.train.loop import Trainer
from chase.train.run import Sources, resolve_config, run_training
from chase.train.rundir import read_metrics

#: 12 steps (3 epochs of 4 batches) of a tiny Chase run with a validation split.
FLAGS: dict[str, Any] = {
    "model": "small_cnn", "model_kwargs": {"width": 0.25}, "method": "chase", "epochs": 3,
    "data.name": "synthetic", "data.synthetic_like": "fashion-mnist", "data.synthetic_size": 80,
    "data.val_split": 16, "data.batch_size": 16, "data.workers": 0,
    "sparsity.update_every": 2, "sparsity.channels.every": 2, "sparsity.channels.sparsity": 0.5,
    "log_every": 1, "checkpoint_every": 2, "amenable_every": 1, "bench.repeats": 0,
    "recalibrate_bn_steps": 1,
}  # fmt: skip


class Spy:
    """A loader that notes, for each pass over it, whether training had ended and the step."""

    def __init__(self, loader: Any, trainer: Trainer, seen: list[tuple[bool, int]], done: dict):
        self.loader, self.trainer, self.seen, self.done = loader, trainer, seen, done

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # num_examples and the rest: the loader's
        return getattr(self.loader, name)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]:
        self.seen.append((self.done["fit"], self.trainer.clock.it))
        return self.loader.epoch(epoch, start)


def watch(test_reads: list[tuple[bool, int]], val_reads: list[tuple[bool, int]]) -> Any:
    """An ``on_start`` hook that spies on the test and validation loaders and on ``fit``."""

    def on_start(trainer: Trainer) -> None:
        done = {"fit": False}
        fit = trainer.fit

        def fit_then_mark(*args: Any, **kwargs: Any) -> Any:
            reason = fit(*args, **kwargs)
            done["fit"] = True
            return reason

        trainer.fit = fit_then_mark  # type: ignore[method-assign]
        data = trainer.data
        assert data.val is not None
        trainer.data = dataclasses.replace(
            data, test=Spy(data.test, trainer, test_reads, done),
            val=Spy(data.val, trainer, val_reads, done),
        )  # fmt: skip

    return on_start


def config() -> RunConfig:
    return RunConfig.from_dict(resolve_config(Sources(flags=FLAGS)))


def check_folder(run: Path) -> None:
    records = read_metrics(run / "metrics.jsonl")
    assert {r["kind"] for r in records} >= {"train", "eval", "amenable"}
    assert all(r.get("split") == "val" for r in records if r["kind"] == "eval")
    assert not any("test" in str(r.get("split", "")) or "test" in r["kind"] for r in records)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]
    assert not [p for p in run.rglob("*") if "best" in p.name.lower()]


def test_the_test_set_is_read_only_after_the_last_step(tmp_path: Path) -> None:
    test_reads: list[tuple[bool, int]] = []
    val_reads: list[tuple[bool, int]] = []
    out = run_training(config(), tmp_path / "run", on_start=watch(test_reads, val_reads))
    assert out.finished and out.step == 12
    # masked model, the masked-vs-slim batch, slim model: after fit returned, at the last step
    assert test_reads == [(True, 12)] * 3
    assert val_reads == [(False, 4), (False, 8), (False, 12)]  # each epoch end, during training
    assert out.report is not None and 0.0 <= out.report["test_accuracy"] <= 1.0
    check_folder(tmp_path / "run")


def test_a_stopped_and_resumed_run_reads_the_test_set_only_at_its_end(tmp_path: Path) -> None:
    first: list[tuple[bool, int]] = []
    out = run_training(config(), tmp_path / "run", stop_after=5, on_start=watch(first, []))
    assert not out.finished and first == []
    second: list[tuple[bool, int]] = []
    out = run_training(None, tmp_path / "run", resume=True, on_start=watch(second, []))
    assert out.finished and second == [(True, 12)] * 3
    check_folder(tmp_path / "run")
