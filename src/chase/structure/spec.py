"""The slim architecture as plain data: which positions of which tensor axes survive.

A ``SlimSpec`` is built from channel groups and per-group keep vectors (``kept_indices``) and
is everything needed to resize a freshly built original model into the slim one
(``chase.structure.slim.apply_spec``). It holds only str/int keys and int64 tensors, so
``to_dict()`` saves with ``torch.save`` and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from chase.sparsity.groups import ChannelGroup

SPEC_VERSION = 1


@dataclass(frozen=True)
class SlimSpec:
    """``keep[fqn][axis]``: sorted int64 kept positions; ``sizes[fqn][axis]``: original length.

    Every tensor axis touched by a prunable group is listed (fully kept axes too); axes that only
    unprunable groups touch never change and are left out.
    """

    keep: dict[str, dict[int, torch.Tensor]]
    sizes: dict[str, dict[int, int]]

    def widths(self) -> dict[str, dict[int, int]]:
        """Slim length of every listed axis."""
        return {t: {a: int(i.numel()) for a, i in axes.items()} for t, axes in self.keep.items()}

    def removed(self) -> int:
        """Number of removed positions summed over all listed axes (0: nothing changes)."""
        return sum(
            self.sizes[t][a] - int(i.numel()) for t, ax in self.keep.items() for a, i in ax.items()
        )

    def relative_to(self, done: SlimSpec | None) -> SlimSpec:
        """The spec that takes a model already resized to ``done`` on to this one.

        Both are in the original model's coordinates; the result is in the resized model's
        (its ``sizes`` are the current lengths), ready for ``apply_spec``. Positions that
        ``done`` removed cannot come back: that raises ValueError.
        """
        if done is None:
            return self
        keep: dict[str, dict[int, torch.Tensor]] = {}
        sizes: dict[str, dict[int, int]] = {}
        for tensor in sorted(set(self.keep) | set(done.keep)):
            axes = set(self.keep.get(tensor, {})) | set(done.keep.get(tensor, {}))
            for axis in sorted(axes):
                want = self._positions(tensor, axis, done)
                base = done.keep.get(tensor, {}).get(axis)
                if base is None:
                    current, n = want, self.sizes[tensor][axis]
                else:
                    current, n = torch.searchsorted(base, want), base.numel()
                    if bool((current >= n).any()) or not torch.equal(
                        base[current.clamp_max(n - 1)], want
                    ):
                        raise ValueError(
                            f"slim spec: positions of '{tensor}' axis {axis} that were removed "
                            "cannot come back"
                        )
                keep.setdefault(tensor, {})[axis] = current
                sizes.setdefault(tensor, {})[axis] = n
        return SlimSpec(keep, sizes)

    def _positions(self, tensor: str, axis: int, done: SlimSpec) -> torch.Tensor:
        """Kept original positions of one axis (all of them where this spec does not list it)."""
        idx = self.keep.get(tensor, {}).get(axis)
        if idx is not None:
            return idx
        return torch.arange(done.sizes[tensor][axis])

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts for ``torch.save`` (loads with ``weights_only=True``)."""
        return {
            "version": SPEC_VERSION,
            "keep": {t: dict(axes) for t, axes in self.keep.items()},
            "sizes": {t: dict(axes) for t, axes in self.sizes.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlimSpec:
        """Inverse of ``to_dict``; raises ValueError naming the first malformed entry."""
        if not isinstance(data, Mapping) or data.get("version") != SPEC_VERSION:
            raise ValueError(f"slim spec: expected a dict with version {SPEC_VERSION}")
        keep, sizes = data.get("keep"), data.get("sizes")
        if not isinstance(keep, Mapping) or not isinstance(sizes, Mapping):
            raise ValueError("slim spec: 'keep' and 'sizes' must be dicts")
        out_keep: dict[str, dict[int, torch.Tensor]] = {}
        out_sizes: dict[str, dict[int, int]] = {}
        for tensor, axes in keep.items():
            if not isinstance(axes, Mapping) or not isinstance(sizes.get(tensor), Mapping):
                raise ValueError(f"slim spec: entry {tensor!r} is malformed")
            out_keep[tensor], out_sizes[tensor] = {}, {}
            for axis, idx in axes.items():
                n = sizes[tensor].get(axis)
                if not _valid_positions(idx, n):
                    raise ValueError(
                        f"slim spec: kept positions of {tensor!r} axis {axis} are invalid"
                    )
                out_keep[tensor][int(axis)] = idx
                out_sizes[tensor][int(axis)] = int(n)
        return cls(out_keep, out_sizes)


def _valid_positions(idx: Any, n: Any) -> bool:
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int64 or idx.dim() != 1:
        return False
    if not isinstance(n, int) or idx.numel() == 0 or idx.numel() > n:
        return False
    return int(idx.min()) >= 0 and int(idx.max()) < n and bool((idx[1:] > idx[:-1]).all())


def _keep_vector(group: ChannelGroup, vec: torch.Tensor | None) -> torch.Tensor | None:
    if vec is None:
        return None
    if not isinstance(vec, torch.Tensor) or vec.dtype != torch.bool or vec.shape != (group.size,):
        raise ValueError(f"keep[{group.name!r}] must be a bool tensor of shape ({group.size},)")
    vec = vec.detach().cpu()
    if group.size and not bool(vec.any()):
        raise ValueError(f"keep[{group.name!r}] removes every channel; keep at least one")
    if not group.prunable and not bool(vec.all()):
        raise ValueError(
            f"group {group.name!r} is not prunable ({group.reason}); keep all channels"
        )
    return vec


def kept_indices(groups: Sequence[ChannelGroup], keep: Mapping[str, torch.Tensor]) -> SlimSpec:
    """Turn per-group keep vectors (True = channel stays) into kept positions per tensor axis.

    Groups missing from ``keep`` keep every channel. An axis shared by several groups (the input
    axis of a conv after a concatenation) combines them. Raises ValueError for unknown group
    names, malformed vectors, a group emptied completely, or channels removed from an
    unprunable group.
    """
    names = {g.name for g in groups}
    unknown = sorted(set(keep) - names)
    if unknown:
        raise ValueError(f"keep names unknown channel groups: {unknown[:5]}")
    cover: dict[tuple[str, int], list[torch.Tensor]] = defaultdict(list)
    removed: dict[tuple[str, int], list[torch.Tensor]] = defaultdict(list)
    touched: set[tuple[str, int]] = set()
    for g in groups:
        vec = _keep_vector(g, keep.get(g.name))
        for m in g.members:
            key = (m.tensor, m.axis)
            cover[key].append(m.index.reshape(-1))
            if g.prunable:
                touched.add(key)
            if vec is not None:
                removed[key].append(m.index[~vec].reshape(-1))
    spec_keep: dict[str, dict[int, torch.Tensor]] = defaultdict(dict)
    spec_sizes: dict[str, dict[int, int]] = defaultdict(dict)
    for tensor, axis in sorted(touched):
        positions = torch.cat(cover[(tensor, axis)])
        n = positions.numel()
        if not torch.equal(torch.sort(positions).values, torch.arange(n)):
            raise ValueError(f"groups do not cover '{tensor}' axis {axis} exactly once")
        alive = torch.ones(n, dtype=torch.bool)
        if removed[(tensor, axis)]:
            alive[torch.cat(removed[(tensor, axis)])] = False
        spec_keep[tensor][axis] = alive.nonzero().reshape(-1)
        spec_sizes[tensor][axis] = n
    return SlimSpec(dict(spec_keep), dict(spec_sizes))
