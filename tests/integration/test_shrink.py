"""Shrink while training (``ChannelConfig.shrink``): the narrowed model trains exactly like the
masked one, the engine keeps its invariants, and a run resumes across a shrink bit for bit."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import chase
import nets
from chase import ChannelConfig, SparsityConfig
from chase.errors import ConfigError
from chase.models import create_model, default_input_size, list_models
from chase.sparsity import MaskSet
from chase.structure import shrink_in_place, slice_tensor_dict
from chase.train.checkpoint import load_checkpoint
from runs import TINY

# ---------------------------------------------------------------- one step, masked vs shrunk


def _architectures() -> dict[str, tuple]:
    """name → (build, example input): every test architecture and every zoo model.

    The zoo models get a batch of 4: at side 32 an ImageNet-style model's last stages are 1×1,
    where BatchNorm over a batch of 2 maps any two values to ±1, so the true gradient through it
    is ~0 and the computed one is amplified rounding noise (~1e23 in float64), which no two
    summation orders agree on."""
    out: dict[str, tuple] = {n: (c.build, c.inputs()) for n, c in nets.CASES.items()}
    gen = torch.Generator().manual_seed(0)
    out["vgg_style"] = (nets.vgg_style, torch.randn(2, 3, 16, 16, generator=gen))
    out["resnet_style"] = (nets.ResNetStyle, torch.randn(2, 3, 16, 16, generator=gen))
    for name in list_models():
        c, h, _ = default_input_size(name)
        side = min(h, 32)
        build = lambda name=name, c=c: create_model(name, num_classes=10, in_channels=c)  # noqa: E731
        out.setdefault(f"zoo:{name}", (build, torch.randn(4, c, side, side, generator=gen)))
    return out


ARCHS = _architectures()
#: the costly ones (full-width zoo models) run in the slow tier
HEAVY = {
    "vgg19",
    "resnet56",
    "resnet50_cifar",
    "resnet50_imagenet",
    "resnet18_cifar",
    "resnet18_imagenet",
}
ARCH_PARAMS = [
    pytest.param(n, marks=pytest.mark.slow) if n in HEAVY or n.startswith("zoo:") else n
    for n in sorted(ARCHS)
]


def _no_dropout(model: nn.Module) -> nn.Module:
    """Dropout draws a mask of the activation's shape, which a shrink changes; the comparison
    is about the weights' arithmetic, so dropout is switched off."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


