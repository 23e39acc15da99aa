"""Drop schedules, parametrised over their registry: a new schedule is tested automatically."""

import pytest

import contracts
from chase.sparsity import DROP_SCHEDULES
from chase.sparsity.schedules import decay


@pytest.mark.parametrize("name", DROP_SCHEDULES.names())
def test_every_schedule_keeps_the_contract(name):
    """Its shape, its need of the run length, and runs with it keep the budget."""
    contracts.check_schedule(name)


def test_builtin_values():
    assert decay(0.5, 0.0, 50, 100, "cosine") == pytest.approx(0.25)
    assert decay(0.5, 0.0, 25, 100, "linear") == pytest.approx(0.375)
    assert decay(0.5, 0.0, 99, 100, "constant") == 0.5
    assert decay(0.5, 0.1, 7, 0, "cosine") == pytest.approx(0.1)  # no horizon: at its end


def _problems(**fields):
    from chase import ChannelConfig, SparsityConfig
    from chase.sparsity.schedules import inaction
    from chase.sparsity.updaters import create_updater

    channels = fields.pop("channels", None)
    config = SparsityConfig(
        channels=None if channels is None else ChannelConfig(**channels), **fields
    )
    return inaction(config, create_updater(config))


def test_settings_that_act_within_the_run_raise_nothing():
    assert _problems(updater="rigl", update_every=100, total_steps=300) == []
    assert _problems(updater="static", total_steps=3) == []  # static needs no update
    # the run's length unknown: nothing to say
    assert _problems(updater="rigl", drop_schedule="constant", total_steps=None) == []
    assert _problems(updater="mest", update_every=100, total_steps=300, mest_end=300,
                     channels={"every": 100, "end": 240}) == []  # fmt: skip


def test_no_topology_update_before_the_end():
    (text,) = _problems(updater="rigl", update_every=1000, total_steps=300)
    assert text == (
        "no topology update before the end of the run: update_every = 1000, but the run has "
        "300 steps; rigl keeps its initial topology, like static"
    )
    (text,) = _problems(updater="set", update_every=100, dst_end=50, total_steps=300)
    assert "update_every = 100 and dst_end = 50" in text


def test_no_channel_event_before_the_end():
    # the default offset is update_every // 2 = 500: after the 300 steps
    problems = _problems(updater="static", total_steps=300, channels={"every": 100})
    assert problems == [
        "no channel event before the end of the run: the first would follow step 500 "
        "(channels.offset, or update_every // 2 when it is unset), but the run has 300 steps; "
        "no channels are removed"
    ]
    # offset 0: the first event follows step `every`
    assert _problems(updater="static", total_steps=300, channels={"every": 100, "offset": 0}) == []


def test_a_channel_target_not_reached_by_the_last_event():
    # events after steps 50, 150, 250; t_f = 300 comes later: S(250) = 0.5 (1 - (1/6)^3)
    (text,) = _problems(updater="static", update_every=100, total_steps=300,
                        channels={"every": 100, "end": 300, "sparsity": 0.5})  # fmt: skip
    assert text == (
        "channel sparsity ends near 0.498, short of the target 0.5: the last channel event "
        "(after step 250) comes before channels.end = 300"
    )
    # no target at all: nothing to miss
    assert _problems(updater="static", total_steps=30, channels={"every": 100, "sparsity": 0}) == []


def test_mest_density_above_the_budget_after_its_last_update():
    (text,) = _problems(updater="mest", density=0.1, update_every=100, total_steps=300,
                        mest_end=1000)  # fmt: skip
    assert text.startswith("the final density stays near 0.1")
    assert (
        "above the budget 0.1: mest still allows it at the last topology update (after step 300"
        in text
    )
    assert _problems(updater="mest", update_every=100, total_steps=300, mest_end=300) == []


def test_the_engine_warns_with_the_same_sentences():
    import torch

    import nets
    from chase import ScheduleWarning, SparsityConfig, sparsify

    model = nets.mlp()
    config = SparsityConfig(updater="rigl", update_every=1000, total_steps=300)
    with pytest.warns(ScheduleWarning, match="^no topology update before the end") as caught:
        engine = sparsify(model, torch.optim.SGD(model.parameters(), lr=0.1), config)
    assert [str(w.message) for w in caught] == engine.schedule_problems


def test_the_closed_forms_agree_with_the_engines_step_rules():
    """inaction's first channel event and last topology update equal a step-by-step walk of
    the rules the engine applies (is_channel_event, is_update_step)."""
    import itertools

    from chase import ChannelConfig, SparsityConfig
    from chase.sparsity.schedules import (
        _last_update,
        first_channel_event,
        is_channel_event,
        is_update_step,
    )

    for update_every, every, offset, total, dst_end in itertools.product(
        (1, 3, 10), (1, 4, 7), (None, 0, 2, 9, 25), (1, 5, 12, 30), (None, 0, 6, 40)
    ):
        config = SparsityConfig(
            updater="set", drop_schedule="constant", update_every=update_every,
            total_steps=total, dst_end=dst_end,
            channels=ChannelConfig(every=every, offset=offset, end=total),
        )  # fmt: skip
        steps = range(1, total + 1)
        updates = [t for t in steps if is_update_step(config, t)]
        assert _last_update(config, total) == (updates[-1] if updates else None), config
        events = [t for t in range(1, 10 * total + 60) if is_channel_event(config, t)]
        assert first_channel_event(config) == events[0], config
