"""Shared pieces of the benchmark scripts: the machine description and markdown tables."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment(device: str = "cpu") -> dict[str, Any]:
    """What a result depends on: device, CPU, threads, torch version, load, date."""
    env: dict[str, Any] = {
        "device": device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def describe(env: dict[str, Any]) -> str:
    """One markdown line describing the environment."""
    where = env.get("gpu") or env["cpu"]
    return (
        f"{env['device']} ({where}), {env['threads']} torch threads of {env['cpu_count']} "
        f"CPUs, torch {env['torch']}, load average {env['load_average']} at start, "
        f"{env['date']}"
    )


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats are printed as given (format them first)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    """``min–max`` of repeated measurements, for the tables' spread column."""
    return f"{min(values):.3g}–{max(values):.3g}"
