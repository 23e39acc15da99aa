"""Checkpoints: atomic writes, clear errors on corrupt files, and every RNG state.

A checkpoint is written to a temporary file in the same folder and renamed over the old one
(``chase.files.atomic_write``), so the previous checkpoint stays valid until the new one is
complete and an interrupted write never leaves a damaged file behind.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from chase.files import atomic_torch_save, load_versioned

FORMAT = "chase-run-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write a run checkpoint atomically; ``state`` gets the format and version fields."""
    return atomic_torch_save(path, {"format": FORMAT, "version": VERSION, **state})


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a run checkpoint, raising ``CheckpointError`` with one sentence if it is unusable."""
    return load_versioned(path, FORMAT, VERSION, "run checkpoint", map_location)


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states as plain tensors and lists."""
    py = random.getstate()
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    out: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npv = state["numpy"]
    np.random.set_state((npv[0], npv[1].numpy().astype(np.uint32), npv[2], npv[3], npv[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
