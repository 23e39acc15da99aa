"""Chase end to end on every test architecture: train to S_c, slim, prove equivalence, export."""

import pytest
import torch

import chase
import emulate
import nets
from chase import ChannelConfig, SparsityConfig
from chase.structure import load_torchscript

ARCHS = [
    "vgg19",
    "resnet20",
    "resnet56",
    "resnet18_cifar",
    "resnet18_imagenet",
    "resnet50_cifar",
    "resnet50_imagenet",
    "mobilenetv2",
    "concat",
    "flatten_head",
]
RESNETS = [
    "resnet20",
    "resnet56",
    "resnet18_cifar",
    "resnet18_imagenet",
    "resnet50_cifar",
    "resnet50_imagenet",
]
STEPS = 14


def run_chase(name, prune_skip=False, scope="global", updater="mest", sc=0.5, seed=0):
    case = nets.CASES[name]
    torch.manual_seed(seed)
    model = case.build()
    x = case.inputs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    cfg = SparsityConfig(
        density=0.2,
        updater=updater,
        scope=scope,
        update_every=4,
        total_steps=STEPS,
        seed=seed,
        channels=ChannelConfig(
            sparsity=sc, every=4, end=10, offset=2, min_keep_ratio=0.5, prune_skip=prune_skip
        ),
    )
    engine = chase.sparsify(model, optimizer, cfg, example_inputs=x)
    g = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        optimizer.zero_grad()
        model(torch.randn(x.shape, generator=g)).square().mean().backward()
        optimizer.step()
    engine.check()
    emulate.warm_bn(model, x.shape)  # non-trivial running statistics for the comparison
    model.eval()
    return model, engine, x


def max_rel_diff(a, b):
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("name", ARCHS)
def test_chase_reaches_target_and_slim_model_is_equivalent(name, tmp_path):
    model, engine, x = run_chase(name)
    summary = engine.summary()["channels"]
    assert summary["live"] == engine.channels.target(STEPS) or _floors_bind(engine)
    assert summary["sparsity"] > 0.3

    slim = chase.slim(model, engine).eval()
    with torch.no_grad():
        expected, got = model(x), slim(x)
    assert max_rel_diff(expected, got) <= 1e-4

    keep = engine.channels.keep()
    assert emulate.n_params(slim) == emulate.predicted_params(model, engine.groups, keep)
    assert emulate.n_params(slim) < emulate.n_params(model)

    masks = chase.slim_masks(engine)
    assert sum(int(m.sum()) for m in masks.values()) == sum(engine.masks.counts())
    slim_params = dict(slim.named_parameters())
    for fqn, mask in masks.items():
        assert mask.shape == slim_params[fqn].shape
        assert bool((slim_params[fqn][~mask] == 0).all())
    nonzero = sum(int((engine.masks.params[n] != 0).sum()) for n in engine.layers)
    assert sum(int((slim_params[n] != 0).sum()) for n in masks) == nonzero

    path = chase.save_slim(tmp_path / "slim.pt", model, engine)
    loaded = chase.load_slim(path, model=nets.CASES[name].build())
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), got)
    assert all(torch.equal(loaded.masks[n], masks[n]) for n in masks)


def _floors_bind(engine):
    ch = engine.channels
    live_g = torch.bincount(ch.gid[ch.alive], minlength=len(ch.groups))
    return bool((live_g == ch.floors).all())


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2", "concat", "flatten_head", "vgg19"])
def test_onnx_export_of_the_slim_model_matches_onnxruntime(name, tmp_path):
    model, engine, x = run_chase(name)
    slim = chase.slim(model, engine).eval()
    path = tmp_path / "slim.onnx"
    chase.export_onnx(slim, x, path)
    assert chase.check_onnx(path, slim, x, atol=1e-4) <= 1e-4
    ts = tmp_path / "slim.pt"
    chase.export_torchscript(slim, x, ts)
    with torch.no_grad():
        assert max_rel_diff(slim(x), load_torchscript(ts)(x)) <= 1e-5


@pytest.mark.parametrize("name", RESNETS)
def test_prune_skip_removes_one_index_from_every_stream_member(name):
    model, engine, x = run_chase(name, prune_skip=True)
    keep = engine.channels.keep()
    streams = [g for g in engine.channels.groups if g.residual]
    assert streams
    removed_any = False
    spec = chase.slim_spec(engine)
    for g in streams:
        gone = ~keep[g.name]
        if not gone.any():
            continue
        removed_any = True
        for m in g.members:  # the same channel indices disappear from every member's axis
            kept = set(spec.keep[m.tensor][m.axis].tolist())
            assert not kept & set(m.index[gone].reshape(-1).tolist()), m.tensor
            assert set(m.index[~gone].reshape(-1).tolist()) <= kept, m.tensor
    assert removed_any
    slim = chase.slim(model, engine).eval()
    with torch.no_grad():
        assert max_rel_diff(model(x), slim(x)) <= 1e-4


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_budget_restored_after_event_and_update_inside_live_channels(scope):
    case = nets.CASES["resnet20"]
    torch.manual_seed(0)
    model = case.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    cfg = SparsityConfig(
        density=0.2,
        updater="rigl",
        scope=scope,
        update_every=4,
        total_steps=40,
        channels=ChannelConfig(sparsity=0.5, every=4, end=12),
    )
    engine = chase.sparsify(model, optimizer, cfg, example_inputs=case.inputs())
    seen = []
    for step in range(1, 17):
        optimizer.zero_grad()
        model(case.inputs(step)).square().mean().backward()
        optimizer.step()
        engine.check()
        active = sum(engine.masks.counts())
        if step % 4 == 2 and engine.channels.events and engine.channels.events[-1]["removed"]:
            assert active < engine.budget  # removal costs weights until the next update
            seen.append(step)
        if step % 4 == 0:
            assert active == engine.budget
            for n in engine.layers:
                region = engine.masks.region(n)
                if region is not None:
                    assert not bool((engine.masks[n] & ~region).any())
            if scope == "layer":
                assert engine.masks.counts() == [engine.targets[n] for n in engine.layers]
    assert seen


def test_unsupported_operation_leaves_channels_unprunable_and_run_continues(caplog):
    caplog.set_level("WARNING")
    model, engine, x = run_chase("permute_roll")
    skipped = engine.channels.skipped
    assert any("conv1" in name for name in skipped)
    assert any("roll" in reason.lower() for reason in skipped.values())
    assert "conv1" in caplog.text
    keep = engine.channels.keep()
    assert all(bool(keep[n].all()) for n in skipped)
    slim = chase.slim(model, engine).eval()
    with torch.no_grad():
        assert max_rel_diff(model(x), slim(x)) <= 1e-4
