"""The only place in the project that changes module shapes.

Coupling discovery (which channel slots are tied), shape specs as plain data, physical
slimming, slim checkpoints, export and BatchNorm recalibration.
"""

from chase.structure.bn import fold_batchnorm, recalibrate_bn
from chase.structure.coupling import describe_groups, discover_groups
from chase.structure.export import (
    ExportMismatchError,
    check_onnx,
    export_onnx,
    export_torchscript,
    load_torchscript,
)
from chase.structure.io import SlimModel, load_slim, read_slim, save_slim
from chase.structure.layers import LAYER_KINDS, LayerKind, layer_kind
from chase.structure.shrink import Shrinker, shrink_in_place
from chase.structure.slim import apply_spec, slice_tensor_dict, slim_copy
from chase.structure.spec import SlimSpec, kept_indices

__all__ = [
    "LAYER_KINDS",
    "ExportMismatchError",
    "LayerKind",
    "Shrinker",
    "SlimModel",
    "SlimSpec",
    "apply_spec",
    "check_onnx",
    "describe_groups",
    "discover_groups",
    "export_onnx",
    "export_torchscript",
    "fold_batchnorm",
    "kept_indices",
    "layer_kind",
    "load_slim",
    "load_torchscript",
    "read_slim",
    "recalibrate_bn",
    "save_slim",
    "shrink_in_place",
    "slice_tensor_dict",
    "slim_copy",
]
