"""Chase: channel-aware dynamic sparse training for PyTorch.

``sparsify`` a model and optimizer, train as usual, then ``slim`` the result into a
physically narrower model that computes the same function.
"""

from __future__ import annotations

from chase.api import prune_channels_once, save_slim, slim, slim_masks, slim_spec, sparsify
from chase.errors import ScheduleWarning
from chase.sparsity import ChannelConfig, SparsityConfig, SparsityEngine
from chase.structure import (
    SlimModel,
    check_onnx,
    export_onnx,
    export_torchscript,
    load_slim,
    recalibrate_bn,
)

__version__ = "0.1.0"

__all__ = [
    "ChannelConfig",
    "ScheduleWarning",
    "SlimModel",
    "SparsityConfig",
    "SparsityEngine",
    "__version__",
    "check_onnx",
    "export_onnx",
    "export_torchscript",
    "load_slim",
    "prune_channels_once",
    "recalibrate_bn",
    "save_slim",
    "slim",
    "slim_masks",
    "slim_spec",
    "sparsify",
]
