"""Arguments shared by the measuring commands (``flops``, ``bench``): what they measure."""

from __future__ import annotations

from typing import Any

from chase.errors import ConfigError


def add_source_arguments(parser: Any) -> None:
    """What the measuring commands work on: ``RUN_DIR``, or ``--model`` sized for ``--dataset``."""
    parser.add_argument(
        "run", nargs="?", metavar="RUN_DIR", help="a run folder made by chase train"
    )
    parser.add_argument("--model", help="registry model name (instead of RUN_DIR)")
    parser.add_argument("--dataset", default="cifar10", help="dataset the model is sized for")
    parser.add_argument("--image-size", type=int, help="image side for imagenet/synthetic")


def check_one_source(args: Any, command: str) -> None:
    """``ConfigError`` unless exactly one of RUN_DIR and ``--model`` was given."""
    if (args.run is None) == (args.model is None):
        raise ConfigError(f"chase {command}: give either RUN_DIR or --model NAME (not both)")
