"""Bounds and failure reports for the Torch-Pruning part of coupling discovery.

Torch-Pruning's grouping is plain Python that can run for minutes on some graphs (timm's
``rexnet_100``) or raise from deep inside (a bare ``ZeroDivisionError`` on ShuffleNet's channel
shuffle). A Python thread cannot stop other Python code, so the time bound is a real-time
timer signal (``SIGALRM``) whose handler raises ``DiscoveryTimeout`` in the main thread, where
discovery normally runs (training, the CLI, tests); elsewhere (a worker thread, or a platform
without ``setitimer``) discovery runs unbounded and says so at DEBUG level. ``tp_failure`` turns
an exception raised inside Torch-Pruning into one line naming the op it was working on.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

_log = logging.getLogger(__name__)


class DiscoveryTimeout(Exception):
    """Raised by the timer inside Torch-Pruning; its text names where it was interrupted."""


def _where(frame: FrameType | None, names: dict[Any, str] | None = None) -> str:
    """`` (in get_pruning_group, grouping 'layer')`` for the innermost Torch-Pruning frame."""
    while frame is not None and "torch_pruning" not in frame.f_code.co_filename:
        frame = frame.f_back
    if frame is None:
        return ""
    module = frame.f_locals.get("module")
    layer = "" if names is None or module not in names else f", grouping '{names[module]}'"
    return f" (in {frame.f_code.co_name}{layer})"


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``DiscoveryTimeout`` in the block after ``seconds`` (main thread only)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not seconds or not usable:
        if seconds:
            _log.debug("channel-group discovery runs without a time limit (not the main thread)")
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise DiscoveryTimeout(_where(frame))

    start = time.monotonic()
    old = signal.signal(signal.SIGALRM, handler)
    previous = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if previous[0] > 0:  # someone else's timer was running: give it back what is left
            left = max(previous[0] - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, previous[1])


def _node_text(node: Any, names: dict[Any, str]) -> str:
    grad_fn = getattr(node, "grad_fn", None)
    op = grad_fn.name() if grad_fn is not None and hasattr(grad_fn, "name") else "?"
    seen, frontier = set(), list(getattr(node, "inputs", ()))
    while frontier:
        n = frontier.pop(0)
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.module in names:
            return f"op {op} after '{names[n.module]}'"
        frontier.extend(n.inputs)
    return f"op {op}"


def tp_failure(exc: BaseException, names: dict[Any, str]) -> str | None:
    """One line for an exception raised inside Torch-Pruning, naming the op it was handling;
    None when the innermost frame is not Torch-Pruning's (the model's own error)."""
    tb: TracebackType | None = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    if not frames or "torch_pruning" not in frames[-1].f_code.co_filename:
        return None
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    for frame in reversed(frames):
        if "torch_pruning" not in frame.f_code.co_filename:
            break
        node = next((v for k, v in frame.f_locals.items() if k.endswith("node")), None)
        if node is not None and hasattr(node, "grad_fn"):
            return f"{text.rstrip(': ')} at {_node_text(node, names)} ({frame.f_code.co_name})"
    return f"{text.rstrip(': ')} ({frames[-1].f_code.co_name})"
