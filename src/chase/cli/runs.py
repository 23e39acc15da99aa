"""What the measuring commands (``flops``, ``bench``, ``plot``) work on: a run folder rebuilt
from its files, or a freshly initialised registry model. Read-only: nothing here writes to a
run folder, and no dataset file is ever read (shapes come from ``chase.data.specs``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from torch import nn

import chase
from chase.data.specs import resolve_dataset, spec_and_size
from chase.data.synthetic import example_batch
from chase.errors import CheckpointError, ConfigError
from chase.models import create_model
from chase.sparsity.config import ChannelConfig, SparsityConfig
from chase.sparsity.engine import SparsityEngine
from chase.train.checkpoint import load_checkpoint
from chase.train.config import RunConfig
from chase.train.rundir import RunDir, read_metrics

InputShape = tuple[int, int, int]


@dataclass(frozen=True)
class DataShape:
    """What a model needs to know about a dataset: classes and the (C, H, W) of one input."""

    num_classes: int
    input_shape: InputShape


def data_shape(
    dataset: str, *, synthetic_like: str = "cifar10", image_size: int | None = None
) -> DataShape:
    """Classes and input shape of ``dataset`` (``synthetic`` imitates ``synthetic_like``).

    ``image_size`` overrides the side of ``imagenet`` and ``synthetic`` images only, as in
    ``chase.data.build_data``.
    """
    spec, (h, w) = spec_and_size(resolve_dataset(dataset, "dataset"), synthetic_like, image_size)
    return DataShape(spec.num_classes, (spec.in_channels, h, w))


def fresh_model(
    model: str, dataset: str, image_size: int | None = None
) -> tuple[nn.Module, DataShape]:
    """A freshly initialised registry model sized for ``dataset``, and the data's shape."""
    shape = data_shape(dataset, image_size=image_size)
    net = create_model(model, num_classes=shape.num_classes, in_channels=shape.input_shape[0])
    return net.eval(), shape


def prune_channels(
    model: nn.Module,
    shape: InputShape,
    sparsity: float,
    *,
    density: float = 1.0,
    round_to: int = 1,
    prune_skip: bool = False,
    seed: int = 0,
) -> SparsityEngine:
    """Apply Chase's channel selection once, at its final target, to ``model`` (in place).

    The engine is built with one channel event due after step 1 (``end = 1``), and one
    ``after_step()`` runs it: the lowest-scoring channels are removed down to
    ``sparsity`` exactly as a training run's last event would, floors and ``round_to``
    included. ``density`` < 1 first draws an ERK weight mask (static), which the UMM score
    sees. ``chase.slim(model, engine)`` then gives the slim model.
    """
    channels = ChannelConfig(
        sparsity=sparsity, every=1, end=1, offset=0, round_to=round_to, prune_skip=prune_skip
    )
    config = SparsityConfig(
        density=density, updater="static", total_steps=1, seed=seed, channels=channels
    )
    engine = chase.sparsify(
        model, None, config, example_inputs=example_batch(shape, 2), attach=False
    )
    engine.after_step()
    return engine


def pruned_pair(
    model: str,
    dataset: str,
    sparsity: float,
    *,
    density: float,
    round_to: int,
    prune_skip: bool,
    image_size: int | None = None,
) -> tuple[nn.Module, nn.Module, DataShape, float]:
    """A fresh registry model (masked, see ``prune_channels``), its slim version in eval mode,
    the data's shape and the channel sparsity reached: what ``chase bench --model`` times."""
    dense, shape = fresh_model(model, dataset, image_size)
    engine = prune_channels(
        dense, shape.input_shape, sparsity, density=density, round_to=round_to,
        prune_skip=prune_skip,
    )  # fmt: skip
    achieved = engine.channels.summary()["sparsity"] if engine.channels is not None else 0.0
    return dense, chase.slim(dense, engine).eval(), shape, achieved


def add_source_arguments(parser: Any) -> None:
    """What the measuring commands work on: ``RUN_DIR``, or ``--model`` sized for ``--dataset``."""
    parser.add_argument(
        "run", nargs="?", metavar="RUN_DIR", help="a run folder made by chase train"
    )
    parser.add_argument("--model", help="registry model name (instead of RUN_DIR)")
    parser.add_argument("--dataset", default="cifar10", help="dataset the model is sized for")
    parser.add_argument("--image-size", type=int, help="image side for imagenet/synthetic")


def check_one_source(args: Any, command: str) -> None:
    """``ConfigError`` unless exactly one of RUN_DIR and ``--model`` was given."""
    if (args.run is None) == (args.model is None):
        raise ConfigError(f"chase {command}: give either RUN_DIR or --model NAME (not both)")


class Run:
    """A run folder, read lazily: configuration, metrics, report, channels and checkpoint."""

    def __init__(self, path: str | Path):
        self.dir = RunDir(path)
        self.path = self.dir.path
        self.config = _read_config(self.dir)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.dir.metrics)

    @cached_property
    def report(self) -> dict[str, Any] | None:
        return _read_json(self.dir.report)

    @cached_property
    def channels(self) -> dict[str, Any] | None:
        return _read_json(self.dir.channels)

    @cached_property
    def checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.dir.checkpoint, map_location="cpu")

    @cached_property
    def slim_file(self) -> chase.SlimModel | None:
        """The saved slim model, or None for an unfinished run (no ``slim.pt`` yet)."""
        return chase.load_slim(self.dir.slim) if self.dir.slim.is_file() else None

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
        slim = self.slim_file
        arch = slim.arch if slim is not None else None
        return dict(arch.get("kwargs") or {}) if isinstance(arch, dict) else {}

    def rebuild(self) -> tuple[nn.Module, SparsityEngine | None]:
        """The trained (masked) model and its sparsity engine, restored from the checkpoint."""
        cfg = self.config
        kwargs = {**self._arch_kwargs(), **cfg.model_kwargs}
        kwargs.setdefault("num_classes", self.shape.num_classes)
        kwargs.setdefault("in_channels", self.shape.input_shape[0])
        model = create_model(cfg.model, **kwargs)
        state = self.checkpoint
        engine = None
        if state.get("engine") is not None:
            scfg = SparsityConfig.from_dict(state["engine"]["config"])
            x = example_batch(self.shape.input_shape, 2)
            engine = chase.sparsify(model, None, scfg, example_inputs=x, attach=False)
        try:
            model.load_state_dict(state["model"])
            if engine is not None:
                engine.load_state_dict(state["engine"])
        except (KeyError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{self.dir.checkpoint} does not fit its run: {first}") from None
        return model.eval(), engine

    def slim_model(self, model: nn.Module, engine: SparsityEngine | None) -> nn.Module:
        """``slim.pt``'s model, or the slim copy of ``model`` for a run that has not ended."""
        saved = self.slim_file
        if saved is not None:
            return saved.model.eval()
        if engine is not None and engine.groups is not None:
            return chase.slim(model, engine).eval()
        return model


def _read_config(rundir: RunDir) -> RunConfig:
    return RunConfig.from_dict(rundir.read_config())


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is not valid JSON") from None
    return data if isinstance(data, dict) else None
