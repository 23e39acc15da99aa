"""``python -m chase`` (what ``torchrun -m chase train ...`` runs)."""

from chase.cli.main import entry

entry()
