"""Dense vs slim inference speed of VGG-19 (CIFAR input) and ResNet-50 (ImageNet input, 224).

    python benchmarks/slim_speed.py [--device cpu|cuda] [--threads 2] [--rounds 3] [--json]

For every channel sparsity S_c and ``round_to``, Chase's channel selection is applied once to a
freshly initialised model (``chase.prune_channels_once``: the run's final channel event,
floors included) and the result is slimmed. ``chase.metrics.benchmark`` then times the dense
(masked) model and the slim one back to back at each batch size: eval mode, warm-up calls,
medians. Batch 1 is the latency number, batch 64 the throughput number. Each configuration is
measured ``--rounds`` times and the tables show the median speedup with its min–max range,
next to the FLOPs ratio (dense / slim FLOPs, the physical limit) and the efficiency
(speedup / FLOPs ratio).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from common import describe, environment, markdown, median, spread

from chase.metrics import benchmark
from chase.metrics.fresh import pruned_pair

#: model → dataset whose input it is measured on (ResNet-20: a small model for smoke checks)
MODELS = {"vgg19": "cifar10", "resnet50": "imagenet", "cifar_resnet20": "cifar10"}


def measure(
    model_name: str, sparsity: float, round_to: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """``--rounds`` benchmark rows per batch size for one (model, S_c, round_to)."""
    dense, slim, shape, achieved = pruned_pair(
        model_name, MODELS[model_name], sparsity, density=args.density, round_to=round_to,
        prune_skip=args.prune_skip,
    )  # fmt: skip
    rows = []
    for _ in range(args.rounds):
        for row in benchmark(
            dense, slim, input_shape=shape.input_shape, batch_sizes=args.batch_sizes,
            device=args.device, channels_last=args.channels_last, compile=args.compile,
            fuse_bn=args.fuse_bn, amp=args.amp, warmup=args.warmup, repeats=args.repeats,
            min_time_s=args.min_time,
        ):  # fmt: skip
            row.update(model=model_name, sparsity=sparsity, achieved=achieved, round_to=round_to)
            rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (model, S_c, round_to, batch): medians over rounds, with ranges."""
    keyed: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        keyed.setdefault((r["model"], r["sparsity"], r["round_to"], r["batch_size"]), []).append(r)
    out = []
    for (model, sc, rt, batch), group in keyed.items():
        speedups = [g["speedup"] for g in group]
        ratio = group[0]["flops_ratio"]
        out.append({
            "model": model, "sparsity": sc, "achieved": group[0]["achieved"], "round_to": rt,
            "batch_size": batch, "dense_ms": median([g["dense_ms"] for g in group]),
            "slim_ms": median([g["slim_ms"] for g in group]), "speedup": median(speedups),
            "speedup_range": spread(speedups), "flops_ratio": ratio,
            "gpu_supported_ratio": 1 / ratio, "efficiency": median(speedups) / ratio,
            "rounds": len(group),
        })  # fmt: skip
    return out


def report(env: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    headers = ["model", "S_c (achieved)", "round_to", "batch", "dense ms", "slim ms",
               "speedup (range)", "FLOPs ratio", "GPU-supported FLOPs", "efficiency"]  # fmt: skip
    rows = [
        [s["model"], f"{s['sparsity']:.1f} ({s['achieved']:.3f})", s["round_to"], s["batch_size"],
         f"{s['dense_ms']:.2f}", f"{s['slim_ms']:.2f}",
         f"{s['speedup']:.2f}x ({s['speedup_range']})", f"{s['flops_ratio']:.2f}x",
         f"{s['gpu_supported_ratio']:.3f}x", f"{s['efficiency']:.2f}"]
        for s in summary
    ]  # fmt: skip
    return describe(env) + "\n\n" + markdown(headers, rows)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vgg19,resnet50", help="from: " + ", ".join(MODELS))
    p.add_argument("--sparsities", default="0.3,0.4,0.5", help="channel sparsities S_c")
    p.add_argument("--round-to", default="1,8", help="round_to values")
    p.add_argument("--batch-sizes", default="1,64", help="latency and throughput batches")
    p.add_argument("--density", type=float, default=0.1, help="weight density the score sees")
    p.add_argument("--prune-skip", action="store_true", help="also prune residual streams")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--fuse-bn", action="store_true", help="fold BatchNorm into convs first")
    p.add_argument("--amp", choices=("none", "bf16"), default="none",
                   help="bf16: both forwards under torch.autocast to bfloat16")  # fmt: skip
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--min-time", type=float, default=0.0, help="seconds per timing, at least")
    p.add_argument("--rounds", type=int, default=1, help="repeat every measurement N times")
    p.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = p.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        p.error(f"--models: unknown {unknown}; choose from {sorted(MODELS)}")
    args.sparsities = [float(s) for s in args.sparsities.split(",")]
    args.round_to = [int(r) for r in args.round_to.split(",")]
    args.batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its kernels
    env = environment(args.device)
    rows = []
    for model in args.models:
        for sc in args.sparsities:
            for rt in args.round_to:
                rows += measure(model, sc, rt, args)
    env["load_average_end"] = environment(args.device)["load_average"]
    summary = summarise(rows)
    if args.json:
        print(json.dumps({"env": env, "summary": summary, "rows": rows}, indent=1))
    else:
        print(report(env, summary))


if __name__ == "__main__":
    main()
