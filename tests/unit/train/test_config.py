"""The run configuration rejects every bad value when it is built, naming field, value and what
is allowed; valid values (and every preset) still pass."""

import math

import pytest

from chase import ChannelConfig
from chase.errors import ConfigError
from chase.sparsity import UPDATERS
from chase.train.config import METHODS, RunConfig, check_device
from chase.train.presets import list_presets, preset
from chase.train.sources import deep_merge, load_yaml, parse_assignment

#: dotted key → bad values; each must fail at construction with the key in the message.
BAD = {
    "model": ["resnet9000", "", 3],
    "model_kwargs": [5, [1], {1: 2}],
    "method": ["magic", None],
    "epochs": [0, -1, float("inf"), float("nan"), "3", True],
    "seed": [-1, 1.5, True, "0", 2**63],
    "device": ["foo", "cuda:01", "cuda:-1", "CPU", "cuda:", "mps", "cpu ", None, 0],
    "amp": ["fp8", True],
    "channels_last": ["maybe", 1, None],
    "eval_every": [0, 1.5, True],
    "log_every": [0, "20"],
    "checkpoint_every": [-5, False],
    "amenable_every": [-1, 2.5, True, "500"],
    "recalibrate_bn_steps": [-3, 2.5, "all", True],
    "sparsity": [5, None],
    "data": [5, None, [1]],
    "data.name": ["imagenett", "", 7],
    "data.dir": [[1], 3, ""],
    "data.batch_size": [0, 1.5, True, "8"],
    "data.eval_batch_size": [0, -1, 2.5],
    "data.subset": [0, 1.5],
    "data.val_split": [-0.1, 1.5, float("nan"), "0.1", True],
    "data.augment": ["maybe", 1, None],
    "data.workers": [-1, 1.5],
    "data.synthetic_like": ["synthetic", "nope", None],
    "data.synthetic_size": [0, 2.5],
    "data.image_size": [0, 32.0],
    "optim": ["sgd"],
    "optim.name": ["adam", None],
    "optim.lr": [0, -0.1, float("inf"), float("nan"), "0.1"],
    "optim.momentum": [-0.1, 1.0, "0.9"],
    "optim.nesterov": ["maybe", 1],
    "optim.weight_decay": [-1e-4, float("inf"), None],
    "optim.decay_norm_and_bias": ["yes please", 0],
    "optim.label_smoothing": [1.0, -0.1],
    "optim.betas": [[0.9], [0.9, 1.0], [-0.1, 0.9], [0.9, 0.99, 0.999], 0.9, ["a", "b"]],
    "schedule": [1],
    "schedule.name": ["step"],
    "schedule.milestones": [0.5, [0.5, 1.0], [0], "0.5"],
    "schedule.gamma": [0, -0.1, 1.5, "abc", None, float("nan")],
    "schedule.warmup_epochs": [-1, float("inf")],
    "bench": ["fast"],
    "bench.batch_sizes": [[], [0], [1.5], 8, [True], "1,64"],
    "bench.warmup": [-1, 1.5],
    "bench.repeats": [-1, None],
}

CASES = [(key, value) for key, values in BAD.items() for value in values]


def with_value(key: str, value: object) -> dict:
    *parents, last = key.split(".")
    cfg = RunConfig().to_dict()
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = value
    return cfg


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_bad_values_are_rejected_at_construction(key, value):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(with_value(key, value))
    text = str(err.value)
    assert key in text, text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("device", "auto"),
        ("device", "cpu"),
        ("device", "cuda"),
        ("device", "cuda:0"),
        ("device", "cuda:12"),
        ("seed", 2**63 - 1),
        ("recalibrate_bn_steps", None),
        ("recalibrate_bn_steps", 0),
        ("recalibrate_bn_steps", 7),
        ("schedule.gamma", 1),
        ("schedule.gamma", 0.5),
        ("optim.betas", [0.0, 0.5]),
        ("optim.momentum", 0),
        ("data.val_split", 0.2),
        ("data.val_split", 100),
        ("data.name", "CIFAR-10"),
        ("data.dir", "/some/folder"),
        ("bench.batch_sizes", [1]),
        ("bench.repeats", 0),
        ("bench.warmup", 0),
        ("channels_last", True),
        ("model", "resnet50"),
    ],
)
def test_good_values_pass(key, value):
    RunConfig.from_dict(with_value(key, value))


