"""Drop schedules, parametrised over their registry: a new schedule is tested automatically."""

import pytest

import contracts
from chase.sparsity import DROP_SCHEDULES
from chase.sparsity.schedules import decay

NAMES = DROP_SCHEDULES.names()


@pytest.mark.parametrize("name", NAMES)
def test_shape_starts_at_start_and_stays_between_start_and_end(name):
    contracts.schedule_shape(name)


@pytest.mark.parametrize("name", NAMES)
def test_a_decaying_schedule_needs_the_run_length(name):
    contracts.schedule_horizon_rule(name)


@pytest.mark.parametrize("scope", contracts.SCOPES)
@pytest.mark.parametrize("name", NAMES)
def test_a_run_with_the_schedule_keeps_the_budget(name, scope):
    contracts.updater_budget_exact_and_masked_state_zero("rigl", scope, drop_schedule=name)


def test_builtin_values():
    assert decay(0.5, 0.0, 50, 100, "cosine") == pytest.approx(0.25)
    assert decay(0.5, 0.0, 25, 100, "linear") == pytest.approx(0.375)
    assert decay(0.5, 0.0, 99, 100, "constant") == 0.5
    assert decay(0.5, 0.1, 7, 0, "cosine") == pytest.approx(0.1)  # no horizon: at its end
