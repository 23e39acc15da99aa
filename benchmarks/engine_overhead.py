"""What the sparsity engine costs: per training step, per topology update, per channel event.

    python benchmarks/engine_overhead.py [--threads 2] [--json]

1. Training step at batch 128 (CIFAR ResNet-20 and VGG-19, SGD with momentum): dense against
   masked (RigL engine; Chase engine = MEST updater + channel pruner after one channel event)
   on non-update steps. Variants are timed in interleaved rounds (dense, rigl, chase, dense,
   ...) so load drift hits all of them alike; the overhead is the median over rounds of the
   masked / dense ratio within a round. The engine's own work on such a step
   (``after_step``, what the optimizer hook adds) is also timed alone: it is the precise
   number, the whole-step ratio the noisy cross-check.
2. One topology update (RigL and MEST, layer and global scope) and one channel event on
   ResNet-50 (1000 classes, 25.5M weights, density 0.1): ``after_step()`` at a step where the
   event is due, i.e. everything the engine does at that step.
3. Engine memory per maskable weight: masks, and every tensor the engine keeps.
4. ``--apply-model`` (e.g. ``tv:vgg11_bn``, 132M weights, mostly its classifier): when weights
   dwarf compute, the per-step mask work (``MaskSet.apply``: weights and SGD momentum) next to
   the optimizer step itself, at 32x32 and batch 8.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from common import describe, environment, markdown, median
from torch import nn

import chase
from chase.metrics import percentile, time_fn
from chase.models import create_model
from chase.sparsity.config import ChannelConfig, SparsityConfig

NEVER = 10**9  # an update interval no benchmark reaches


def step_fn(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    """One training step: forward, loss, backward, optimizer step (engine hooks run in it)."""
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def make_variant(name: str, base: nn.Module, x: torch.Tensor) -> tuple[Callable[[], None], Any]:
    """(training step, engine or None) for ``dense``, ``rigl`` or ``chase`` on a copy of base."""
    model = copy.deepcopy(base).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    engine = None
    if name == "rigl":
        cfg = SparsityConfig(density=0.1, updater="rigl", update_every=NEVER, total_steps=NEVER)
        engine = chase.sparsify(model, opt, cfg)
    elif name == "chase":
        channels = ChannelConfig(sparsity=0.5, every=NEVER, end=1, offset=1)
        cfg = SparsityConfig(density=0.1, updater="mest", update_every=NEVER,
                             total_steps=NEVER, channels=channels)  # fmt: skip
        engine = chase.sparsify(model, opt, cfg, example_inputs=x[:2])
    y = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    step = step_fn(model, opt, x, y)
    step()  # the Chase engine runs its one channel event here; every later step is plain
    return step, engine


def training_step(model_name: str, batch: int, rounds: int, repeats: int) -> dict[str, Any]:
    """Dense and masked steps timed in interleaved rounds, their paired ratios, and the
    engine's own per-step time (``after_step`` alone, the part the engine adds)."""
    base = create_model(model_name, num_classes=10)
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    variants = {name: make_variant(name, base, x) for name in ("dense", "rigl", "chase")}
    for step, _ in variants.values():
        step()  # one more warm-up step each; the rounds below time without warm-up
    blocks: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (step, _) in variants.items():
            blocks[name].append(time_fn(step, warmup=0, repeats=repeats).median_ms)
    dense = blocks["dense"]
    out: dict[str, Any] = {"model": model_name, "batch": batch, "dense_ms": median(dense)}
    for name in ("rigl", "chase"):
        ratios = [m / d for m, d in zip(blocks[name], dense)]  # same round: same load
        engine = variants[name][1]
        after = time_fn(engine.after_step, warmup=2, repeats=20).median_ms
        out[name] = {
            "step_ms": median(blocks[name]),
            "overhead_pct": 100 * (median(ratios) - 1),
            "overhead_p10_p90_pct": [100 * (percentile(ratios, q) - 1) for q in (10, 90)],
            "after_step_ms": after,
            "after_step_pct": 100 * after / median(dense),
            "blocks_ms": blocks[name],
        }
    out["dense_blocks_ms"] = dense
    return out