def test_recalibrate_zero_keeps_its_meaning():
    """0 means "no recalibration" (report.finish skips the pass), so it stays valid."""
    assert RunConfig(recalibrate_bn_steps=0).recalibrate_bn_steps == 0


def test_nesterov_needs_momentum_for_sgd_only():
    with pytest.raises(ConfigError, match=r"optim\.nesterov.*momentum"):
        RunConfig.from_dict(deep_merge(RunConfig().to_dict(), {
            "optim": {"name": "sgd", "nesterov": True, "momentum": 0}}))  # fmt: skip
    adamw = {"optim": {"name": "adamw", "nesterov": True, "momentum": 0}}  # SGD-only knobs
    RunConfig.from_dict(deep_merge(RunConfig().to_dict(), adamw))


def test_sections_given_as_mappings_are_built_and_checked():
    cfg = RunConfig(data={"batch_size": 8}, bench={"batch_sizes": [2]})  # type: ignore[arg-type]
    assert cfg.data.batch_size == 8 and cfg.bench.batch_sizes == (2,)
    with pytest.raises(ConfigError, match=r"data\.batch_size"):
        RunConfig(data={"batch_size": 0})  # type: ignore[arg-type]


def test_values_the_method_ignores_are_still_checked():
    with pytest.raises(ConfigError, match=r"^sparsity\.density = "):
        RunConfig(method="dense", sparsity={"density": 2})
    with pytest.raises(ConfigError, match=r"^sparsity\.channels\.sparsity = "):
        RunConfig(method="rigl", sparsity={"channels": {"sparsity": 2}})
    with pytest.raises(ConfigError, match=r"sparsity\.updater"):
        RunConfig(method="rigl", sparsity={"updater": "magic"})
    with pytest.raises(ConfigError, match=r"sparsity\.channels"):
        RunConfig(method="chase", sparsity={"channels": 5})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"density": 1.5}, "sparsity.density = 1.5 is not allowed: a number in (0, 1]"),
        ({"densty": 0.1}, "unknown setting 'sparsity.densty' (did you mean 'sparsity.density'?)"),
        (
            {"channels": {"evry": 3}},
            "unknown setting 'sparsity.channels.evry' (did you mean 'sparsity.channels.every'?)",
        ),
        ({"channels": {"every": 0}}, "sparsity.channels.every = 0 is not allowed"),
        ({"updater": "rigel"}, "sparsity.updater = 'rigel' is not allowed: a registered updater"),
        ({"update_every": "3x"}, "sparsity.update_every = '3x' is not allowed"),
    ],
)
@pytest.mark.parametrize("method", ["dense", "rigl", "chase"])
def test_sparsity_errors_name_run_keys_for_every_method(section, message, method):
    """One reading of the section: the engine configs name their keys with the run's prefix."""
    with pytest.raises(ConfigError) as err:
        RunConfig(method=method, sparsity=section)
    assert str(err.value).startswith(message), str(err.value)


def test_method_names_the_updater_and_only_chase_reads_sparsity_updater_and_channels():
    section = {"channels": {"sparsity": 0.3}}
    rigl = RunConfig(method="rigl", sparsity=section).sparsity_config(10, 100)
    assert rigl is not None and (rigl.updater, rigl.channels) == ("rigl", None)
    same = RunConfig(method="rigl", sparsity={"updater": "rigl"}).sparsity_config(10, 100)
    assert same is not None and same.updater == "rigl"
    chase = RunConfig(method="chase", sparsity=section).sparsity_config(10, 100)
    assert chase is not None and chase.updater == "mest" and chase.channels is not None
    assert chase.channels.sparsity == 0.3
    chase_set = RunConfig(method="chase", sparsity={"updater": "set"}).sparsity_config(10, 100)
    assert chase_set is not None and chase_set.updater == "set"
    assert RunConfig(method="dense", sparsity={"updater": "set"}).sparsity_config(10, 100) is None
    with pytest.raises(ConfigError) as err:
        RunConfig(method="rigl", sparsity={"updater": "set"})
    assert str(err.value).startswith(
        "sparsity.updater = 'set' is not allowed: 'rigl' or absent, since method 'rigl' names "
        "the updater"
    )


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_resolves_to_the_engine_its_method_names(name):
    cfg = RunConfig.from_dict(deep_merge(RunConfig().to_dict(), preset(name)))
    engine = cfg.sparsity_config(100, 10_000)
    if cfg.method == "dense":
        assert engine is None
    elif cfg.method == "chase":
        assert engine is not None and engine.channels is not None
        assert engine.updater == cfg.sparsity.get("updater", "mest")
    else:
        assert engine is not None and engine.channels is None and engine.updater == cfg.method


