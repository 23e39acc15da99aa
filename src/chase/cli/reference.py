"""``chase train-reference``: train from a command line of the Chase authors' released code.

The flags of their CIFAR script (``Cifar/main_dst_chase.py``) or ImageNet script
(``Imagenet/main.py``) are parsed here and translated by ``chase.train.reference`` into one
layer of settings (between a preset and ``--config``); the ones that change nothing here are
named in one note, and the run then goes through exactly the path of ``chase train`` (its
options ``--set``, ``--out``, ``--overwrite``, ``--data-dir``, ``--device``,
``--stop-after-steps`` and ``--quiet`` work the same). The full mapping, with reasons, is in
``docs/reference-flags.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any, NoReturn

import yaml

from chase.checks import did_you_mean
from chase.cli import train
from chase.errors import ConfigError
from chase.train.reference import SCRIPTS, Script, Translation, detect, option_of, translate
from chase.train.reference.flags import add_flags
from chase.train.sources import deep_merge, load_yaml_text

DOCS = "docs/reference-flags.md"
DESCRIPTION = (
    "Train from the flags of the Chase authors' released code: their CIFAR script "
    "(Cifar/main_dst_chase.py) or, when an ImageNet-only flag such as --arch or "
    "--total_epochs appears, their ImageNet script (Imagenet/main.py). Paste the flags without "
    "the launcher (python main.py, torchrun, multiproc.py). Every flag's mapping: " + DOCS + "."
)


def add_parser(sub: Any) -> None:
    # Their flags are parsed here, not by the top-level parser: '+' as the prefix makes every
    # token a plain string for it, so unknown flags reach our own single-line error.
    p = sub.add_parser("train-reference", help="train from the flags of the authors' code",
                       description=DESCRIPTION, prefix_chars="+", add_help=False)  # fmt: skip
    p.add_argument("flags", nargs=argparse.REMAINDER)
    p.set_defaults(handler=run)


class _Parser(argparse.ArgumentParser):
    """Bad input is a ``ConfigError`` (one line, exit 2), never argparse's usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def _own_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("chase options")
    g.add_argument("-h", "--help", action="store_true", default=False, help="show this help")
    g.add_argument("--out", default=None, help="run folder (default: runs/<model-data-method>)")
    g.add_argument("--overwrite", action="store_true", default=False,
                   help="replace an existing run in --out")  # fmt: skip
    g.add_argument("--data-dir", default=None, help="dataset folder (wins over their DIR)")
    g.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    g.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="set any config field after the mapping (repeatable)")  # fmt: skip
    g.add_argument("--stop-after-steps", type=int, default=None, metavar="K",
                   help="stop after K steps, as if interrupted (checkpointed)")  # fmt: skip
    g.add_argument("--synthetic", action="store_true", default=False,
                   help="synthetic data shaped like their dataset (smoke tests)")  # fmt: skip
    g.add_argument("--nproc-per-node", "--nproc_per_node", dest="nproc", type=int,
                   default=None, metavar="N",
                   help="processes of their ImageNet launch: global batch = -b x N "
                        "(default: $WORLD_SIZE or 1)")  # fmt: skip
    g.add_argument("--script", choices=sorted(SCRIPTS), default=None,
                   help="whose flags these are (default: detected)")  # fmt: skip
    g.add_argument(
        "--dry-run",
        action="store_true",
        default=False,
        help="print the equivalent chase train command and config; do not train",
    )
    g.add_argument("--quiet", action="store_true", default=False, help="no progress output")


def build_parser(script: Script) -> argparse.ArgumentParser:
    """Our options plus ``script``'s flags (their flags absent from the result unless given)."""
    parser = _Parser(prog="chase train-reference", description=DESCRIPTION, add_help=False,
                     usage="%(prog)s [their flags] [chase options]", allow_abbrev=False,
                     argument_default=argparse.SUPPRESS)  # fmt: skip
    _own_flags(parser)
    add_flags(parser, script)
    return parser


def _script(tokens: list[str]) -> Script:
    pre = _Parser(add_help=False, allow_abbrev=False)
    pre.add_argument("--script", choices=sorted(SCRIPTS), default=None)
    forced = pre.parse_known_args(tokens)[0].script
    return SCRIPTS[forced] if forced else detect(tokens)


