"""Training speed of the same Chase run with shrink-while-training on and off.

    python benchmarks/train_speed.py [--cases demo,vgg19,resnet50] [--steps 240] [--rounds 2]
                                     [--device cpu|cuda] [--batch-size 64] [--channels-last]
                                     [--amp none|bf16] [--threads 2] [--json FILE]

Each case is one Chase run (``chase.train.run.run_training``) trained twice from the same
seed, ``sparsity.channels.shrink`` false and true, in child processes run back to back (and
alternated over ``--rounds``), so each child's peak memory is its own. The runs make the same
channel decisions (tested), so they differ only in what the hardware executes:

- per-phase step time (a phase is the steps between two channel events) from the per-step
  clock in ``metrics.jsonl``, and the total training time (``report.json`` ``seconds``);
- the bound the FLOPs trajectory allows: dense-hardware training FLOPs of the masked run
  divided by those of the shrinking run (``flops.train_gpu_supported``), and the efficiency,
  measured speedup / bound;
- peak memory: resident set size on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA.

Cases: ``demo`` is the ``fmnist-demo`` preset (Fashion-MNIST if installed, else synthetic data
of its shape); ``vgg19`` and ``resnet50`` are CIFAR-shaped (VGG-19, ``resnet50_cifar``) on
synthetic data for ``--steps`` steps with a channel schedule that reaches S_c = 0.5 at a third
of the run. Markdown goes to stdout, everything measured to ``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from common import describe, environment, markdown, median, spread

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
CASES = ("demo", "vgg19", "resnet50")


def case_sources(case: str, args: argparse.Namespace) -> dict[str, Any]:
    """``chase.train.run.Sources`` fields of one case (the ``shrink`` setting comes later)."""
    common = ["bench.repeats=0", "recalibrate_bn_steps=2", "log_every=1", "checkpoint_every=100000",
              f"device={args.device}", f"amp={args.amp}",
              f"channels_last={'true' if args.channels_last else 'false'}"]  # fmt: skip
    if case == "demo":
        sets = list(common)
        if not FMNIST.exists():
            sets += ["data.name=synthetic", "data.synthetic_like=fashion-mnist",
                     "data.synthetic_size=60000"]  # fmt: skip
        return {"preset": "fmnist-demo", "sets": sets}
    model = {"vgg19": "vgg19", "resnet50": "resnet50_cifar"}[case]
    steps, batch = args.steps, args.batch_size
    every = max(1, steps // 12)
    sets = [
        *common, f"model={model}", "method=chase", "data.name=synthetic",
        "data.synthetic_like=cifar10", f"data.synthetic_size={steps * batch}",
        f"data.batch_size={batch}", "data.augment=false", "data.workers=0", "epochs=1",
        "optim.lr=0.05", "schedule.name=cosine", "sparsity.density=0.1",
        "sparsity.scope=global", f"sparsity.update_every={2 * every}",
        f"sparsity.mest_end={steps // 2}", f"sparsity.channels.every={every}",
        f"sparsity.channels.end={steps // 3}", "sparsity.channels.sparsity=0.5",
        "sparsity.channels.min_keep_ratio=0.2",
    ]  # fmt: skip
    return {"sets": sets}


def child(spec_path: str) -> None:
    """Run one variant (in its own process) and write what it measured next to its run."""
    from chase.train.config import RunConfig
    from chase.train.run import Sources, resolve_config, run_training

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    cfg = RunConfig.from_dict(resolve_config(Sources(**spec["sources"])))
    if cfg.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    outcome = run_training(cfg, spec["out"], overwrite=True)
    assert outcome.report is not None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    if cfg.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
    Path(spec["out"], "speed.json").write_text(json.dumps({"peak_bytes": peak}))


def run_variant(case: str, shrink: bool, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    sources = case_sources(case, args)
    sources["sets"] = [*sources["sets"], f"sparsity.channels.shrink={str(shrink).lower()}"]
    out = root / f"{case}-{'shrink' if shrink else 'masked'}"
    spec = root / f"{out.name}.json"
    spec.write_text(json.dumps({"sources": sources, "out": str(out), "threads": args.threads}))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run([sys.executable, __file__, "--child", str(spec)], env=env, check=True)
    report = json.loads((out / "report.json").read_text())
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x]
    train = [r for r in records if r.get("kind") == "train"]
    peak = json.loads((out / "speed.json").read_text())["peak_bytes"]
    return {"report": report, "train": train, "peak_bytes": peak}


def phases(train: list[dict[str, Any]]) -> list[tuple[int, int, float]]:
    """(first step, last step, mean seconds per step) between changes of the live channels;
    the first step of the run (warm-up, allocations) is left out."""
    out, start, prev_t, prev_live, times = [], None, None, None, []
    for r in train:
        live, t = r.get("live_channels"), r["seconds"]
        if prev_t is not None and r["step"] > 1:
            if live != prev_live and times:
                out.append((start, r["step"] - 1, sum(times) / len(times)))
                start, times = r["step"], []
            start = r["step"] if start is None else start
            times.append(t - prev_t)
        prev_t, prev_live = t, live
    if times:
        out.append((start, train[-1]["step"], sum(times) / len(times)))
    return out


def summarise(case: str, masked: list[dict], shrunk: list[dict]) -> dict[str, Any]:
    """Medians over rounds: total speedup, the FLOPs bound, efficiency, phases, memory."""
    t_m = [r["report"]["seconds"] for r in masked]
    t_s = [r["report"]["seconds"] for r in shrunk]
    speedups = [m / s for m, s in zip(t_m, t_s)]
    fm, fs = masked[0]["report"]["flops"], shrunk[0]["report"]["flops"]
    bound = fm["train_gpu_supported"] / fs["train_gpu_supported"]
    per_phase = []
    for (a, b, tm), (_, _, ts) in zip(phases(masked[0]["train"]), phases(shrunk[0]["train"])):
        per_phase.append({"steps": [a, b], "masked_s": tm, "shrink_s": ts, "speedup": tm / ts})
    return {
        "case": case, "steps": shrunk[0]["report"]["steps"],
        "seconds_masked": median(t_m), "seconds_shrink": median(t_s),
        "speedup": median(speedups), "speedup_range": spread(speedups), "bound": bound,
        "efficiency": median(speedups) / bound,
        "accuracy_masked": masked[0]["report"]["test_accuracy"],
        "accuracy_shrink": shrunk[0]["report"]["test_accuracy"],
        "channel_sparsity": shrunk[0]["report"]["channel_sparsity"],
        "peak_mb_masked": median([r["peak_bytes"] for r in masked]) / 2**20,
        "peak_mb_shrink": median([r["peak_bytes"] for r in shrunk]) / 2**20,
        "phases": per_phase, "rounds": len(speedups),
    }  # fmt: skip


def report(env: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    headers = ["case", "steps", "S_c", "masked s", "shrink s", "speedup (range)", "FLOPs bound",
               "efficiency", "peak MB masked / shrink", "test acc masked / shrink"]  # fmt: skip
    table = [
        [r["case"], r["steps"], f"{r['channel_sparsity']:.2f}", f"{r['seconds_masked']:.1f}",
         f"{r['seconds_shrink']:.1f}", f"{r['speedup']:.2f}x ({r['speedup_range']})",
         f"{r['bound']:.2f}x", f"{r['efficiency']:.2f}",
         f"{r['peak_mb_masked']:.0f} / {r['peak_mb_shrink']:.0f}",
         f"{100 * r['accuracy_masked']:.2f} / {100 * r['accuracy_shrink']:.2f}"]
        for r in rows
    ]  # fmt: skip
    parts = [describe(env), "", markdown(headers, table)]
    for r in rows:
        head = ["steps", "masked s/step", "shrink s/step", "speedup"]
        body = [[f"{p['steps'][0]}-{p['steps'][1]}", f"{p['masked_s']:.4f}",
                 f"{p['shrink_s']:.4f}", f"{p['speedup']:.2f}x"] for p in r["phases"]]  # fmt: skip
        parts += ["", f"{r['case']}: step time per phase (between channel events)", "",
                  markdown(head, body)]  # fmt: skip
    return "\n".join(parts)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES), help="from: " + ", ".join(CASES))
    p.add_argument("--steps", type=int, default=240, help="steps of the synthetic cases")
    p.add_argument("--batch-size", type=int, default=64, help="batch of the synthetic cases")
    p.add_argument("--rounds", type=int, default=1, help="measure every variant N times")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--channels-last", action="store_true", help="NHWC (CUDA runs only)")
    p.add_argument("--amp", default="none", choices=("none", "bf16"), help="autocast dtype")
    p.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        p.error(f"--cases: unknown {unknown}; choose from {list(CASES)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child)
        return
    env = environment(args.device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        for case in args.cases:
            runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
            for _ in range(args.rounds):
                for shrink in (False, True):
                    runs[shrink].append(run_variant(case, shrink, args, Path(tmp)))
            rows.append(summarise(case, runs[False], runs[True]))
    env["load_average_end"] = environment(args.device)["load_average"]
    print(report(env, rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"env": env, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