def _optimizer(model: nn.Module, kind: str) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    # eps 1e-6, not 1e-8: a weight behind a dead ReLU has a true gradient of 0 and a computed
    # one of rounding noise (~1e-14) that differs between the two models; Adam divides it by
    # sqrt(v) + eps, and at 1e-8 that moves the weight by ~1e-9, the bar of the comparison
    return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, eps=1e-6)


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x, y) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@pytest.mark.parametrize("prune_skip", [False, True], ids=["plain", "prune_skip"])
@pytest.mark.parametrize("name", ARCH_PARAMS)
def test_one_step_on_the_shrunk_copy_equals_the_masked_step(name: str, prune_skip: bool) -> None:
    """In float64, so that the comparison sees the arithmetic and not float32's rounding: a
    shrunk conv sums over fewer (zero) input channels in another order, which moves float32
    results by ~1e-7 relative, and Adam turns that into ~1e-6 on weights whose gradient is
    near zero. In float64 every case agrees to ~1e-12 (the bar is 1e-9)."""
    build, x = ARCHS[name]
    x = x.double()
    for kind in ("sgd", "adamw"):
        torch.manual_seed(0)
        model = _no_dropout(build()).double()
        optimizer = _optimizer(model, kind)
        channels = ChannelConfig(sparsity=0.5, every=2, end=3, offset=1, prune_skip=prune_skip)
        config = SparsityConfig(density=0.3, updater="rigl", scope="global", update_every=2,
                                total_steps=10, channels=channels)  # fmt: skip
        engine = chase.sparsify(model, optimizer, config, example_inputs=x, attach=False)
        classes = model(x).shape[1]
        y = torch.arange(x.shape[0]) % classes
        for i in range(4):  # channel events after steps 1 and 3, optimizer state everywhere
            _train_step(model, optimizer, x + 0.1 * i, y)
            engine.after_step()
        spec = chase.slim_spec(engine)
        if spec.removed() == 0:
            pytest.skip(f"{name}: no prunable channel")  # e.g. the permute cases
        # the copy: same weights, same optimizer state, then shrunk
        small = copy.deepcopy(model)
        small_opt = _optimizer(small, kind)
        small_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # no shared buffers
        shrink_in_place(small, spec, small_opt)
        small_masks = MaskSet(dict(small.named_parameters()), chase.slim_masks(engine))
        # one identical step on each (dropout off; BN in train mode)
        xb = x + 0.5
        loss = _train_step(model, optimizer, xb, y)
        engine.masks.apply(optimizer)
        small_loss = _train_step(small, small_opt, xb, y)
        small_masks.apply(small_opt)
        assert small_loss == pytest.approx(loss, rel=1e-9, abs=1e-12), kind
        kept = slice_tensor_dict(dict(model.named_parameters()), spec)
        params = dict(small.named_parameters())
        for pname, want in kept.items():
            got = params[pname].detach()
            assert got.shape == want.shape, pname
            scale = float(want.detach().abs().max().clamp_min(1.0))
            assert float((got - want.detach()).abs().max()) <= 1e-9 * scale, (kind, pname)
            for key, value in _shaped_state(optimizer, dict(model.named_parameters())[pname]):
                want_state = _cut(value, spec.keep.get(pname, {}))
                mine = small_opt.state[params[pname]][key]
                scale = float(want_state.abs().max().clamp_min(1e-3))
                assert float((mine - want_state).abs().max()) <= 1e-9 * scale, (kind, pname, key)


def _shaped_state(optimizer: torch.optim.Optimizer, param: nn.Parameter) -> list:
    """(key, tensor) of every per-parameter optimizer-state tensor shaped like ``param``."""
    state = optimizer.state[param]
    return [(k, v) for k, v in state.items() if torch.is_tensor(v) and v.shape == param.shape]


def _cut(t: torch.Tensor, axes: dict) -> torch.Tensor:
    for axis, idx in sorted(axes.items()):
        t = t.index_select(axis, idx)
    return t


# ---------------------------------------------------------------- the engine while shrinking

STEPS = 24


def _run(shrink: bool, updater: str = "mest", model_fn=nets.vgg_style, after=None):
    torch.manual_seed(0)
    model = model_fn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    channels = ChannelConfig(sparsity=0.5, every=4, end=16, offset=2, shrink=shrink)
    config = SparsityConfig(density=0.2, updater=updater, scope="global", update_every=4,
                            total_steps=STEPS, channels=channels)  # fmt: skip
    engine = chase.sparsify(model, optimizer, config, example_inputs=torch.randn(2, 3, 16, 16))
    losses = []
    for i in range(STEPS):
        x, y = nets.batch(model, i)
        losses.append(_train_step(model, optimizer, x, y))
        if after is not None:
            after(i + 1, model, optimizer, engine)
    return model, optimizer, engine, losses


@pytest.mark.parametrize("updater", ["mest", "rigl", "snfs"])
def test_a_shrinking_run_makes_the_same_decisions_as_a_masked_one(updater: str) -> None:
    masked_model, _, masked, masked_losses = _run(False, updater)
    model, _, engine, losses = _run(True, updater)
    assert len(engine.shrinks) >= 3 and engine.layout is not None
    assert masked.layout is None and masked.shrinks == []
    assert engine.channels.events == masked.channels.events  # type: ignore[union-attr]
    assert torch.equal(engine.channels.alive, masked.channels.alive)  # type: ignore[union-attr]
    assert engine.trajectory == masked.trajectory  # the same active counts after every change
    assert losses == pytest.approx(masked_losses, rel=1e-5)
    for name, mask in chase.slim_masks(masked).items():
        assert torch.equal(engine.masks[name], mask), name
    # the shrunk model is its own slim model, and it equals the masked model's slim copy
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        got, want = model(x), chase.slim(masked_model.eval(), masked)(x)
    assert float((got - want).abs().max()) <= 1e-5
    assert chase.slim(model, engine).state_dict().keys() == model.state_dict().keys()