def test_methods_are_dense_every_updater_and_chase():
    assert list(METHODS) == ["dense", *UPDATERS.names(), "chase"]


@pytest.mark.parametrize(
    ("value", "key", "message"),
    [
        ("foo", "device", "device = 'foo' is not allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("foo", "--device", "--device 'foo' is not allowed: 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("cpu\n", "device", "device = 'cpu\\n' is not allowed"),
    ],
)
def test_check_device_message(value, key, message):
    with pytest.raises(ConfigError) as err:
        check_device(value, key)
    assert str(err.value).startswith(message)


def test_distributed_setup_turns_bad_devices_into_config_errors():
    from chase.train.distributed import setup

    with pytest.raises(ConfigError, match="device = 'foo' is not allowed"):
        setup("foo")
    with pytest.raises(ConfigError, match="device"):
        setup(None)  # type: ignore[arg-type]
    _, dev = setup("cpu")
    assert dev.type == "cpu"


def test_distributed_setup_rejects_a_cuda_index_this_machine_lacks(monkeypatch):
    import torch

    from chase.train.distributed import setup

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"device = 'cuda:2' .* 2 CUDA device\(s\)"):
        setup("cuda:2")


SECTIONS = ["data", "optim", "schedule", "bench", "sparsity"]


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("value", ["5", "[1, 2]", "abc"])
def test_set_cannot_replace_a_section_with_a_scalar(section, value):
    cfg = deep_merge(RunConfig().to_dict(), parse_assignment(f"{section}.x=1"))
    with pytest.raises(ConfigError) as err:
        deep_merge(cfg, parse_assignment(f"{section}={value}"))
    assert str(err.value).startswith(f"{section} = ")
    assert "mapping" in str(err.value)


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("value", ["null", ""])
def test_null_section_merges_but_these_sections_cannot_be_empty(section, value):
    cfg = deep_merge(RunConfig().to_dict(), parse_assignment(f"{section}={value}"))
    assert cfg[section] is None
    with pytest.raises(ConfigError, match=f"^{section} = None is not allowed: a mapping"):
        RunConfig.from_dict(cfg)


def test_null_channels_section_gives_chase_its_default_channel_settings():
    cfg = deep_merge(
        RunConfig(method="chase").to_dict(), parse_assignment("sparsity.channels.every=3")
    )
    cfg = deep_merge(cfg, parse_assignment("sparsity.channels=null"))
    engine = RunConfig.from_dict(cfg).sparsity_config(10, 100)
    assert engine is not None and engine.channels is not None
    assert engine.channels == ChannelConfig(shrink=True)  # not every=3; runs shrink by default


def test_set_can_still_merge_into_sections_and_nested_sections():
    cfg = deep_merge(RunConfig().to_dict(), parse_assignment("sparsity.channels.every=2"))
    cfg = deep_merge(cfg, parse_assignment("sparsity.channels={sparsity: 0.3}"))
    cfg = deep_merge(cfg, parse_assignment("data={batch_size: 8}"))
    assert cfg["sparsity"]["channels"] == {"every": 2, "sparsity": 0.3}
    assert cfg["data"]["batch_size"] == 8 and cfg["data"]["name"] == "synthetic"


@pytest.mark.parametrize("text", ["true", "false", "True", "FALSE"])
def test_yaml_booleans_from_set_are_accepted(text):
    cfg = deep_merge(RunConfig().to_dict(), parse_assignment(f"channels_last={text}"))
    cfg = deep_merge(cfg, parse_assignment(f"data.augment={text}"))
    built = RunConfig.from_dict(cfg)
    assert isinstance(built.channels_last, bool) and isinstance(built.data.augment, bool)


@pytest.mark.parametrize("text", ["yes", "no", "on", "off"])
def test_yaml_1_1_booleans_are_refused(text):
    """YAML 1.2: only true/false are booleans, so ``yes`` is a string a boolean refuses."""
    cfg = deep_merge(RunConfig().to_dict(), parse_assignment(f"data.augment={text}"))
    with pytest.raises(ConfigError, match=f"data.augment = '{text}' is not allowed: true or"):
        RunConfig.from_dict(cfg)


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_still_validates(name):
    cfg = RunConfig.from_dict(deep_merge(RunConfig().to_dict(), preset(name)))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg  # and survives its own round trip