def resnet50_with_grads(batch: int = 2) -> nn.Module:
    """ResNet-50 (1000 classes) whose weights carry gradients, as right after a backward."""
    model = create_model("resnet50", num_classes=1000).train()
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    nn.CrossEntropyLoss()(model(x), torch.tensor([1, 2][:batch])).backward()
    return model


def with_grads(model: nn.Module) -> nn.Module:
    """A deep copy that keeps the gradients (``copy.deepcopy`` drops ``.grad``)."""
    twin = copy.deepcopy(model)
    for p, q in zip(model.parameters(), twin.parameters()):
        q.grad = None if p.grad is None else p.grad.clone()
    return twin


def update_cost(model: nn.Module, updater: str, scope: str, repeats: int) -> dict[str, Any]:
    """Engine time of a step with a topology update (every step is one: update_every=1)."""
    cfg = SparsityConfig(density=0.1, updater=updater, scope=scope, update_every=1,
                         total_steps=1000)  # fmt: skip
    engine = chase.sparsify(with_grads(model), None, cfg, attach=False)
    t = time_fn(engine.after_step, warmup=1, repeats=repeats)
    return {"what": f"{updater} update, {scope} scope", "ms": t.median_ms, "min_ms": t.min_ms}


def channel_event_cost(model: nn.Module, repeats: int) -> list[dict[str, Any]]:
    """Engine time of a step with a channel event (every step is one until ``end``), next to
    a plain step of the same engine, and the one-time channel-group discovery."""
    channels = ChannelConfig(sparsity=0.5, every=1, end=4 * (repeats + 1), offset=0)
    cfg = SparsityConfig(density=0.1, updater="static", total_steps=1000, channels=channels)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    engine = chase.sparsify(with_grads(model), None, cfg, example_inputs=x, attach=False)
    setup_ms = 1e3 * (time.perf_counter() - t0)
    event = time_fn(engine.after_step, warmup=1, repeats=repeats)
    assert engine.channels is not None and engine.channels.live < engine.channels.total
    plain_cfg = SparsityConfig(density=0.1, updater="static", total_steps=1000)
    plain = chase.sparsify(with_grads(model), None, plain_cfg, attach=False)
    step = time_fn(plain.after_step, warmup=1, repeats=repeats)
    return [
        {"what": "channel event", "ms": event.median_ms, "min_ms": event.min_ms},
        {"what": "plain step, no event", "ms": step.median_ms, "min_ms": step.min_ms},
        {"what": "channel-group discovery (once)", "ms": setup_ms, "min_ms": setup_ms},
    ]


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor inside nested dicts/lists (a state dict)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def memory(model: nn.Module) -> list[dict[str, Any]]:
    """Bytes per maskable weight: the masks, and the whole engine state (RNG state excluded)."""
    rows = []
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    for method in ("static", "set", "rigl", "snfs", "mest", "chase"):
        channels = (
            ChannelConfig(sparsity=0.5, every=NEVER, end=NEVER) if method == "chase" else None
        )
        updater = "mest" if method == "chase" else method
        cfg = SparsityConfig(density=0.1, updater=updater, total_steps=NEVER, channels=channels)
        engine = chase.sparsify(with_grads(model), None, cfg, attach=False,
                                example_inputs=x if channels else None)  # fmt: skip
        engine.after_step()  # not an update step; lets SNFS build its gradient momentum
        state = engine.state_dict()
        state.pop("rng")
        masks = tensor_bytes(state["masks"])
        rows.append({"method": method, "mask_bytes_per_weight": masks / engine.total,
                     "state_bytes_per_weight": tensor_bytes(state) / engine.total})  # fmt: skip
    return rows


