"""Figures of runs: ``plot_run``/``plot_runs`` from run folders, or the single figures of
``chase.plots.figures`` from plain data. Needs matplotlib (``chase-sparse[plot]``), imported
only when a figure is drawn."""

from chase.plots.runs import plot_comparison, plot_run, plot_runs

__all__ = ["plot_comparison", "plot_run", "plot_runs"]