def test_invariants_hold_and_the_optimizer_trains_the_model_after_every_shrink() -> None:
    seen = []

    def after(step, model, optimizer, engine):
        engine.check()  # zeros, exact budget (MEST: its bound), floors, masks of weight shape
        counts = sum(engine.masks.counts())
        if step % 4 == 0:  # right after a weight update the count is exact
            assert counts == engine.updater.ceiling(step, engine.budget, engine.total)
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        params = {id(p) for p in model.parameters()}
        assert held == params, step  # no layer silently stopped training
        for name, mask in engine.masks.items():
            weight = engine.masks.params[name]
            assert weight is dict(model.named_parameters())[name]
            assert bool((weight.detach()[~mask] == 0).all()), name
            state = optimizer.state[weight]["momentum_buffer"]
            assert state.shape == weight.shape and bool((state[~mask] == 0).all()), name
        seen.append(tuple(p.shape for p in model.parameters()))

    _, _, engine, _ = _run(True, after=after)
    assert len(set(seen)) == len(engine.shrinks) + 1  # the shapes changed at every shrink
    assert engine.budget == round(0.2 * engine.total)  # the budget stays the original model's


def test_shrink_events_reach_callbacks_and_change_nothing_else() -> None:
    events = []
    torch.manual_seed(0)
    model = nets.ResNetStyle()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    channels = ChannelConfig(sparsity=0.5, every=2, end=4, offset=1, shrink=True, prune_skip=True)
    config = SparsityConfig(density=0.3, updater="rigl", update_every=2, total_steps=8,
                            channels=channels)  # fmt: skip
    engine = chase.sparsify(model, optimizer, config, example_inputs=torch.randn(2, 3, 16, 16),
                            on_shrink=events.append)  # fmt: skip
    nets.train_steps(model, optimizer, 6)
    assert [e.step for e in events] == engine.shrinks and events
    assert events[-1].shapes == {n: tuple(engine.masks.params[n].shape) for n in engine.layers}
    assert all(e.removed > 0 for e in events)
    engine.check()


def test_a_wrapped_model_needs_a_way_to_rebuild_its_wrapper() -> None:
    model = nets.vgg_style()
    wrapped = torch.compile(model)  # never called: nothing is compiled
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    config = SparsityConfig(total_steps=4, channels=ChannelConfig(shrink=True))
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ConfigError, match="on_shrink"):
        chase.sparsify(wrapped, optimizer, config, example_inputs=x, attach=False)
    engine = chase.sparsify(wrapped, optimizer, config, example_inputs=x, attach=False,
                            on_shrink=lambda event: None)  # fmt: skip
    assert engine.model is model


def test_shrinking_without_the_optimizer_is_refused_before_anything_is_cut() -> None:
    model = nets.vgg_style()
    shapes = [tuple(p.shape) for p in model.parameters()]
    channels = ChannelConfig(sparsity=0.5, every=1, end=1, offset=0, shrink=True)
    config = SparsityConfig(updater="static", total_steps=2, channels=channels)
    engine = chase.sparsify(model, None, config, example_inputs=torch.randn(2, 3, 16, 16),
                            attach=False)  # fmt: skip
    with pytest.raises(ConfigError, match="no optimizer"):
        engine.after_step()
    assert [tuple(p.shape) for p in model.parameters()] == shapes


def test_channels_last_weights_stay_channels_last() -> None:
    torch.manual_seed(0)
    model = nets.vgg_style().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    channels = ChannelConfig(sparsity=0.5, every=2, end=2, offset=1, shrink=True)
    config = SparsityConfig(density=0.3, updater="rigl", update_every=2, total_steps=4,
                            channels=channels)  # fmt: skip
    engine = chase.sparsify(model, optimizer, config, example_inputs=torch.randn(2, 3, 16, 16))
    nets.train_steps(model, optimizer, 3)
    assert engine.shrinks
    for name in engine.layers:
        w = engine.masks.params[name]
        if w.dim() == 4 and w.shape[1] > 1 and w.shape[2] * w.shape[3] > 1:
            assert w.is_contiguous(memory_format=torch.channels_last), name
            buf = optimizer.state[w]["momentum_buffer"]
            assert buf.is_contiguous(memory_format=torch.channels_last), name


