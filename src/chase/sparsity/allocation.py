"""Per-layer active-weight counts (DESIGN §3): uniform, ER and ERK, as exact integers.

Pure functions over shapes; nothing here touches tensors. Counts always sum to the budget
exactly (largest-remainder rounding), and layers whose share would exceed their size are
made dense with the scale solved again over the rest (water-filling). An allocation is a
function ``shape -> relative density`` registered in :data:`ALLOCATIONS`.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence

from chase.errors import ConfigError
from chase.registry import Registry

AllocationFn = Callable[[Sequence[int]], float]

#: Allocations by name: the relative density of a layer from its weight shape, before scaling.
ALLOCATIONS: Registry[AllocationFn] = Registry("allocation")


@ALLOCATIONS.register("uniform")
def uniform(shape: Sequence[int]) -> float:
    """Every layer at the same density."""
    return 1.0


@ALLOCATIONS.register("er")
def erdos_renyi(shape: Sequence[int]) -> float:
    """Erdős–Rényi (SET): (n_in + n_out) / (n_in · n_out), kernel dimensions ignored."""
    n_out = shape[0]
    n_in = shape[1] if len(shape) > 1 else 1
    return (n_in + n_out) / (n_in * n_out)


@ALLOCATIONS.register("erk")
def erdos_renyi_kernel(shape: Sequence[int]) -> float:
    """Erdős–Rényi-Kernel (RigL): the sum of all dimensions over their product."""
    return sum(shape) / math.prod(shape)


def apportion(total: int, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights``, each at most its cap.

    Entries whose proportional share exceeds their cap are pinned at the cap and the rest is
    shared again (water-filling). The result sums to ``min(total, sum(caps))`` exactly; the
    fractional parts are rounded by largest remainder, ties going to the lower index.
    Entries with zero weight receive nothing unless every entry with weight is full.
    """
    n = len(weights)
    if len(caps) != n:
        raise ValueError("apportion: weights and caps differ in length")
    if any(w < 0 for w in weights) or any(c < 0 for c in caps):
        raise ValueError("apportion: weights and caps must be non-negative")
    counts = [0] * n
    remaining = min(int(total), sum(caps))
    if remaining <= 0:
        return counts
    free = [i for i in range(n) if caps[i] > 0 and weights[i] > 0]
    while free:
        wsum = math.fsum(weights[i] for i in free)
        full = [i for i in free if remaining * weights[i] / wsum >= caps[i]]
        if not full:
            break
        for i in full:
            counts[i] = caps[i]
            remaining -= caps[i]
        pinned = set(full)
        free = [i for i in free if i not in pinned]
    if free and remaining > 0:
        wsum = math.fsum(weights[i] for i in free)
        ideal = {i: remaining * weights[i] / wsum for i in free}
        for i in free:
            counts[i] = min(caps[i], math.floor(ideal[i]))
        left = remaining - sum(counts[i] for i in free)
        order = sorted(free, key=lambda i: (-(ideal[i] - math.floor(ideal[i])), i))
        for i in order:  # largest remainders first
            if left <= 0:
                break
            if counts[i] < caps[i]:
                counts[i] += 1
                left -= 1
        for i in reversed(order):  # float round-off can overshoot by one: smallest first
            if left >= 0:
                break
            if counts[i] > 0:
                counts[i] -= 1
                left += 1
        remaining = left
    if remaining > 0:  # only entries without weight have room left: fill them in order
        for i in range(n):
            take = min(remaining, caps[i] - counts[i])
            counts[i] += take
            remaining -= take
    return counts


def layer_score(shape: Sequence[int], allocation: str, erk_power: float = 1.0) -> float:
    """Relative density of a layer before scaling (DESIGN §3), raised to ``erk_power``."""
    return float(ALLOCATIONS.get(allocation, "allocation")(shape) ** erk_power)


def allocate(
    shapes: Mapping[str, Sequence[int]],
    budget: int,
    allocation: str,
    erk_power: float = 1.0,
    dense: Sequence[str] = (),
    capacity: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Active-weight count of every layer, summing to ``budget`` exactly.

    ``shapes`` gives each layer's (live) weight shape; ``dense`` layers get their whole
    capacity; ``capacity`` (default: the product of the shape) bounds each count. Raises
    ``ConfigError`` when the dense layers alone exceed the budget.
    """
    names = list(shapes)
    caps = [int(capacity[n]) if capacity is not None else math.prod(shapes[n]) for n in names]
    dense_set = set(dense)
    fixed = sum(c for n, c in zip(names, caps) if n in dense_set)
    if fixed > budget:
        raise ConfigError(
            f"keep_dense layers hold {fixed} weights, more than the budget of {budget} "
            "active weights: raise density or keep fewer layers dense"
        )
    weights = [
        0.0 if n in dense_set else layer_score(shapes[n], allocation, erk_power) * c
        for n, c in zip(names, caps)
    ]
    sparse_caps = [0 if n in dense_set else c for n, c in zip(names, caps)]
    counts = apportion(budget - fixed, weights, sparse_caps)
    return {n: (cap if n in dense_set else cnt) for n, cap, cnt in zip(names, caps, counts)}


def match_layers(names: Sequence[str], patterns: Sequence[str], field: str) -> list[str]:
    """Layers (weight FQNs) selected by names/globs, plus the words ``first`` and ``last``.

    A pattern matches a weight FQN (``features.0.weight``) or its module (``features.0``).
    A pattern that matches nothing raises ``ConfigError`` naming ``field`` (typos are loud).
    """
    chosen: list[str] = []
    for pat in patterns:
        if pat == "first":
            hits = names[:1]
        elif pat == "last":
            hits = names[-1:]
        else:
            hits = [
                n
                for n in names
                if fnmatch.fnmatchcase(n, pat) or fnmatch.fnmatchcase(n.rpartition(".")[0], pat)
            ]
        if not hits:
            raise ConfigError(
                f"{field} entry {pat!r} matches no maskable layer; layers are: "
                + ", ".join(names[:8])
                + (" ..." if len(names) > 8 else "")
            )
        chosen.extend(h for h in hits if h not in chosen)
    return chosen
