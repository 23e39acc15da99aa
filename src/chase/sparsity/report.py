"""The paper's key observation, measured: how unevenly DST spreads weights over channels.

A live channel is **sparse amenable** when its density (active weights over the original size
of its producer slices) is below ``ratio`` times the density of its group's live channels
taken together. With the default ratio 0.5, a channel is amenable when it holds less than
half the weights per slot that its layer holds on average: the channels DST has starved.
"""

from __future__ import annotations

from typing import Any

import torch

from chase.sparsity.groups import ChannelGroup
from chase.sparsity.masks import MaskSet
from chase.sparsity.scores import channel_stats, producer_slots


def channel_report(
    groups: list[ChannelGroup],
    masks: MaskSet,
    keep: dict[str, torch.Tensor] | None,
    ratio: float = 0.5,
) -> dict[str, Any]:
    """Per-group channel densities, UMM scores and sparse-amenable counts, as plain data.

    Covers every group with a producer weight, prunable or not. ``keep`` (group name → bool
    vector) marks removed channels; removed channels are listed but never counted amenable.
    """
    reported = [g for g in groups if any(m.tensor in masks.params for m in g.by_role("producer"))]
    slots, total = producer_slots(reported, masks)
    stats = channel_stats(slots, masks.params, masks, total)
    density, umm = stats.density(), stats.umm()
    out_groups: dict[str, Any] = {}
    live_total = amenable_total = 0
    start = 0
    for g in reported:
        span = slice(start, start + g.size)
        start += g.size
        alive = (
            keep[g.name]
            if keep is not None and g.name in keep
            else torch.ones(g.size, dtype=torch.bool)
        )
        act, orig = stats.active[span][alive].sum(), stats.original[span][alive].sum()
        group_density = float(act / orig) if float(orig) > 0 else 0.0
        amenable = alive & (density[span] < ratio * group_density)
        n_live, n_amen = int(alive.sum()), int(amenable.sum())
        live_total += n_live
        amenable_total += n_amen
        out_groups[g.name] = {
            "live": n_live,
            "total": g.size,
            "prunable": g.prunable,
            "residual": g.residual,
            "density": group_density,
            "amenable": n_amen,
            "channel_density": density[span].tolist(),
            "channel_umm": umm[span].tolist(),
            "alive": alive.tolist(),
        }
    return {
        "ratio": ratio,
        "live": live_total,
        "amenable": amenable_total,
        "amenable_fraction": amenable_total / live_total if live_total else 0.0,
        "groups": out_groups,
    }


#: Quantiles of relative channel density and UMM kept per group in ``amenable_summary``.
QUANTILES = (0.1, 0.5, 0.9)


def amenable_summary(report: dict[str, Any]) -> dict[str, Any]:
    """A compact view of a ``channel_report`` for logging during training.

    Overall and per group: live and amenable channels and their fraction, and the 10th, 50th
    and 90th percentiles of the live channels' density relative to their group's density
    (``density_rel``; 1.0 = as dense as the layer, amenable below ``ratio``) and of their UMM
    relative to the group's mean live UMM (``umm_rel``). Groups without live channels are left
    out.
    """
    groups: dict[str, Any] = {}
    all_density: list[float] = []
    all_umm: list[float] = []
    for name, g in report["groups"].items():
        live = [i for i, a in enumerate(g["alive"]) if a]
        if not live:
            continue
        density = _relative([g["channel_density"][i] for i in live], g["density"])
        umms = [g["channel_umm"][i] for i in live]
        umm = _relative(umms, sum(umms) / len(umms))
        all_density += density
        all_umm += umm
        groups[name] = {
            "live": g["live"],
            "amenable": g["amenable"],
            "fraction": g["amenable"] / g["live"],
            "density_rel": _quantiles(density),
            "umm_rel": _quantiles(umm),
        }
    return {
        "ratio": report["ratio"],
        "live": report["live"],
        "amenable": report["amenable"],
        "fraction": report["amenable_fraction"],
        "density_rel": _quantiles(all_density),
        "umm_rel": _quantiles(all_umm),
        "groups": groups,
    }


def _relative(values: list[float], mean: float) -> list[float]:
    return [v / mean if mean > 0 else 0.0 for v in values]


def _quantiles(values: list[float]) -> list[float]:
    if not values:
        return []
    q = torch.quantile(torch.tensor(values, dtype=torch.float64), torch.tensor(QUANTILES).double())
    return [round(float(v), 4) for v in q]
