"""The accuracy study's grid: which models, methods, densities and seeds, and the one run
configuration every cell shares (``accuracy_study.py`` runs it, ``study_report.py`` reads it).

Every run starts from the ``fmnist-demo`` preset (Fashion-MNIST, SGD with Nesterov momentum,
cosine learning rate with warm-up, ERK allocation, the demo's drop-fraction and channel
schedule) and changes only what the study needs: the run length (``Size``), the model, the
method and its density. Epochs, batch, learning-rate schedule, update and channel-event
schedule are the same for every method and model, so cells differ in the method alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chase.train.config import RunConfig
from chase.train.run import Sources, resolve_config

PRESET = "fmnist-demo"


@dataclass(frozen=True)
class ModelSpec:
    """A registry model with its constructor arguments and the layers Chase keeps whole."""

    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    residual: bool = False


#: The study's models at 28x28x1 (``in_channels`` comes from the data). VGG-11 at half width
#: costs about what small_cnn does; its last conv feeds the classifier and stays whole, as
#: the paper's VGG presets keep theirs (``cifar10-vgg19-chase``).
MODELS: dict[str, ModelSpec] = {
    "small_cnn": ModelSpec("small_cnn"),
    "resnet20": ModelSpec("cifar_resnet20", residual=True),
    "vgg11": ModelSpec("vgg11", {"width": 0.5}, exclude=("last",)),
}

#: The baselines' drop settings are the presets' ``_dst_baseline`` (drop fraction 0.5 decaying
#: to 0); SET and RigL update each layer on its own as in their papers, SNFS redistributes
#: across layers (global scope) as its paper does. MEST and Chase keep the preset's global
#: MEST exploration (soft memory bound until 2 epochs before the end, then RigL updates).
_BASELINE = {"sparsity.drop_fraction": 0.5, "sparsity.drop_fraction_end": 0.0}
METHODS: dict[str, dict[str, Any]] = {
    "dense": {"method": "dense"},
    "static": {"method": "static"},
    "set": {"method": "set", "sparsity.scope": "layer", **_BASELINE},
    "rigl": {"method": "rigl", "sparsity.scope": "layer", **_BASELINE},
    "snfs": {"method": "snfs", "sparsity.scope": "global", **_BASELINE},
    "mest": {"method": "mest"},
    "chase-sc0": {"method": "chase", "sparsity.channels.sparsity": 0.0},
    "chase-sc0.3": {"method": "chase", "sparsity.channels.sparsity": 0.3},
    "chase-sc0.5": {"method": "chase", "sparsity.channels.sparsity": 0.5},
    "chase-sc0.5-skip": {
        "method": "chase",
        "sparsity.channels.sparsity": 0.5,
        "sparsity.channels.prune_skip": True,
    },
}
#: Methods that only make sense for some models (prune_skip needs residual streams).
RESIDUAL_ONLY = ("chase-sc0.5-skip",)
DENSITIES = (0.1, 0.02)
SEEDS = (0, 1)


@dataclass(frozen=True)
class Size:
    """How long each run is. ``study``: the default, planned at about two hours for the whole
    grid on 2 quiet CPU cores (docs/decisions.md, "The accuracy study"); ``quick``: a third of
    that, for a machine shared with other work; ``smoke``: seconds per run, to prove that the
    pipeline works end to end (its numbers mean nothing)."""

    name: str
    subset: int  # training examples taken from Fashion-MNIST's 60,000 (first N)
    val: int  # of which carved off as the validation split
    epochs: int
    batch: int
    lr: float
    every: int  # steps between weight updates and between channel events
    amenable_every: int
    bench_repeats: int


SIZES = {
    # 18,000 training examples, 140 steps per epoch, 420 steps: the demo's 702 steps scaled
    # by 0.6 with its schedule (7 updates, channel events between them, MEST and the channel
    # schedule ending at 2 of 3 epochs); lr 0.1 is the demo's 0.2 scaled to half its batch.
    "study": Size("study", 20_000, 2_000, 3, 128, 0.1, 60, 20, 10),
    # 9,000 training examples, 70 steps per epoch, 140 steps, 7 updates of 20 steps.
    "quick": Size("quick", 10_000, 1_000, 2, 128, 0.1, 20, 10, 10),
    "smoke": Size("smoke", 384, 128, 2, 64, 0.1, 2, 2, 2),
}


@dataclass(frozen=True)
class Run:
    """One cell of the grid and one seed: ``<model>/<method>-d<density>-s<seed>``."""

    model: str
    method: str
    density: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}-d{self.density:g}-s{self.seed}"

    @property
    def key(self) -> str:
        return f"{self.model}/{self.name}"

    def folder(self, study_dir: Path) -> Path:
        return study_dir / self.model / self.name


def plan(
    models: list[str], methods: list[str], densities: list[float], seeds: list[int]
) -> list[Run]:
    """Every run of the grid, in order: model by model, dense once (density 1)."""
    runs = []
    for model in models:
        for method in methods:
            if method in RESIDUAL_ONLY and not MODELS[model].residual:
                continue
            for density in [1.0] if method == "dense" else densities:
                runs += [Run(model, method, float(density), seed) for seed in seeds]
    return runs


def flags(
    run: Run, size: Size, device: str, data_dir: str | None, dataset: str = "fashion-mnist"
) -> dict[str, Any]:
    """The study's settings for ``run`` (dotted keys), laid over the ``fmnist-demo`` preset.
    ``dataset="synthetic"`` (Fashion-MNIST-shaped random patterns) is for tests only."""
    spec = MODELS[run.model]
    out: dict[str, Any] = {
        "model": spec.model, "model_kwargs": dict(spec.kwargs), "seed": run.seed,
        "device": device, "epochs": size.epochs,
        "data.subset": size.subset, "data.val_split": size.val, "data.batch_size": size.batch,
        "data.eval_batch_size": 1000, "data.dir": data_dir, "optim.lr": size.lr,
        "sparsity.update_every": size.every, "sparsity.channels.every": size.every,
        "sparsity.mest_end": f"{size.epochs - 1}ep",
        "sparsity.channels.end": f"{size.epochs - 1}ep",
        "sparsity.channels.exclude": list(spec.exclude), "log_every": 20,
        "checkpoint_every": 100, "amenable_every": size.amenable_every,
        "bench.warmup": 3, "bench.repeats": size.bench_repeats,
    }  # fmt: skip
    if dataset == "synthetic":
        out.update({"data.name": "synthetic", "data.synthetic_like": "fashion-mnist",
                    "data.synthetic_size": size.subset})  # fmt: skip
    if run.method != "dense":
        out["sparsity.density"] = run.density
    out.update(METHODS[run.method])
    return out


def config(
    run: Run,
    size: Size,
    device: str = "cpu",
    data_dir: str | None = None,
    dataset: str = "fashion-mnist",
) -> RunConfig:
    """The checked run configuration of ``run``."""
    sources = Sources(preset=PRESET, flags=flags(run, size, device, data_dir, dataset))
    return RunConfig.from_dict(resolve_config(sources))