def test_dense_hardware_training_flops_follow_the_shrinking_model() -> None:
    from chase.metrics import engine_flops

    x = torch.randn(1, 3, 16, 16)
    out = {}
    for shrink in (False, True):
        model, _, engine, _ = _run(shrink)
        slim = chase.slim(model.eval(), engine)
        out[shrink] = engine_flops(model, engine, slim, x, STEPS)
    (masked, masked_train), (shrunk, shrunk_train) = out[False], out[True]
    assert masked_train is not None and shrunk_train is not None
    m, s = masked_train.flops_dict(), shrunk_train.flops_dict()
    assert m["train_gpu_supported"] == m["train_dense"]  # the masked model stays full size
    assert s["train_gpu_supported"] < s["train_dense"]
    assert s["train"] == m["train"]  # the same masks: the same sparse training FLOPs
    # the same inference numbers whether the model shrank or not (the original model's)
    assert shrunk.flops_dict() == pytest.approx(masked.flops_dict())
    assert shrunk.params_dense == masked.params_dense
    assert shrunk.params_nonzero == masked.params_nonzero


# ---------------------------------------------------------------- the trainer

# 2 epochs of 4 steps; channel events (and shrinks) after steps 1, 3, 5
CHASE = [
    *TINY, "--epochs", "2", "--method", "chase", "--set", "sparsity.update_every=2",
    "--set", "sparsity.channels.every=2", "--set", "sparsity.channels.offset=1",
    "--set", "sparsity.channels.end=6", "--set", "sparsity.channels.sparsity=0.5",
    "--set", "optim.name=adamw", "--set", "optim.lr=0.001",
]  # fmt: skip


def _state(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")


def test_a_run_resumed_right_after_a_shrink_is_bit_identical(cli, tmp_path) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli("train", *CHASE, "--out", full)[0] == 0
    code, _, err = cli("train", *CHASE, "--out", part, "--stop-after-steps", 3)
    assert code == 0, err
    stopped = _state(part)
    assert stopped["engine"]["layout"] is not None  # the checkpoint holds a shrunk model
    assert stopped["engine"]["shrinks"] == [1, 3]
    assert cli("train", "--resume", part, "--quiet")[0] == 0
    a, b = _state(full), _state(part)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for name, mask in a["engine"]["masks"].items():
        assert torch.equal(mask, b["engine"]["masks"][name]), name
    for i, sa in a["optimizer"]["state"].items():
        for key, value in sa.items():
            assert torch.equal(value, b["optimizer"]["state"][i][key]), (i, key)
    report = json.loads((full / "report.json").read_text())
    assert (
        report["shrink"]["steps"] == a["engine"]["shrinks"] and report["shrink"]["first_step"] == 1
    )
    resumed = json.loads((part / "report.json").read_text())
    for key in ("test_accuracy", "params_slim", "channel_sparsity", "flops"):
        assert resumed[key] == report[key], key
    assert report["flops"]["train_gpu_supported_ratio"] < 1
    assert report["equivalence_max_abs_diff"] < 1e-5


def test_shrink_false_keeps_the_model_at_its_original_shape(cli, tmp_path) -> None:
    out = tmp_path / "run"
    assert cli("train", *CHASE, "--set", "sparsity.channels.shrink=false", "--out", out)[0] == 0
    state = _state(out)
    assert state["engine"]["layout"] is None and state["engine"]["shrinks"] == []
    report = json.loads((out / "report.json").read_text())
    assert report["shrink"]["events"] == 0 and report["shrink"]["steps"] == []
    assert report["flops"]["train_gpu_supported"] == report["flops"]["train_dense"]
    assert report["channel_sparsity"] > 0.3