@pytest.mark.parametrize(("text", "value"), [("5e-4", 5e-4), ("1E+3", 1000.0), (".5e1", 5.0)])
def test_exponent_numbers_are_numbers_in_set_and_yaml_files(tmp_path, text, value):
    assert parse_assignment(f"optim.weight_decay={text}") == {"optim": {"weight_decay": value}}
    path = tmp_path / "run.yaml"
    path.write_text(f"optim:\n  weight_decay: {text}\n")
    assert load_yaml(str(path)) == {"optim": {"weight_decay": value}}
    cfg = RunConfig.from_dict(deep_merge(RunConfig().to_dict(), load_yaml(str(path))))
    assert cfg.optim.weight_decay == value


def test_strings_that_only_look_like_exponents_stay_strings():
    assert parse_assignment("a=1e") == {"a": "1e"}
    assert parse_assignment('a="5e-4"') == {"a": "5e-4"}


def test_runs_shrink_by_default_unless_told_not_to():
    def channels(*sets):
        cfg = RunConfig(method="chase").to_dict()
        for text in sets:
            cfg = deep_merge(cfg, parse_assignment(text))
        engine = RunConfig.from_dict(cfg).sparsity_config(10, 100)
        assert engine is not None and engine.channels is not None
        return engine.channels

    assert channels().shrink is True
    assert channels("sparsity.channels.shrink=false").shrink is False
    assert ChannelConfig().shrink is False  # the library default: shapes stay put


@pytest.mark.parametrize(
    ("value", "steps"), [("80%", 800), ("81.25%", 812), ("100%", 1000), (" 0.5 % ", 5), ("3ep", 30)]
)
def test_step_fields_take_a_percentage_of_the_run(value, steps):
    cfg = RunConfig(method="mest", sparsity={"mest_end": value, "dst_end": value})
    engine = cfg.sparsity_config(10, 1000)
    assert engine is not None and engine.mest_end == engine.dst_end == steps


@pytest.mark.parametrize("value", ["101%", "-5%", "%", "80 percent", "0.8"])
def test_bad_percentages_are_refused(value):
    with pytest.raises(ConfigError) as err:
        RunConfig(method="chase", sparsity={"channels": {"end": value}})
    assert str(err.value).startswith(f"sparsity.channels.end = {value!r} is not allowed")
    assert "'80%' (of the run's steps, at most 100%)" in str(err.value)


#: training examples of each preset dataset (no preset holds out a validation split)
TRAIN_SIZE = {"cifar10": 50_000, "cifar100": 50_000, "imagenet": 1_281_167, "fashion-mnist": 60_000}


@pytest.mark.parametrize("name", [n for n in list_presets() if not n.startswith("_")])
@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_every_preset_fits_its_run_at_half_or_more_of_its_epochs(name, scale):
    """A preset with --epochs halved (or lengthened) still reaches its budget and its channel
    target before the end, at its dataset's real steps per epoch (the paper's relative
    milestones are percentages; event periods stay in steps or epochs)."""
    from chase.sparsity.schedules import inaction
    from chase.sparsity.updaters import create_updater

    cfg = RunConfig.from_dict(deep_merge(RunConfig().to_dict(), preset(name)))
    steps_per_epoch = -(-TRAIN_SIZE[cfg.data.canonical] // cfg.data.batch_size)
    total = math.ceil(cfg.epochs * scale * steps_per_epoch)
    engine = cfg.sparsity_config(steps_per_epoch, total)
    if engine is not None:
        assert inaction(engine, create_updater(engine)) == []


def test_a_percentage_that_rounds_to_no_steps_is_refused():
    with pytest.raises(ConfigError) as err:
        RunConfig(method="rigl", sparsity={"update_every": "0.4%"}).sparsity_config(10, 100)
    assert str(err.value) == (
        "sparsity.update_every = '0.4%' is not allowed here: it is 0 steps of this 100-step "
        "run; give a larger percentage or a number of steps"
    )
    engine = RunConfig(method="chase", sparsity={"channels": {"offset": "0%"}}).sparsity_config(
        10, 100
    )
    assert engine is not None and engine.channel_offset == 0  # 0% means 0