def apply_cost(name: str, repeats: int) -> dict[str, Any]:
    """``masks.apply(optimizer)`` against ``optimizer.step()`` on a model whose weights dwarf its
    compute (the per-step mask work the engine adds after every step)."""
    if name.startswith("tv:") or name.startswith("timm:"):
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import vision_support  # test support: makes torchvision importable here

        vision_support.patch_torchvision()
    model = create_model(name, num_classes=10).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    cfg = SparsityConfig(density=0.1, updater="rigl", update_every=NEVER, total_steps=NEVER)
    engine = chase.sparsify(model, opt, cfg, attach=False)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(1))
    step = step_fn(model, opt, x, y)
    step()
    apply = time_fn(lambda: engine.masks.apply(opt), warmup=1, repeats=repeats)
    optimizer = time_fn(opt.step, warmup=1, repeats=repeats)
    whole = time_fn(step, warmup=0, repeats=repeats)
    weights = sum(engine.masks.params[n].numel() for n in engine.layers)
    return {
        "model": name,
        "weights": weights,
        "apply_ms": apply.median_ms,
        "optimizer_step_ms": optimizer.median_ms,
        "training_step_ms": whole.median_ms,
    }


def report(result: dict[str, Any]) -> str:
    """The markdown tables of docs/benchmarks.md."""
    parts = [describe(result["env"]), ""]
    rows = []
    for r in result["steps"]:
        for name in ("rigl", "chase"):
            v = r[name]
            lo, hi = v["overhead_p10_p90_pct"]
            rows.append(
                [
                    r["model"],
                    r["batch"],
                    f"{r['dense_ms']:.0f}",
                    name,
                    f"{v['step_ms']:.0f}",
                    f"{v['overhead_pct']:+.1f}% ({lo:+.0f}% to {hi:+.0f}%)",
                    f"{v['after_step_ms']:.2f}",
                    f"{v['after_step_pct']:.2f}%",
                ]
            )
    headers = ["model", "batch", "dense step ms", "engine", "masked step ms",
               "step overhead (p10 to p90 of paired rounds)",
               "engine after_step ms", "after_step / dense"]  # fmt: skip
    parts.append(markdown(headers, rows))
    parts.append("")
    events = [
        [e["what"], f"{e['ms'] / 1e3:.3f}", f"{e['min_ms'] / 1e3:.3f}"] for e in result["events"]
    ]
    parts.append(markdown(["ResNet-50 engine work", "median s", "min s"], events))
    parts.append("")
    mem = [[m["method"], f"{m['mask_bytes_per_weight']:.3f}", f"{m['state_bytes_per_weight']:.3f}"]
           for m in result["memory"]]  # fmt: skip
    parts.append(markdown(["method", "mask bytes / weight", "engine state bytes / weight"], mem))
    if result.get("apply"):
        a = result["apply"]
        parts.append("")
        parts.append(markdown(
            ["model (32x32, batch 8)", "maskable weights", "masks.apply ms",
             "optimizer.step ms", "masked training step ms"],
            [[a["model"], f"{a['weights'] / 1e6:.0f}M", f"{a['apply_ms']:.0f}",
              f"{a['optimizer_step_ms']:.0f}", f"{a['training_step_ms']:.0f}"]],
        ))  # fmt: skip
    return "\n".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--batch", type=int, default=128, help="training batch size (default 128)")
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds of training steps")
    p.add_argument("--repeats", type=int, default=1, help="timed steps per variant and round")
    p.add_argument("--event-repeats", type=int, default=5, help="timed updates / events")
    p.add_argument("--models", default="cifar_resnet20,vgg19", help="models of the step table")
    p.add_argument("--skip-steps", action="store_true", help="only the ResNet-50 parts")
    p.add_argument("--apply-model", help="also time masks.apply on this model (tv:vgg11_bn)")
    p.add_argument("--apply-only", action="store_true", help="only the --apply-model part")
    p.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"env": environment("cpu"), "steps": []}
    if args.apply_model:
        result["apply"] = apply_cost(args.apply_model, args.event_repeats)
        if args.apply_only:
            print(json.dumps(result["apply"], indent=1))
            return
    if not args.skip_steps:
        for name in args.models.split(","):
            result["steps"].append(training_step(name, args.batch, args.rounds, args.repeats))
    r50 = resnet50_with_grads()
    timer = functools.partial(update_cost, r50, repeats=args.event_repeats)
    result["events"] = [timer(u, s) for u in ("rigl", "mest") for s in ("layer", "global")]
    result["events"] += channel_event_cost(r50, args.event_repeats)
    result["memory"] = memory(r50)
    result["env"]["load_average_end"] = environment("cpu")["load_average"]
    print(json.dumps(result, indent=1) if args.json else report(result))


if __name__ == "__main__":
    main()
