"""The registries are the only lists of names: an entry registered inside a test (and removed
after it) is accepted by ``SparsityConfig``, by the run configuration and the ``chase`` CLI, and
passes the contract checks of ``tests/contracts.py``, without editing any other file."""

from __future__ import annotations

import json

import pytest
import torch

import contracts
from chase import ChannelConfig, SparsityConfig
from chase.checks import check
from chase.cli.main import main
from chase.errors import ConfigError
from chase.registry import Registry
from chase.sparsity import ALLOCATIONS, DROP_SCHEDULES, SCORES, UPDATERS, TopologyUpdater
from chase.sparsity.schedules import DropSchedule
from chase.sparsity.scores import ChannelStats
from chase.train.config import METHODS, RunConfig
from runs import TINY

#: a short synthetic run with updates (and channel events) every 2 steps, no speed bench
QUICK = [*TINY, "--epochs", "1", "--set", "sparsity.update_every=2", "--set", "bench.repeats=0"]


def train(tmp_path, *args: str) -> dict:
    """``chase train`` in-process; returns its report.json."""
    out = tmp_path / "run"
    assert main(["train", *QUICK, *args, "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


# -- the registry type -----------------------------------------------------------------------


def test_register_look_up_replace_and_remove():
    reg: Registry[int] = Registry("widget")
    assert reg.register("alpha")(1) == 1
    reg.register("beta")(2)
    assert reg.names() == list(reg) == ["alpha", "beta"] and len(reg) == 2
    assert "alpha" in reg and "gamma" not in reg and 3 not in reg
    assert reg["beta"] == reg.get("beta") == 2
    with pytest.raises(ConfigError, match="'alpha' is already registered; pass replace=True"):
        reg.register("alpha")(3)
    reg.register("alpha", replace=True)(3)
    assert reg["alpha"] == 3
    with reg.registered("gamma", 4):
        assert reg["gamma"] == 4
    with pytest.raises(RuntimeError), reg.registered("alpha", 5, replace=True):
        assert reg["alpha"] == 5
        raise RuntimeError  # the entry is restored on every exit
    assert reg["alpha"] == 3 and "gamma" not in reg
    assert reg.unregister("beta") == 2 and reg.names() == ["alpha"]
    with pytest.raises(ConfigError, match="widget name"):
        reg.register(" alpha")


def test_decorator_form_and_unknown_names():
    reg: Registry[object] = Registry("gadget")

    @reg.register("spin")
    def spin() -> int:
        return 1

    reg.register("spine")(object())
    assert reg["spin"] is spin
    expected = (
        r"^gadget = 'spni' is not allowed: a registered gadget: 'spin' or 'spine' "
        r"\(did you mean 'spin'\?\)$"
    )
    with pytest.raises(ConfigError, match=expected):
        reg["spni"]
    with pytest.raises(ConfigError, match=r"^sparsity\.gadget = None is not allowed"):
        reg.get(None, "sparsity.gadget")


# -- updaters --------------------------------------------------------------------------------


class Lowest(TopologyUpdater):
    """Magnitude drop, growth at the first free positions: a deterministic toy updater."""

    name = "lowest"

    def grow_score(self, layer, out, generator):
        out.zero_()  # ties go to the lowest index


class GlobalOnly(Lowest):
    """A toy updater with a rule of its own."""

    name = "global_only"

    @classmethod
    def check_config(cls, config, prefix):
        super().check_config(config, prefix)
        check(config.scope == "global", f"{prefix}scope", config.scope, "'global' here")


def test_a_registered_updater_is_accepted_run_by_the_cli_and_passes_the_contracts(tmp_path):
    assert "lowest" not in UPDATERS
    with UPDATERS.registered("lowest", Lowest):
        assert SparsityConfig(updater="lowest", total_steps=10).updater == "lowest"
        assert "lowest" in METHODS
        engine = RunConfig(method="lowest").sparsity_config(10, 100)
        assert engine is not None and engine.updater == "lowest" and engine.channels is None
        chase_cfg = RunConfig(method="chase", sparsity={"updater": "lowest"})
        assert chase_cfg.sparsity_config(10, 100).updater == "lowest"  # type: ignore[union-attr]
        report = train(tmp_path, "--method", "lowest")
        assert report["method"] == "lowest" and report["steps"] == 4
        contracts.check_updater("lowest")
    assert "lowest" not in UPDATERS and "lowest" not in METHODS
    with pytest.raises(ConfigError, match=r"^SparsityConfig\.updater = 'lowest' is not allowed"):
        SparsityConfig(updater="lowest", total_steps=10)
    with pytest.raises(ConfigError, match=r"^method = 'lowest' is not allowed"):
        RunConfig(method="lowest")


def test_a_registered_updater_checks_its_own_settings():
    with UPDATERS.registered("global_only", GlobalOnly):
        SparsityConfig(updater="global_only", scope="global", total_steps=10)
        with pytest.raises(ConfigError, match=r"^SparsityConfig\.scope = 'layer' .*'global'"):
            SparsityConfig(updater="global_only", total_steps=10)
        with pytest.raises(ConfigError, match=r"^sparsity\.scope = 'layer' .*'global'"):
            RunConfig(method="global_only")
        with pytest.raises(ConfigError, match=r"^sparsity\.total_steps = None .*'global_only'"):
            SparsityConfig.from_dict({"updater": "global_only", "scope": "global"}, "sparsity.")


# -- channel scores --------------------------------------------------------------------------


def fewest_active(stats: ChannelStats, generator: torch.Generator) -> torch.Tensor:
    """Remove the channels with the fewest active weights first."""
    return stats.active


def test_a_registered_channel_score_is_accepted_run_by_the_cli_and_passes_the_contracts(
    tmp_path,
):
    with SCORES.registered("fewest_active", fewest_active):
        assert ChannelConfig(score="fewest_active").score == "fewest_active"
        cfg = SparsityConfig(channels={"score": "fewest_active"}, total_steps=10)
        assert cfg.channels is not None and cfg.channels.score == "fewest_active"
        report = train(
            tmp_path, "--method", "chase", "--set", "sparsity.channels.every=2",
            "--set", "sparsity.channels.sparsity=0.5",
            "--set", "sparsity.channels.score=fewest_active",
        )  # fmt: skip
        assert report["channel_sparsity"] > 0
        contracts.check_score("fewest_active")
    with pytest.raises(ConfigError, match=r"^SparsityConfig\.channels\.score = 'fewest_active'"):
        SparsityConfig(channels={"score": "fewest_active"}, total_steps=10)


# -- allocations -----------------------------------------------------------------------------


def narrow_first(shape) -> float:
    """Denser where a layer has few outputs."""
    return 1.0 / shape[0]


def test_a_registered_allocation_is_accepted_run_by_the_cli_and_passes_the_contracts(
    tmp_path, capsys
):
    with ALLOCATIONS.registered("narrow_first", narrow_first):
        assert (
            SparsityConfig(allocation="narrow_first", total_steps=10).allocation == "narrow_first"
        )
        args = ["flops", "--model", "cifar_resnet20", "--allocation", "narrow_first", "--json"]
        assert main(args) == 0
        assert json.loads(capsys.readouterr().out)
        report = train(tmp_path, "--method", "static", "--set", "sparsity.allocation=narrow_first")
        assert report["density"] == pytest.approx(0.1, abs=0.002)
        contracts.check_allocation("narrow_first")
    with pytest.raises(SystemExit):  # argparse reads the registry's names when it parses
        main(["flops", "--model", "cifar_resnet20", "--allocation", "narrow_first"])


# -- drop schedules --------------------------------------------------------------------------


def halfway(start: float, end: float, frac: float) -> float:
    """``start`` for the first half of the horizon, then ``end``."""
    return start if frac < 0.5 else end


def test_a_registered_drop_schedule_is_accepted_run_by_the_cli_and_passes_the_contracts(
    tmp_path,
):
    with DROP_SCHEDULES.registered("halfway", DropSchedule(halfway)):
        SparsityConfig(drop_schedule="halfway", total_steps=10)
        report = train(tmp_path, "--method", "rigl", "--set", "sparsity.drop_schedule=halfway")
        assert report["method"] == "rigl"
        contracts.check_schedule("halfway")
    with pytest.raises(ConfigError, match=r"^SparsityConfig\.drop_schedule = 'halfway'"):
        SparsityConfig(drop_schedule="halfway", total_steps=10)