def parse(tokens: list[str]) -> tuple[argparse.Namespace, dict[str, Any], Script]:
    """Our options, their flags as given (dest → value) and the script they belong to."""
    script = _script(tokens)
    ns, extra = build_parser(script).parse_known_args(tokens)
    if extra:
        raise ConfigError(_unknown(extra, script))
    theirs = {f.dest for f in script.flags} | {script.positional}
    given = {k: v for k, v in vars(ns).items() if k in theirs}
    return ns, given, script


def _unknown(extra: list[str], script: Script) -> str:
    options = [t for t in extra if option_of(t)] or extra
    hint = did_you_mean(option_of(options[0]) or options[0], sorted(script.spellings()))
    return f"unknown flag(s) for their {script.path}: {' '.join(options)}{hint}; see {DOCS}"


def resolve(tokens: list[str]) -> tuple[argparse.Namespace, Translation, Any]:
    """Parse and map ``tokens``: our options, the translation, and the run's settings sources."""
    from chase.train.run import Sources, check_stop_after

    ns, given, script = parse(tokens)
    check_stop_after(ns.stop_after_steps)
    if ns.nproc is not None and script.name != "imagenet":
        raise ConfigError("--nproc-per-node applies to their ImageNet script only (-b per GPU)")
    if ns.nproc is not None:
        procs, source = ns.nproc, "--nproc-per-node"
    else:
        procs, source = int(os.environ.get("WORLD_SIZE", "1")), "$WORLD_SIZE"
    if procs < 1:
        raise ConfigError(f"{source} {procs} is not allowed: an integer >= 1")
    tr = translate(script, given, procs)
    layer = tr.config
    if ns.synthetic:
        like = {"name": "synthetic", "synthetic_like": layer["data"]["name"], "dir": None}
        layer = deep_merge(layer, {"data": like})
    flags = {"device": ns.device, "data.dir": ns.data_dir}
    return ns, tr, Sources(reference=layer, sets=list(ns.sets), flags=flags)


def to_sets(cfg: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"optim": {"lr": 0.1}}`` → ``["optim.lr=0.1"]`` (values as YAML that reads back)."""
    out = []
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            out += to_sets(value, f"{prefix}{key}.")
            continue
        text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30)
        text = text.removesuffix("...\n").strip()
        if load_yaml_text(text) != value:
            raise AssertionError(f"{prefix}{key}: {value!r} does not survive YAML as {text!r}")
        out.append(f"{prefix}{key}={text}")
    return out


def run(args: argparse.Namespace) -> int:
    from chase.train.config import RunConfig
    from chase.train.run import default_run_dir, resolve_config

    tokens = list(args.flags)
    if "-h" in tokens or "--help" in tokens:
        print(build_parser(_script(tokens)).format_help(), end="")
        return 0
    ns, tr, sources = resolve(tokens)
    main = int(os.environ.get("RANK", "0")) == 0
    if tr.no_effect and main:
        print(
            f"chase: note: these reference flags have no effect here: "
            f"{' '.join(tr.no_effect)} (see {DOCS})",
            file=sys.stderr,
        )
    cfg = RunConfig.from_dict(resolve_config(sources))
    if ns.dry_run:
        print(f"# their {tr.script.path} flags, run by chase as:")
        print("chase " + shlex.join(equivalent_command(sources, ns)))
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    return train.execute(cfg, ns.out or default_run_dir(cfg), ns)


def equivalent_command(sources: Any, ns: argparse.Namespace) -> list[str]:
    """The ``chase train`` arguments that run the same configuration (shown by --dry-run)."""
    argv = ["train"] + [x for s in [*to_sets(dict(sources.reference)), *sources.sets]
                        for x in ("--set", s)]  # fmt: skip
    for flag, value in (("--device", ns.device), ("--data-dir", ns.data_dir), ("--out", ns.out),
                        ("--stop-after-steps", ns.stop_after_steps)):  # fmt: skip
        if value is not None:
            argv += [flag, str(value)]
    return argv + [f for f, on in (("--overwrite", ns.overwrite), ("--quiet", ns.quiet)) if on]
