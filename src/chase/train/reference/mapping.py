"""Map the flags of the authors' scripts onto a partial ``RunConfig`` (plain nested dict): one
more layer of settings, between a preset and ``--config`` (``chase.train.run.Sources``).

Every flag counts, given or not: one left out takes its default in their script, so it takes
the same default here. The rules follow what their code does with each value (read in
``Cifar/main_dst_chase.py``, ``Cifar/sparselearning/core_dst_chase.py``, ``Imagenet/main.py``
and ``Imagenet/core.py``), not only what their help strings say; ``docs/reference-flags.md``
gives the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chase.errors import ConfigError
from chase.sparsity.channels import LAST
from chase.train.reference.flags import CIFAR, NONE, ONLY, REJECT, RULE, Script
from chase.train.sources import put

#: their channel events fire when (t + HALF) % ΔT == 0; HALF is 1000/2, hard-coded for CIFAR
CIFAR_EVENT_HALF = 500
INITS = {"fixed_ERK": "erk", "ERK": "erk", "ER": "er", "uniform": "uniform"}
DATASETS = ("mnist", "cifar10", "cifar100")


@dataclass
class Translation:
    """What a reference command line means here."""

    script: Script
    config: dict[str, Any] = field(default_factory=dict)
    no_effect: list[str] = field(default_factory=list)  # flag spellings, table order


def translate(script: Script, given: dict[str, Any], procs: int = 1) -> Translation:
    """The config of ``script`` run with the flags in ``given`` (dest → value).

    ``procs`` is the number of processes their launcher started: the ImageNet script's ``-b``
    is per process, our ``data.batch_size`` is the global batch.
    """
    v = {f.dest: f.default for f in script.flags} | given
    out = Translation(script)
    _plain_flags(script, v, out.config)
    cfg = out.config
    ignored = _cifar(v, cfg) if script is CIFAR else _imagenet(v, cfg, procs)
    ignored |= _sparsity(script, v, out.config)
    out.no_effect = [
        f.name
        for f in script.flags
        if f.dest in given and (f.dest in ignored or f.effect in (NONE, ONLY))
    ]
    _model_structure(cfg)
    return out


def _model_structure(cfg: dict[str, Any]) -> None:
    """Our registry name for their model, and what their channel pruner never touches: their
    VGG's prunable list (``layer2split``) leaves out the last conv, which feeds the classifier
    (``exclude: [last]``, the same rule as our VGG presets)."""
    from chase.models.registry import resolve_name

    name = resolve_name(cfg["model"])
    cfg["model"] = name
    if cfg.get("method") == "chase" and name.startswith("vgg"):
        put(cfg, "sparsity.channels.exclude", [LAST])


def _plain_flags(script: Script, v: dict[str, Any], cfg: dict[str, Any]) -> None:
    """Flags that map one-to-one onto a config key, and the checks of ONLY/REJECT flags."""
    for flag in script.flags:
        value = v[flag.dest]
        if flag.effect == REJECT and value not in (None, False, ""):
            raise ConfigError(f"{flag.name} is not supported by chase train-reference: {flag.why}")
        if flag.effect == ONLY and value not in flag.allowed:
            raise ConfigError(
                f"{flag.name} {value!r} is not supported by chase train-reference ({flag.why}); "
                f"allowed: {', '.join(repr(a) for a in flag.allowed)}"
            )
        if flag.effect not in (RULE, NONE, ONLY, REJECT):
            put(cfg, flag.effect, value)


def _common(v: dict[str, Any], cfg: dict[str, Any], model: str) -> None:
    put(cfg, "model", model)
    put(cfg, "optim.name", "sgd")
    put(cfg, "optim.nesterov", False)
    if v["fp16"]:
        put(cfg, "amp", "fp16")


def _cifar(v: dict[str, Any], cfg: dict[str, Any]) -> set[str]:
    if not v["model"]:
        raise ConfigError("--model is required (e.g. --model vgg19)")
    if v["data"] not in DATASETS:
        raise ConfigError(
            f"--data {v['data']!r} is not one of their datasets: {', '.join(DATASETS)}"
        )
    if v["optimizer"] != "sgd":
        raise ConfigError(
            f"--optimizer {v['optimizer']!r} is not supported by chase train-reference: "
            "their Adam applies L2 decay through the gradient; only 'sgd' maps exactly"
        )
    _common(v, cfg, v["model"])
    put(cfg, "data.name", v["data"])
    ignored = set()
    if v["data"] == "mnist":  # only their MNIST loader holds out training data
        put(cfg, "data.val_split", v["valid_split"])
    else:  # their CIFAR loaders ignore it and validate on the test set
        ignored.add("valid_split")
    put(cfg, "epochs", v["epochs"])
    put(cfg, "optim.decay_norm_and_bias", True)
    put(cfg, "optim.label_smoothing", 0.0)
    if v["no_cuda"]:
        put(cfg, "device", "cpu")
    # LR ×0.1 after epochs int(0.5·E) and int(0.75·E) (their manual decay, MultiStepLR unused)
    epochs = v["epochs"]
    marks = [int(f * epochs) / epochs for f in (0.5, 0.75)] if epochs > 0 else []
    _multistep(cfg, [m for m in marks if 0 < m < 1])
    put(cfg, "schedule.warmup_epochs", 0)
    return ignored


def _multistep(cfg: dict[str, Any], milestones: list[float]) -> None:
    put(cfg, "schedule.name", "multistep")
    put(cfg, "schedule.milestones", sorted(set(milestones)))
    put(cfg, "schedule.gamma", 0.1)


def _imagenet(v: dict[str, Any], cfg: dict[str, Any], procs: int) -> set[str]:
    _common(v, cfg, v["arch"])
    put(cfg, "data.name", "imagenet")
    if v.get("data"):
        put(cfg, "data.dir", v["data"])
    put(cfg, "data.batch_size", v["batch_size"] * procs)
    steps = ("first_m", "second_m", "third_m")
    if v["cosine_lr"]:
        put(cfg, "schedule.name", "cosine")
        return set(steps)
    total = v["total_epochs"]
    _multistep(cfg, [v[k] / total for k in steps if total > 0 and 0 < v[k] < total])
    return set()


# -- sparsity ------------------------------------------------------------------------------
_SPARSE_ONLY = {
    "fix", "filter_dst", "mest", "mest_dst", "dst", "minumum_ratio", "mask_wise", "mag_wise",
    "kernal_wise", "connection_wise", "stop_dst_epochs", "stop_gmp_epochs", "layer_interval",
    "start_layer_rate", "growth", "death", "prune", "death_rate", "prune_rate", "density",
    "init_density", "sparse_init", "update_frequency", "gpm_filter_pune", "decay_schedule",
    "rm_first",
}  # fmt: skip
_CHANNEL_ONLY = {
    "minumum_ratio", "mask_wise", "mag_wise", "kernal_wise", "connection_wise",
    "stop_gmp_epochs", "layer_interval", "start_layer_rate", "gpm_filter_pune",
}  # fmt: skip


def _sparsity(script: Script, v: dict[str, Any], cfg: dict[str, Any]) -> set[str]:
    """``method`` and the ``sparsity`` section; returns the flags that end up without effect."""
    present = {f.dest for f in script.flags}
    if not v["sparse"]:  # their masks are never applied: a dense run
        put(cfg, "method", "dense")
        return _SPARSE_ONLY & present
    cifar = script is CIFAR
    if not cifar and v["init_density"] != v["density"]:
        raise ConfigError(
            f"--init-density {v['init_density']} differs from --density {v['density']}: their "
            "masks start at --init-density (GraNet-style); pass both with the same value"
        )
    updater, ignored = _updater(v)
    s: dict[str, Any] = {
        "density": v["density"],
        "allocation": _allocation(v, cifar),
        "scope": _scope(v["growth"], v["death"] if cifar else v["prune"], updater),
        "update_every": v["update_frequency"],
        "drop_fraction": 0.5,  # their DST rate: cosine 0.5 → 0.005 over the whole run
        "drop_fraction_end": 0.005,
        "drop_schedule": "cosine",
    }
    if not cifar and v["rm_first"]:
        s["keep_dense"] = ["first"]
    if updater == "mest":
        s.update(_mest(v, cifar))
    else:
        ignored |= {"death_rate", "prune_rate", "stop_dst_epochs", "decay_schedule"}
    if updater == "static":
        ignored |= {"growth", "death", "prune", "update_frequency"}
    if v["filter_dst"]:
        put(cfg, "method", "chase")
        s["updater"] = updater
        s["channels"], unused = _channels(v, cifar)
        ignored |= unused
    else:
        put(cfg, "method", updater)
        ignored |= _CHANNEL_ONLY
    put(cfg, "sparsity", s)
    return ignored & present


def _mest(v: dict[str, Any], cifar: bool) -> dict[str, Any]:
    """MEST's soft memory bound δ₀ and the end T_A of its phase (then plain RigL or frozen)."""
    epochs = v["epochs"] if cifar else v["total_epochs"]
    end = f"{max(0, epochs - v['stop_dst_epochs'])}ep"
    out: dict[str, Any] = {
        "mest_overshoot": v["death_rate"] if cifar else v["prune_rate"],
        "mest_end": end,
    }
    if not v["mest_dst"]:  # their topology freezes once MEST's phase ends
        out["dst_end"] = end
    if cifar and v["decay_schedule"] != "cosine":
        raise ConfigError(
            f"--decay-schedule {v['decay_schedule']!r} is not supported with --mest: "
            "the soft memory bound decays by cosine here ('cosine')"
        )
    return out


