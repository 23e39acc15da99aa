"""``chase models``: the registered models (name, aliases, designed input, default classes,
parameters, FLOPs per image) and how torchvision and timm models are named; ``chase models tv``
lists a third-party package's names; ``--markdown`` prints ``docs/models.md``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap
from typing import Any

from rich.table import Table

from chase.cli.console import console, fmt_flops
from chase.errors import ConfigError

#: how third-party models are named, one line per source: (prefix, package, example)
THIRD_PARTY = (("tv", "torchvision", "tv:resnet50"), ("timm", "timm", "timm:efficientnet_b0"))

NAMING = (
    "Any torchvision or timm model works too, by name: {names}. They are built with random "
    "initialisation (nothing is downloaded) for the dataset's classes and input channels, and "
    "need pip install 'chase-sparse[vision]'."
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "models",
        help="list the models --model accepts",
        description="List the registered models: name, aliases, the input each is designed "
        "for, its default class count, parameters and FLOPs per image at that size; and how "
        "torchvision (tv:NAME) and timm (timm:NAME) models are named. With SOURCE (tv or "
        "timm), list that package's model names instead.",
    )
    p.add_argument("source", nargs="?", metavar="SOURCE", help="tv or timm: list its names")
    p.add_argument("--markdown", action="store_true", help="print docs/models.md (Markdown)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from chase.models.catalog import describe_models, source_names

    if args.source is not None:
        if args.markdown:
            raise ConfigError("chase models: --markdown describes the registry; drop SOURCE")
        names = source_names(args.source)
        print(json.dumps(names) if args.json else "\n".join(names))
        return 0
    infos = describe_models()
    if args.json:
        rows = [{**dataclasses.asdict(i), "input_size": list(i.input_size)} for i in infos]
        print(json.dumps({"models": rows, "third_party": _third_party()}))
    elif args.markdown:
        print(markdown(infos), end="")
    else:
        console.print(_table(infos))
        console.print(NAMING.format(names=_names(" or ")), soft_wrap=True, markup=False)
    return 0


def _third_party() -> list[dict[str, str]]:
    return [
        {"prefix": prefix, "package": package, "form": f"{prefix}:NAME", "example": example}
        for prefix, package, example in THIRD_PARTY
    ]


def _names(join: str, code: str = "") -> str:
    """``tv:NAME (torchvision, e.g. tv:resnet50) or timm:NAME (...)``, ``code`` around names."""
    return join.join(
        f"{code}{prefix}:NAME{code} ({package}, e.g. {code}{example}{code})"
        for prefix, package, example in THIRD_PARTY
    )


def _cells(info: Any) -> list[str]:
    c, h, w = info.input_size
    return [f"{c}x{h}x{w}", str(info.num_classes), f"{info.params:,}", fmt_flops(info.flops)]


def _table(infos: list[Any]) -> Table:
    table = Table(header_style="bold", box=None, pad_edge=False)
    for name in ("model", "input", "classes", "parameters", "FLOPs/image", "aliases"):
        right = name in ("classes", "parameters", "FLOPs/image")
        table.add_column(name, justify="right" if right else "left", overflow="fold")
    for info in infos:
        table.add_row(info.name, *_cells(info), ", ".join(info.aliases))
    return table


def markdown(infos: list[Any]) -> str:
    """The text of ``docs/models.md``: the registry's table and the third-party naming."""
    lines = [
        "# Models",
        "",
        "<!-- Written by `chase models --markdown > docs/models.md`; a test checks it is "
        "current. -->",
        "",
        _fill(
            "The names `--model` accepts (also `model:` in YAML and "
            "`chase.models.create_model`); an alias is another spelling of the same model. "
            "Parameters and FLOPs are counted at the input each model is designed for and its "
            "default class count; a run builds the model for its dataset's classes and input "
            "channels instead. FLOPs are dense, per image, a multiply-accumulate counting 2, "
            "Conv and Linear layers only (`docs/measurement.md`). `chase models` prints this "
            "table."
        ),
        "",
        "| model | aliases | input (C×H×W) | classes | parameters | FLOPs per image |",
        "|---|---|---|---:|---:|---:|",
    ]
    for info in infos:
        aliases = ", ".join(f"`{a}`" for a in info.aliases)
        size, classes, params, flops = _cells(info)
        size = size.replace("x", "×")
        lines.append(f"| `{info.name}` | {aliases} | {size} | {classes} | {params} | {flops} |")
    lines += [
        "",
        "## torchvision and timm models",
        "",
        _fill(
            NAMING.format(names=_names(" or ", "`")).replace(
                "pip install 'chase-sparse[vision]'", "`pip install 'chase-sparse[vision]'`"
            )
        ),
        "",
        _fill(
            "`chase models tv` and `chase models timm` list every name the installed packages "
            "define; `chase groups --model NAME` shows which of a model's channels Chase can "
            "prune, and `docs/coverage.md` how many it can for the models we test."
        ),
        "",
    ]
    return "\n".join(lines)


def _fill(text: str) -> str:
    """``text`` wrapped at 96 columns, never inside a `code span`."""
    parts = text.split("`")
    kept = "`".join(p.replace(" ", "\0") if i % 2 else p for i, p in enumerate(parts))
    wrapped = textwrap.fill(kept, width=96, break_long_words=False, break_on_hyphens=False)
    return wrapped.replace("\0", " ")
