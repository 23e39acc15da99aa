"""What the trainer tells the console: the step count after every step, statistics at log
points, and a resumed run's bar starting where the run stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chase.train.config import RunConfig
from chase.train.run import Sources, resolve_config, run_training

#: 2 epochs of 5 batches of a dense small_cnn, a log point every 3 steps.
FLAGS: dict[str, Any] = {
    "model": "small_cnn", "model_kwargs": {"width": 0.25}, "method": "dense", "epochs": 2,
    "data.name": "synthetic", "data.synthetic_like": "fashion-mnist", "data.synthetic_size": 80,
    "data.batch_size": 16, "log_every": 3, "bench.repeats": 0, "recalibrate_bn_steps": 0,
}  # fmt: skip


class Recorder:
    """A ``Progress`` that writes down every call."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, int]] = []
        self.updates: list[tuple[int, bool]] = []  # (done, with statistics)

    def start(self, total: int, done: int, description: str) -> None:
        self.starts.append((total, done))

    def update(self, done: int, stats: dict[str, Any]) -> None:
        self.updates.append((done, bool(stats)))

    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


def config() -> RunConfig:
    return RunConfig.from_dict(resolve_config(Sources(None, None, None, [], FLAGS)))


def test_every_step_moves_the_bar_and_log_points_bring_statistics(tmp_path: Path) -> None:
    progress = Recorder()
    assert run_training(config(), tmp_path / "run", progress=progress).finished
    assert progress.starts == [(10, 0)]
    assert [done for done, _ in progress.updates] == list(range(1, 11))
    assert [done for done, stats in progress.updates if stats] == [3, 6, 9, 10]


def test_a_resumed_run_counts_on_from_its_checkpoint(tmp_path: Path) -> None:
    first, second = Recorder(), Recorder()
    out = run_training(config(), tmp_path / "run", stop_after=4, progress=first)
    assert not out.finished and [d for d, _ in first.updates] == [1, 2, 3, 4]
    assert run_training(None, tmp_path / "run", resume=True, progress=second).finished
    assert second.starts == [(10, 4)]
    assert [done for done, _ in second.updates] == list(range(5, 11))