def _updater(v: dict[str, Any]) -> tuple[str, set[str]]:
    """Their step(): ``--fix`` stops updates; ``--mest`` wins over ``--dst``; neither: none."""
    if v["fix"]:
        return "static", {"mest", "mest_dst", "dst"}
    if v["mest"]:
        if v["growth"] not in ("gradients", "global_gradients"):
            raise ConfigError(
                f"--growth {v['growth']!r} is not supported with --mest: MEST grows by gradient "
                "here ('gradients' or 'global_gradients')"
            )
        return "mest", {"dst"}
    if v["dst"]:
        growth = {"random": "set", "gradients": "rigl", "global_gradients": "rigl"}
        if v["growth"] not in growth:
            raise ConfigError(
                f"--growth {v['growth']!r} is not supported by chase train-reference; "
                "supported: random (SET), gradients or global_gradients (RigL)"
            )
        return growth[v["growth"]], {"mest_dst"}
    return "static", {"mest_dst"}


def _scope(growth: str, death: str, updater: str) -> str:
    if updater == "static":  # no topology updates: the modes are never used
        return "layer"
    if death not in ("magnitude", "global_magnitude"):
        raise ConfigError(
            f"death/prune mode {death!r} is not supported by chase train-reference; "
            "supported: magnitude (per layer) or global_magnitude"
        )
    grows_global, drops_global = growth.startswith("global_"), death.startswith("global_")
    if grows_global != drops_global:
        raise ConfigError(
            f"--growth {growth!r} with death/prune mode {death!r} mixes a global and a per-layer "
            "ranking; use both global_* or neither"
        )
    return "global" if drops_global else "layer"


