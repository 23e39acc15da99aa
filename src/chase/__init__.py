"""Chase: channel-aware dynamic sparse training for PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"
