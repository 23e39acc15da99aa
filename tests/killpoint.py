"""Run ``chase ARGS...`` in a process that kills itself at one exact moment (tests only;
nothing in ``chase`` knows about it): ``python tests/killpoint.py ARGS...`` with ``$KILL_AT``,
or ``run_killed(spec, args)``, which forks the process from a server that has already imported
torch and chase (a fresh interpreter costs seconds of imports per kill). The moments:

- ``write:NAME:K`` inside the K-th atomic write of a file called NAME, once its temporary file
  is written (``write:NAME:K:half``: cut to half its size first, a write torn by the kill);
- ``line:K`` while writing the K-th metrics line: half of it is on disk;
- ``call:MODULE:NAME:K`` at the K-th call of MODULE.NAME (a function, or ``Class.method``);
- ``exit`` after ``chase`` returned, before the process ends.

``$KILL_SIGNAL`` (default ``SIGKILL``) is what it sends itself: with ``SIGTERM`` or ``SIGINT``
the process goes on and its own handlers decide what happens. Under ``torchrun``,
``$KILL_RANK`` arms the kill point on that rank only.
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

PRELOAD = ["torch", "torch._dynamo", "chase.cli.main", "chase.train.run", "chase.train.report"]

_seen: Counter[str] = Counter()


def _die() -> None:
    sig = signal.Signals[os.environ.get("KILL_SIGNAL", "SIGKILL")]
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), sig)


def _due(key: str, count: int) -> bool:
    _seen[key] += 1
    return _seen[key] == count


def _on_write(name: str, count: int, half: bool) -> None:
    import chase.files

    original = chase.files.atomic_write

    def atomic_write(path: Any, write: Any) -> Any:
        if os.path.basename(os.fspath(path)) != name or not _due("write", count):
            return original(path, write)

        def write_then_die(fh: Any) -> None:
            write(fh)
            fh.flush()
            if half:
                fh.truncate(fh.tell() // 2)
            _die()

        return original(path, write_then_die)

    chase.files.atomic_write = atomic_write


def _on_line(count: int) -> None:
    from chase.train.rundir import MetricsLog

    original = MetricsLog.write

    def write(self: MetricsLog, record: dict[str, Any]) -> None:
        if not self.enabled or not _due("line", count):
            return original(self, record)
        line = (repr(record) + "\n").encode()
        self._fh.write(line[: len(line) // 2])
        self._fh.flush()
        _die()
        return original(self, record)  # reached with a catchable signal only

    MetricsLog.write = write  # type: ignore[method-assign]


def _on_call(module: str, name: str, count: int) -> None:
    owner: Any = importlib.import_module(module)
    *path, name = name.split(".")  # "Trainer._step": a method
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        if _due("call", count):
            _die()
        return original(*args, **kwargs)

    setattr(owner, name, call)


def install(spec: str) -> str:
    """Arm the kill point ``spec``; returns its kind."""
    kind, *rest = spec.split(":") if spec else [""]
    if kind == "write":
        _on_write(rest[0], int(rest[1]), rest[2:] == ["half"])
    elif kind == "line":
        _on_line(int(rest[0]))
    elif kind == "call":
        _on_call(rest[0], rest[1], int(rest[2]))
    elif kind not in ("exit", ""):
        raise ValueError(f"unknown kill point {spec!r}")
    return kind


def child(spec: str, sig: str, argv: Sequence[str]) -> None:
    """The body of a ``run_killed`` process."""
    import torch

    os.environ["KILL_SIGNAL"] = sig
    torch.set_num_threads(1)  # as the test process: the same arithmetic, bit for bit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    kind = install(spec)
    from chase.cli.main import main as chase_main

    code = chase_main([str(a) for a in argv])
    if kind == "exit":
        _die()
    sys.exit(code)


def run_killed(spec: str, argv: Sequence[Any], sig: str = "SIGKILL", timeout: float = 300) -> int:
    """Run ``chase argv`` with the kill point ``spec`` in a forked process; its exit code
    (negative: the signal that ended it)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    proc = ctx.Process(target=child, args=(spec, sig, [str(a) for a in argv]))
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise AssertionError(f"chase {' '.join(map(str, argv))} did not end (kill point {spec})")
    return proc.exitcode


def main() -> None:
    armed = os.environ.get("KILL_RANK") in (None, os.environ.get("RANK", "0"))
    kind = install(os.environ.get("KILL_AT", "") if armed else "")
    from chase.cli.main import main as chase_main

    code = chase_main(sys.argv[1:])
    if kind == "exit":
        _die()
    sys.exit(code)


if __name__ == "__main__":
    main()