def _allocation(v: dict[str, Any], cifar: bool) -> str:
    init = v["sparse_init"]
    if init not in INITS:
        flag = "--sparse_init" if cifar else "--sparse-init"
        raise ConfigError(
            f"{flag} {init!r} is not supported by chase train-reference; "
            f"supported: {', '.join(INITS)}"
        )
    return INITS[init]


def _channels(v: dict[str, Any], cifar: bool) -> tuple[dict[str, Any], set[str]]:
    """Chase's channel learner: S_c, ΔT, t_f, β and the score (+ score flags left unused)."""
    if cifar and not v["gpm_filter_pune"]:
        raise ConfigError(
            "--filter_dst without --gpm_filter_pune (their cosine channel schedule) is not "
            "supported: channel sparsity follows the cubic schedule here"
        )
    score, unused = _score(v)
    ch: dict[str, Any] = {
        "sparsity": v["start_layer_rate"],
        "end": f"{v['stop_gmp_epochs']}ep",
        "min_keep_ratio": v["minumum_ratio"],
        "score": score,
    }
    if cifar:  # ΔT in iterations; events at t ≡ -500 (mod ΔT)
        every = v["layer_interval"]
        if every < 1:
            raise ConfigError(f"--layer_interval {every} is not allowed: an integer >= 1")
        ch["every"] = every
        ch["offset"] = (-CIFAR_EVENT_HALF) % every
    else:  # ΔT in epochs
        ch["every"] = f"{v['layer_interval']:g}ep"
    return ch, unused


_SCORES = (("mask_wise", "mask_mean"), ("mag_wise", "umm"), ("kernal_wise", None),
           ("connection_wise", "density"))  # fmt: skip


def _score(v: dict[str, Any]) -> tuple[str, set[str]]:
    """Their precedence: --mask_wise, then --mag_wise, --kernal_wise, --connection_wise."""
    chosen = next((i for i, (dest, _) in enumerate(_SCORES) if v[dest]), None)
    if chosen is None:
        raise ConfigError(
            "--filter_dst needs a channel score: --mag_wise (UMM, the paper's), --mask_wise "
            "or --connection_wise"
        )
    score = _SCORES[chosen][1]
    if score is None:
        raise ConfigError(
            "--kernal_wise (fraction of non-zero kernels) is not supported by chase "
            "train-reference; use --mag_wise (UMM), --mask_wise or --connection_wise"
        )
    return score, {d for d, _ in _SCORES[chosen + 1 :]}
