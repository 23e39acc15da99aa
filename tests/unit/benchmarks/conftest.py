"""The benchmark scripts import their neighbours (``common``, ``study_plan``) as top-level
modules, as they do when run as ``python benchmarks/NAME.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
