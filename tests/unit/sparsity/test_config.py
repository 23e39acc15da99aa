import pytest

from chase import ChannelConfig, SparsityConfig
from chase.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("density", 1.5),
        ("density", 0.0),
        ("density", float("nan")),
        ("allocation", "erdos"),
        ("erk_power", -1.0),
        ("updater", "magic"),
        ("scope", "model"),
        ("update_every", 0),
        ("update_every", 2.5),
        ("drop_fraction", 1.2),
        ("drop_schedule", "step"),
        ("dst_end", -3),
        ("mest_overshoot", -0.1),
        ("seed", -1),
        ("keep_dense", [3]),
        ("total_steps", 0),
    ],
)
def test_invalid_sparsity_values_name_field_value_and_allowed(field, value):
    kwargs = {"total_steps": 100, field: value}
    with pytest.raises(ValueError) as err:
        SparsityConfig(**kwargs)
    text = str(err.value)
    assert f"SparsityConfig.{field}" in text
    assert repr(value) in text or str(value) in text
    assert "allowed" in text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sparsity", 1.0),
        ("sparsity", -0.1),
        ("every", 0),
        ("min_keep_ratio", 0.0),
        ("min_keep_ratio", 1.5),
        ("score", "l1"),
        ("round_to", 0),
        ("prune_skip", "yes"),
    ],
)
def test_invalid_channel_values(field, value):
    with pytest.raises(ConfigError, match=f"ChannelConfig.{field}"):
        ChannelConfig(**{field: value})


def test_decaying_schedule_needs_run_length():
    with pytest.raises(ConfigError, match="total_steps"):
        SparsityConfig(updater="rigl", drop_schedule="cosine")
    SparsityConfig(updater="rigl", drop_schedule="constant")  # no horizon needed
    SparsityConfig(updater="rigl", dst_end=1000)  # horizon from dst_end


def test_mest_overshoot_cannot_exceed_dense():
    with pytest.raises(ConfigError, match="mest_overshoot"):
        SparsityConfig(density=0.98, updater="mest", mest_overshoot=0.05, total_steps=10)


def test_round_trip_through_dict_and_unknown_keys():
    cfg = SparsityConfig(
        density=0.2, keep_dense=["first"], total_steps=50, channels=ChannelConfig(sparsity=0.3)
    )
    again = SparsityConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert isinstance(again.channels, ChannelConfig)
    with pytest.raises(ConfigError, match=r"unknown setting 'SparsityConfig\.densty' \(did you"):
        SparsityConfig.from_dict({"densty": 0.1})


def test_channel_defaults_resolve_from_engine_config():
    cfg = SparsityConfig(update_every=100, total_steps=1000, channels=ChannelConfig())
    assert cfg.channel_offset == 50
    assert cfg.channel_end == 1000
    cfg = SparsityConfig(total_steps=1000, channels=ChannelConfig(offset=7, end=300))
    assert (cfg.channel_offset, cfg.channel_end) == (7, 300)


def test_configs_are_frozen():
    cfg = SparsityConfig(total_steps=10)
    with pytest.raises(AttributeError):
        cfg.density = 0.5  # type: ignore[misc]
