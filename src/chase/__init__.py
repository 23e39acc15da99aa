"""Chase: channel-aware dynamic sparse training for PyTorch."""

from __future__ import annotations

from chase.api import sparsify
from chase.sparsity import ChannelConfig, SparsityConfig, SparsityEngine

__version__ = "0.1.0"

__all__ = ["ChannelConfig", "SparsityConfig", "SparsityEngine", "__version__", "sparsify"]
