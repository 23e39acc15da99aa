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
