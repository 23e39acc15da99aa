"""How much of a third-party CNN Chase can prune, next to Torch-Pruning (docs/coverage.md).

    python benchmarks/coverage.py [--models tv:resnet50,...] [--json OUT] [--before OLD.json]
                                  [--markdown docs/coverage.md]

For every model of ``tests/vision_support.MODELS`` (random initialisation, 1000 classes, the
small input listed there): channel groups found and prunable, channels removed by Chase at
S_c 0.5 (prune skip off, as in training's default) out of all channels, the slim parameter
count with prune skip on, the parameters Torch-Pruning's magnitude pruning at ratio 0.5 leaves,
and the largest relative difference of slim vs masked outputs (eval mode). ``--json`` keeps
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
from chase.sparsity.config import ChannelConfig, SparsityConfig
from chase.structure import discover_groups

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import vision_support


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def chase_once(model: torch.nn.Module, x: torch.Tensor, groups: Any, prune_skip: bool):
    """Chase's channel selection at S_c 0.5 applied once (as ``chase.prune_channels_once``)."""
    channels = ChannelConfig(sparsity=0.5, every=1, end=1, offset=0, prune_skip=prune_skip)
    config = SparsityConfig(density=1.0, updater="static", total_steps=1, channels=channels)
    engine = chase.sparsify(model, None, config, groups=groups, attach=False)
    engine.after_step()
    return engine


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


def measure(name: str) -> dict[str, Any]:
    """All numbers of one model; a failure is recorded as its exception's first line."""
    torch.manual_seed(0)
    x = vision_support.example(name)
    row: dict[str, Any] = {"model": name}
    model = vision_support.build(name).eval()
    row["params"] = n_params(model)
    try:
        t0 = time.perf_counter()
        groups = discover_groups(model, x)
        row["discovery_s"] = time.perf_counter() - t0
        prunable = [g for g in groups if g.prunable]
        row["groups"], row["prunable"] = len(groups), len(prunable)
        row["residual"] = sum(g.residual for g in prunable)
        row["channels"] = sum(g.size * getattr(g, "unit", 1) for g in groups)
        engine = chase_once(model, x, groups, prune_skip=False)
        ch = engine.channels
        row["removed"] = 0 if ch is None else ch.total - ch.live
        skip = vision_support.build(name).eval()
        skip.load_state_dict(model.state_dict())
        engine = chase_once(skip, x, groups, prune_skip=True)
        slim = chase.slim(skip, engine).eval()
        with torch.no_grad():
            row["max_rel_diff"] = max_rel_diff(skip(x), slim(x))
        row["slim_params"] = n_params(slim)
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
        tp = r.get("tp_params")
        tp_cell = f"{_millions(r['params'])} → {_millions(tp)}" if tp else "fails"
        ratio = f"{r['slim_params'] / tp:.2f}" if tp and "slim_params" in r else "—"
        diff = f"{r['max_rel_diff']:.1e}" if "max_rel_diff" in r else "—"
        table.append([*line, tp_cell, ratio, diff])
    intro = (
        "Generated by `benchmarks/coverage.py` (do not edit by hand). Random initialisation, "
        f"{vision_support.CLASSES} classes, batch 2 at the input listed. Chase: one channel "
        "event at S_c 0.5 (`chase.prune_channels_once`: UMM score, min_keep_ratio 0.2); removed "
        "channels with prune skip off, parameters of the slim model with prune skip on. "
        "Torch-Pruning: `MagnitudePruner`, L2 magnitude, pruning_ratio 0.5, classifier kept. "
        "ratio = Chase's slim parameters / Torch-Pruning's (the contract suite asserts <= 1.25)."
    )
    return "\n".join([intro, "", env, "", markdown(headers, table)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(vision_support.MODELS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    p.add_argument("--before", type=Path, help="raw numbers of an older checkout")
    p.add_argument("--markdown", type=Path, help="write the report here (else print it)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        t0 = time.perf_counter()
        rows.append(measure(name))
        print(f"{name}: {time.perf_counter() - t0:.1f} s {rows[-1]}", file=sys.stderr)
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
