"""The command-line flags of the Chase authors' released code (github.com/luuyin/chase), as data.

Two scripts, two flag sets: ``Cifar/main_dst_chase.py`` (its own arguments plus
``sparselearning/core_dst_chase.py:add_sparse_args``) and ``Imagenet/main.py`` (its own
arguments plus ``Imagenet/core.py:add_sparse_args``). Spellings, types and defaults are theirs,
because a flag left out of a command takes its default there. What each flag becomes in our
configuration is ``Flag.effect``: a dotted config key, or one of the kinds below; the per-flag
reasons are written out in ``docs/reference-flags.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

RULE = "rule"  #: read by the mapping rules in ``chase.train.reference.mapping``
NONE = "none"  #: accepted, changes nothing here (named in the note when given)
ONLY = "only"  #: no effect at the values in ``Flag.allowed``; any other value is an error
REJECT = "reject"  #: a different job (evaluate, resume their checkpoint, profile): an error


@dataclass(frozen=True)
class Flag:
    """One reference flag: spellings (README spelling first), type (None: a switch), default."""

    names: tuple[str, ...]
    type: Callable[[str], Any] | None = None
    default: Any = None
    effect: str = RULE
    why: str = ""
    allowed: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def dest(self) -> str:
        long = [n for n in self.names if n.startswith("--")] or list(self.names)
        return long[0].lstrip("-").replace("-", "_")


def _f(
    names: str, type: Callable[[str], Any] | None = None, default: Any = None,
    effect: str = RULE, why: str = "", allowed: tuple[Any, ...] = (),
) -> Flag:  # fmt: skip
    if type is None and default is None:
        default = False
    return Flag(tuple(names.split()), type, default, effect, why, allowed)


def _none(names: str, type: Callable[[str], Any] | None = None, default: Any = None,
          why: str = "") -> Flag:  # fmt: skip
    return _f(names, type, default, NONE, why)


UNUSED = "defined in their argparse but never read"
SAVE_DIR = "names their save folder; ours is --out"

# Flags of sparselearning-style sparse training shared by both scripts (same meaning there).
_SHARED_SPARSE = (
    _f("--sparse"),
    _f("--fix"),
    _f("--filter_dst"),
    _f("--mest"),
    _f("--mest_dst"),
    _f("--dst"),
    _none("--redistribution", str, "none", "the redistribution function is never called"),
    _none("--fix_num_operation", int, 0, UNUSED),
    _f("--minumum_ratio", float, 0.5),
    _f("--mask_wise"),
    _f("--mag_wise"),
    _f("--kernal_wise"),
    _f("--connection_wise"),
    _f("--stop_dst_epochs", int, 30),
    _f("--stop_gmp_epochs", int, 130),
)

CIFAR_FLAGS: tuple[Flag, ...] = (
    _f("--model", str, ""),
    _f("--data", str, "mnist"),
    _f("--batch-size", int, 128, "data.batch_size"),
    _f("--test-batch-size", int, 128, "data.eval_batch_size"),
    _f("--epochs", int, 320),
    _f("--lr", float, 0.1, "optim.lr"),
    _f("--momentum", float, 0.9, "optim.momentum"),
    _f("--l2", float, 5e-4, "optim.weight_decay"),
    _f("--optimizer", str, "sgd"),
    _f("--seed", int, 17, "seed"),
    _f("--no-cuda"),
    _f("--fp16"),
    _f("--log-interval", int, 100, "log_every"),
    _f("--decay-schedule", str, "cosine"),
    _f("--layer_interval", int, 10),
    _f("--start_layer_rate", float, 0.1),
    _f("--growth", str, "random"),
    _f("--death", str, "magnitude"),
    _f("--death-rate", float, 0.05),
    _f("--density", float, 0.05),
    _f("--sparse_init", str, "ER"),
    _f("--update_frequency", int, 1000),
    _f("--gpm_filter_pune"),
    *_SHARED_SPARSE,
    _f("--iters", int, 1, ONLY, "repeats the whole run", allowed=(1,)),
    _f("--resume", str, None, REJECT, "their checkpoints are not ours; use chase train --resume"),
    _none("--indicate_method", str, "Results", SAVE_DIR),
    _none("--save", str, None, UNUSED),
    _f("--valid_split", float, 0.1),
    _none("--nolrsche", None, None, "their manual LR decay runs regardless"),
    _none("-j --workers", int, 4, "their CIFAR loaders hard-code 2 workers; ours are in memory"),
    _none("--max-threads", int, 10, "data-loading threads; ours read CIFAR in memory"),
    _none("--mgpu", None, None, "DataParallel; for several GPUs launch with torchrun"),
    _none("--world-size", int, -1, UNUSED),
    _none("--decay_frequency", int, 25000, UNUSED),
    _none("--l1", float, 0.0, UNUSED),
    _none("--start-epoch", int, 1, UNUSED),
    _none("--save-features", None, None, "only for models this command does not build"),
    _none("--bench", None, None, "only for models this command does not build"),
    _none("--PF-rate", float, 0.8, "only for their 'pruning' mask initialisation"),
    _none("--large-death-rate", float, 0.8, UNUSED),
    _none("--bound_ratio", float, 5.0, UNUSED),
    _none("--new_zero", None, None, UNUSED),
    _none("--grow_mask_not", None, None, UNUSED),
    _none("--no_grow_mask", None, None, UNUSED),
    _none("--random_init", None, None, UNUSED),
    _none("--grad_flow", None, None, UNUSED),
    _none("--comparision", None, None, "in their README, not in their argparse"),
)

IMAGENET_FLAGS: tuple[Flag, ...] = (
    _f("--arch -a", str, "resnet50"),
    _f("-b --batch-size", int, 64),
    _f("--total_epochs", int, 100, "epochs"),
    _f("--lr --learning-rate", float, 0.1, "optim.lr"),
    _f("--momentum", float, 0.9, "optim.momentum"),
    _f("--weight-decay --wd", float, 1e-4, "optim.weight_decay"),
    _f("--bn-weight-decay", None, None, "optim.decay_norm_and_bias"),
    _f("--label_smoothing", float, 0.0, "optim.label_smoothing"),
    _f("--warmup", int, 0, "schedule.warmup_epochs"),
    _f("--cosine_lr"),
    _f("--first_m", int, 30),
    _f("--second_m", int, 60),
    _f("--third_m", int, 80),
    _f("--seed", int, 17, "seed"),
    _f("-j --workers", int, 5, "data.workers"),
    _f("-p --print-freq", int, 10, "log_every"),
    _f("--fp16"),
    _f("--layer_interval", float, 16000.0),
    _f("--start_layer_rate", float, 0.1),
    _f("--growth", str, "gradients"),
    _f("--prune", str, "magnitude"),
    _f("--prune-rate", float, 0.5),
    _f("--density", float, 0.1),
    _f("--init-density", float, 1.0),
    _f("--sparse-init", str, "ER"),
    _f("--update-frequency", int, 2000),
    _f("--rm_first"),
    *_SHARED_SPARSE,
    _f("--multiplier", int, 1, ONLY, "stretches their step LR schedule", allowed=(1,)),
    _f("--method", str, "GraNet", ONLY, "GMP prunes a dense model", allowed=("DST", "GraNet")),
    _f("--start-epoch", int, 0, ONLY, "resumes their run mid-way", allowed=(0,)),
    _f("--resume", str, "", REJECT, "their checkpoints are not ours; use chase train --resume"),
    _f("-e --evaluate", None, None, REJECT, "evaluation only; use chase eval RUN_DIR"),
    _f("--pretrained-weights", str, "", REJECT, "starts from their weights"),
    _f("--prof", None, None, REJECT, "10 iterations per epoch; use --stop-after-steps"),
    _f("--benchmark-training", None, None, REJECT, "a speed test, not a run"),
    _f("--benchmark-inference", None, None, REJECT, "a speed test, not a run"),
    _none("-c --model-config", str, "classic", "picks the conv init's fan mode; ours: fan-out"),
    _none("--indicate_method", str, None, SAVE_DIR),
    _none("--save", str, "save/default", UNUSED),
    _none("--epochs", int, 90, "their run length is --total_epochs"),
    _none("--l2", float, 1e-4, "their weight decay is --weight-decay"),
    _none("--final-density", float, 0.2, "GraNet's gradual pruning is never called"),
    _none("--init-prune-epoch", int, 30, "GraNet's gradual pruning is never called"),
    _none("--final-prune-epoch", int, 0, "GraNet's gradual pruning is never called"),
    _none("--re_epochs", int, 90, "only with their --resume"),
    _none("--master_port -master_port", int, 10000, "torchrun sets the rendezvous"),
    _none("--local_rank", int, 0, "torchrun sets the rank"),
    _none("--static-loss-scale", float, 1.0, "our fp16 uses a dynamic loss scale"),
    _none("--dynamic-loss-scale", None, None, "our fp16 uses a dynamic loss scale"),
    _none("--bench-iterations", int, 20, "only with their benchmark flags"),
    _none("--bench-warmup", int, 20, "only with their benchmark flags"),
    _none("--gather-checkpoints", None, None, "extra checkpoint copies; ours: checkpoint_every"),
    _none("--grow-switch", str, "", UNUSED),
    _none("--spp", None, None, UNUSED),
    _none("--verbose", None, None, "printing only"),
    _none("--bound_ratio", float, 2.0, UNUSED),
)


@dataclass(frozen=True)
class Script:
    """One of their training scripts and its flags."""

    name: str
    path: str
    flags: tuple[Flag, ...]
    positional: str | None = None  # ImageNet: the dataset folder (their ``data`` DIR)

    def spellings(self) -> set[str]:
        return {n for f in self.flags for n in f.names}


CIFAR = Script("cifar", "Cifar/main_dst_chase.py", CIFAR_FLAGS)
IMAGENET = Script("imagenet", "Imagenet/main.py", IMAGENET_FLAGS, positional="data")
SCRIPTS = {s.name: s for s in (CIFAR, IMAGENET)}


def option_of(token: str) -> str | None:
    """The option a command-line token names (``--x=1`` → ``--x``, ``-j72`` → ``-j``)."""
    if not token.startswith("-") or token == "-" or token[1:2].isdigit():
        return None
    if token.startswith("--"):
        return token.split("=", 1)[0]
    return token if len(token) == 2 or token.startswith("-master_port") else token[:2]


def detect(tokens: Sequence[str]) -> Script:
    """The script a command line was written for: ImageNet if it uses a flag only that script
    has (``--arch``, ``--total_epochs``, ``--cosine_lr``, ...), otherwise CIFAR."""
    only_imagenet = IMAGENET.spellings() - CIFAR.spellings()
    if any(option_of(t) in only_imagenet for t in tokens):
        return IMAGENET
    return CIFAR


def add_flags(parser: argparse.ArgumentParser, script: Script) -> None:
    """Add ``script``'s flags to ``parser``; flags not given stay absent from the namespace."""
    group = parser.add_argument_group(f"flags of their {script.path}")
    for flag in script.flags:
        kwargs: dict[str, Any] = {"dest": flag.dest, "default": argparse.SUPPRESS}
        kwargs["help"] = describe(flag).replace("%", "%%")
        if flag.type is None:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = flag.type
        group.add_argument(*flag.names, **kwargs)
    if script.positional:
        group.add_argument(script.positional, nargs="?", default=argparse.SUPPRESS,
                           metavar="DIR", help="dataset folder (--data-dir wins)")  # fmt: skip


def describe(flag: Flag) -> str:
    """One line on what ``flag`` becomes here (for ``--help``)."""
    default = "" if flag.type is None else f" (default {flag.default!r})"
    if flag.effect == NONE:
        return f"no effect: {flag.why}"
    if flag.effect == ONLY:
        return f"only {', '.join(map(repr, flag.allowed))}: {flag.why}"
    if flag.effect == REJECT:
        return f"not supported: {flag.why}"
    if flag.effect == RULE:
        return f"see docs/reference-flags.md{default}"
    return f"-> {flag.effect}{default}"
