"""Shared test setup: make test helper modules importable and keep torch small and exact."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)  # tiny test models gain nothing from threads; avoids oversubscription
