"""Leaving the process group: collected first, together when possible, always destroyed."""

import pytest

from chase.train import distributed


@pytest.fixture
def calls(monkeypatch):
    log = []
    monkeypatch.setattr(distributed.dist, "is_available", lambda: True)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.gc, "collect", lambda: log.append("collect"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: log.append("destroy"))
    return log


def test_teardown_collects_waits_for_the_others_then_leaves(calls, monkeypatch):
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    distributed.teardown()
    assert calls == ["collect", "barrier", "destroy"]


def test_teardown_after_an_error_does_not_wait(calls, monkeypatch):
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    distributed.teardown(together=False)
    assert calls == ["collect", "destroy"]


def test_teardown_leaves_even_when_another_rank_is_gone(calls, monkeypatch):
    def gone():
        raise RuntimeError("Connection closed by peer")

    monkeypatch.setattr(distributed.dist, "barrier", gone)
    distributed.teardown()
    assert calls == ["collect", "destroy"]
