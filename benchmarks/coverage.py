"""How much of a third-party CNN Chase can prune, next to Torch-Pruning (docs/coverage.md).

    python benchmarks/coverage.py [--models tv:resnet50,...] [--json OUT] [--before OLD.json]
                                  [--markdown docs/coverage.md]

For every model of ``tests/vision_support.MODELS`` (random initialisation, 1000 classes, the
small input listed there): channel groups found and prunable, channels removed by Chase at
S_c 0.5 (prune skip off, as in training's default) out of all channels, the slim parameter
count with prune skip on (seeded random ranking: ``vision_support.chase_at``), the
parameters Torch-Pruning's magnitude pruning at ratio 0.5 leaves, and the largest relative
difference of slim vs masked outputs (eval mode). ``--json`` keeps
the raw numbers; ``--before`` reads such a file, measured on an older checkout, and prints it
as the "before" columns. The models come straight from torchvision/timm (not through
``chase.models``) so the script also runs on checkouts older than ``tv:``/``timm:`` names.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import describe, environment, markdown

import chase
from chase.structure import discover_groups

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import vision_support


def measure(name: str) -> dict[str, Any]:
    """All numbers of one model; a failure is recorded as its exception's first line."""
    torch.manual_seed(0)
    x = vision_support.example(name)
    row: dict[str, Any] = {"model": name}
    model = vision_support.build(name).eval()
    row["params"] = vision_support.n_params(model)
    try:
        t0 = time.perf_counter()
        groups = discover_groups(model, x)
        row["discovery_s"] = time.perf_counter() - t0
        prunable = [g for g in groups if g.prunable]
        row["groups"], row["prunable"] = len(groups), len(prunable)
        row["residual"] = sum(g.residual for g in prunable)
        row["channels"] = sum(g.size * getattr(g, "unit", 1) for g in groups)
        engine = vision_support.chase_at(model, x, groups, prune_skip=False)
        ch = engine.channels
        row["removed"] = 0 if ch is None else ch.total - ch.live
        skip = vision_support.build(name).eval()
        skip.load_state_dict(model.state_dict())
        engine = vision_support.chase_at(skip, x, groups, prune_skip=True)
        slim = chase.slim(skip, engine).eval()
        with torch.no_grad():
            row["max_rel_diff"] = vision_support.max_rel_diff(skip(x), slim(x))
        row["slim_params"] = vision_support.n_params(slim)
        shrunk = vision_support.build(name).eval()  # as chase train does: shrinking as it goes
        shrunk.load_state_dict(model.state_dict())
        vision_support.chase_at(shrunk, x, groups, prune_skip=True, shrink=True)
        row["shrink_params"] = vision_support.n_params(shrunk)
    except Exception as e:  # the "before" state: record how it failed
        row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
    try:
        row["tp_params"] = vision_support.torch_pruning_params(vision_support.build(name), x)
    except Exception as e:
        row["tp_error"] = f"{type(e).__name__}"
    return row


def _millions(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.1f}M"


def _cells(r: dict[str, Any] | None) -> list[str]:
    if r is None:
        return ["", "", ""]
    if "error" in r:
        return [f"fails: {r['error'][:60]}", "—", "—"]
    residual = f", {r['residual']} residual" if r["residual"] else ""
    return [
        f"{r['prunable']}/{r['groups']}{residual}",
        f"{r['removed']:,} / {r['channels']:,}",
        f"{_millions(r['params'])} → {_millions(r['slim_params'])}",
    ]


def report(rows: list[dict[str, Any]], before: dict[str, dict[str, Any]], env: str) -> str:
    headers = ["model", "input"]
    if before:
        headers += ["before: prunable groups", "before: removed / all channels", "before: params"]
    headers += [
        "prunable groups",
        "channels removed at S_c 0.5 / all",
        "params, prune skip",
        "params, prune skip, shrinking",
        "Torch-Pruning 50%",
        "ratio",
        "slim vs masked",
    ]
    table = []
    for r in rows:
        side = vision_support.MODELS[r["model"]]
        line = [r["model"], f"{side}×{side}"]
        if before:
            line += _cells(before.get(r["model"]))
        line += _cells(r)
        shrunk = r.get("shrink_params", r.get("slim_params"))
        line.append(f"{_millions(r['params'])} → {_millions(shrunk)}" if shrunk else "—")
        tp = r.get("tp_params")
        tp_cell = f"{_millions(r['params'])} → {_millions(tp)}" if tp else "fails"
        ratio = f"{shrunk / tp:.2f}" if tp and shrunk else "—"
        diff = f"{r['max_rel_diff']:.1e}" if "max_rel_diff" in r else "—"
        table.append([*line, tp_cell, ratio, diff])
    intro = (
        "Generated by `benchmarks/coverage.py` (do not edit by hand). Random initialisation, "
        f"{vision_support.CLASSES} classes, batch 2 at the input listed. Chase: one channel "
        "event at S_c 0.5 (`chase.prune_channels_once`'s settings, min_keep_ratio 0.2, ranked by "
        "the seeded `random` score: on random weights UMM ranks by initialisation scale); removed "
        "channels with prune skip off, parameters of the slim model with prune skip on, and of the "
        "model shrunk in place as `chase train` does (LayerNorm-normalised streams, ConvNeXt's, "
        "are exact only when shrinking, so a masked model keeps them). "
        "Torch-Pruning: `MagnitudePruner`, L2 magnitude, pruning_ratio 0.5, classifier kept. "
        "ratio = Chase's shrinking parameters / Torch-Pruning's (the contract suite asserts "
        "<= 1.25). "
        "The before columns (`benchmarks/coverage_before.json`) were measured on commit "
        "5002832's structure code by the first version of this script, which ranked by UMM, so "
        "its parameter counts are not comparable with the after columns; its group and channel "
        "counts are."
    )
    return "\n".join([intro, "", env, "", markdown(headers, table)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(vision_support.MODELS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    p.add_argument("--before", type=Path, help="raw numbers of an older checkout")
    p.add_argument("--markdown", type=Path, help="write the report here (else print it)")
    p.add_argument("--from-json", type=Path, help="report raw numbers saved by --json")
    p.add_argument("--remeasure", help="with --from-json: measure these models again")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = json.loads(args.from_json.read_text()) if args.from_json else []
    measured = [] if args.from_json and not args.remeasure else args.models.split(",")
    if args.remeasure:
        measured = args.remeasure.split(",")
    for name in measured:
        t0 = time.perf_counter()
        row = measure(name)
        rows = [r for r in rows if r["model"] != name] + [row]
        print(f"{name}: {time.perf_counter() - t0:.1f} s {row}", file=sys.stderr)
    order = list(vision_support.MODELS)
    rows.sort(key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    before = {}
    if args.before:
        before = {r["model"]: r for r in json.loads(args.before.read_text())}
    text = report(rows, before, describe(environment("cpu")))
    if args.markdown:
        args.markdown.write_text("# Third-party coverage\n\n" + text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
