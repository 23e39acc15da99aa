"""``chase`` command line: argument parsing only; the work happens in ``chase.train`` and
``chase.metrics``. Bad input ends with one line on stderr and exit code 2 (``--debug`` shows
the traceback)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from chase import __version__
from chase.cli import commands
from chase.errors import ChaseError

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chase",
        description="Channel-aware dynamic sparse training: train sparse, end slim.",
    )
    parser.add_argument("--version", action="version", version=f"chase {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in commands():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # e.g. `chase flops ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except ChaseError as exc:
        if args.debug:
            raise
        return _error(str(exc) or type(exc).__name__)
    except OSError as exc:  # the environment: a full disk, no permission, a missing file
        if args.debug:
            raise
        return _error(os_message(exc))
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run handles its own signals)
        if args.debug:
            raise
        print("chase: interrupted", file=sys.stderr)
        return 128 + int(signal.SIGINT)


def _error(message: str) -> int:
    lines = message.strip().splitlines()
    print(f"chase: error: {lines[0] if lines else message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def os_message(exc: OSError) -> str:
    """``PATH: cause`` for an ``OSError`` (``[Errno N]`` and quotes dropped)."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{' -> '.join(names)}: {cause}" if names else cause


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
