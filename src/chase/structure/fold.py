"""Channel units: layers that only allow removing channels together (grouped convs, GroupNorm).

A grouped conv stays a valid grouped conv only if every conv group keeps the same channels
(equal kept count, at the same offsets); a GroupNorm only computes the same statistics if whole
norm groups go. Each such layer gives a tie key per channel of a group (``LayerKind.tie``);
channels tied by any layer form one unit. ``fold`` turns a group of C channels with units of u
channels into a group of C/u "channels" whose member index rows list all u positions, so the
channel learner, slimming and the cover check keep working on plain (channels, k) rows.
"""

from __future__ import annotations

import torch

from chase.sparsity.groups import Member


def units(ties: list[torch.Tensor], size: int) -> torch.Tensor:
    """Component label per channel: channels with equal keys in any tie are connected (the
    smallest channel index of a component, spread by repeated minimum over each key class)."""
    labels = torch.arange(size)
    while True:
        before = labels
        for key in ties:
            _, inverse = torch.unique(key, return_inverse=True)
            low = torch.full((int(inverse.max()) + 1,), size, dtype=torch.int64)
            low = low.scatter_reduce(0, inverse, labels, reduce="amin")
            labels = torch.minimum(labels, low[inverse])
        if torch.equal(labels, before):
            return labels


def fold(members: list[Member], labels: torch.Tensor) -> tuple[list[Member], int] | str:
    """Members re-indexed by unit (rows list the unit's positions, duplicates merged) and the
    unit size, or a reason why the units are uneven."""
    _, comp = torch.unique(labels, return_inverse=True)
    counts = torch.bincount(comp)
    unit = int(counts[0])
    if not bool((counts == unit).all()):
        return f"units of tied channels have unequal sizes {sorted(set(counts.tolist()))}"
    if unit == 1:
        return members, 1
    order = torch.argsort(comp, stable=True).reshape(-1, unit)  # channels of each unit
    out = []
    for m in members:
        rows = m.index[order].reshape(order.shape[0], -1)  # (units, unit·k)
        rows = torch.sort(rows, dim=1).values
        first = torch.ones_like(rows, dtype=torch.bool)
        first[:, 1:] = rows[:, 1:] != rows[:, :-1]
        width = first.sum(1)
        if not bool((width == width[0]).all()):
            return f"'{m.tensor}' axis {m.axis} does not split evenly into units of {unit}"
        out.append(Member(m.tensor, m.axis, rows[first].reshape(rows.shape[0], -1), m.role))
    return out, unit
