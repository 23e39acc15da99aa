"""Chase's channel learner (DESIGN §5): gradual, permanent removal of low-score channels.

The pruner sees channel groups as plain data (``groups.ChannelGroup``) and all prunable
channels as one flat axis. At each event it ranks every live channel globally by score and
removes the lowest ones down to the cubic schedule's target, never taking a group below its
floor (water-filling), all as tensor operations with no loop over channels.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from typing import Any

import torch

from chase.checks import state_version
from chase.errors import ConfigError
from chase.sparsity.config import SparsityConfig
from chase.sparsity.groups import ChannelGroup
from chase.sparsity.masks import MaskSet
from chase.sparsity.schedules import channel_sparsity
from chase.sparsity.scores import SCORES, ChannelStats, channel_stats, producer_slots

log = logging.getLogger(__name__)

#: ``ChannelConfig.exclude`` entry naming the last prunable group in module order (in a VGG
#: the last conv's output, which feeds the classifier: the paper never prunes it).
LAST = "last"


def choose_removals(
    scores: torch.Tensor,
    alive: torch.Tensor,
    gid: torch.Tensor,
    floors: torch.Tensor,
    n: int,
    round_to: int = 1,
    unit: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bool vector of the channels to remove now (at most ``n``), chosen by water-filling.

    Live channels are ranked by ascending score (ties: lower group, then lower index). Each
    group's channels form blocks of ``round_to`` (the first block takes the remainder so the
    live count stays a multiple); blocks are ranked by their mean score and taken in order as
    long as the group keeps at least its floor and the total stays within ``n``. ``unit``
    (per group, default 1): physical channels per channel of the group (``ChannelGroup.unit``);
    ``n`` counts physical channels and a group's blocks are the fewest channels whose physical
    count is a multiple of ``round_to``.
    """
    out = torch.zeros(alive.numel(), dtype=torch.bool)
    live_idx = alive.nonzero().squeeze(1)
    if n <= 0 or live_idx.numel() == 0:
        return out
    s = scores[live_idx].double()
    g = gid[live_idx]
    live_g = torch.bincount(g, minlength=floors.numel())
    unit = torch.ones_like(floors) if unit is None else unit
    step_g = round_to // torch.gcd(torch.full_like(unit, round_to), unit)
    by_score = torch.argsort(s, stable=True)
    order = by_score[torch.argsort(g[by_score], stable=True)]  # grouped, ascending in group
    gs = g[order]
    rank = torch.arange(order.numel()) - (torch.cumsum(live_g, 0) - live_g)[gs]
    step = step_g[gs]
    first = (live_g % step_g)[gs]
    block = torch.where(
        first > 0, torch.where(rank < first, 0, 1 + (rank - first) // step), rank // step
    )
    through = torch.where(first > 0, first + block * step, (block + 1) * step)
    removable = live_g[gs] - through >= floors[gs]
    new_block = torch.ones_like(gs, dtype=torch.bool)
    new_block[1:] = (gs[1:] != gs[:-1]) | (block[1:] != block[:-1])
    bid = torch.cumsum(new_block.long(), 0) - 1
    nb = int(bid[-1]) + 1
    size = torch.bincount(bid, minlength=nb)
    mean = torch.zeros(nb, dtype=torch.float64).index_add_(0, bid, s[order]) / size
    block_ok = torch.zeros(nb, dtype=torch.bool)
    block_ok[bid] = removable
    ranked = torch.argsort(mean, stable=True)  # block ids are in (group, block) order
    physical = size * unit[gs[new_block]]
    taken = block_ok[ranked] & (torch.cumsum(physical[ranked] * block_ok[ranked], 0) <= n)
    chosen = torch.zeros(nb, dtype=torch.bool)
    chosen[ranked[taken]] = True
    out[live_idx[order[chosen[bid]]]] = True
    return out


class ChannelPruner:
    """Holds the live-channel state of every prunable group and runs channel events.

    ``alive`` (one bool per prunable channel) is the state; ``live`` and the masks' channel
    restrictions are derived from it: :meth:`resync` rebuilds them after ``alive`` was
    overwritten (a DDP broadcast), :meth:`check` lists what disagrees.
    """

    #: layout version of :meth:`state_dict`
    STATE_VERSION = 1

    def __init__(self, config: SparsityConfig, groups: list[ChannelGroup], masks: MaskSet):
        ch = config.channels
        assert ch is not None
        self.config = config
        self.masks = masks
        self.all_groups = groups
        self.groups, self.skipped = self._usable(groups)
        self.sizes = torch.tensor([g.size for g in self.groups], dtype=torch.int64)
        self.units = torch.tensor([g.unit for g in self.groups], dtype=torch.int64)
        self.offsets = (torch.cumsum(self.sizes, 0) - self.sizes).tolist()
        self.gid = torch.repeat_interleave(torch.arange(len(self.groups)), self.sizes)
        self.weight = self.units[self.gid]  # physical channels per channel slot
        self.total = int(self.gid.numel())  # slots; live counts live slots
        self.physical = int(self.weight.sum())  # targets and reports count physical channels
        self.alive = torch.ones(self.total, dtype=torch.bool)
        self.live = self.total
        self.floors = self._floors()
        self.slots, _ = producer_slots(self.groups, masks)
        self.events: list[dict[str, Any]] = []

    # -- setup -------------------------------------------------------------------------------
    def _usable(self, groups: list[ChannelGroup]) -> tuple[list[ChannelGroup], dict[str, str]]:
        ch = self.config.channels
        assert ch is not None
        patterns = [p for p in ch.exclude if p != LAST]
        used = {pat: False for pat in patterns}
        keep, skipped = [], {}
        for g in groups:
            hit = [p for p in patterns if any(_match(m.module, p) for m in g.members)]
            for p in hit:
                used[p] = True
            if not g.prunable:
                skipped[g.name] = g.reason or "unprunable"
            elif g.residual and not ch.prune_skip:
                skipped[g.name] = "residual stream (prune_skip is off)"
            elif hit:
                skipped[g.name] = f"excluded by {hit[0]!r}"
            elif not any(m.tensor in self.masks.params for m in g.by_role("producer")):
                skipped[g.name] = "no producer weight among the model's parameters"
            elif g.size <= 1:
                skipped[g.name] = "a single channel"
            else:
                keep.append(g)
        if LAST in ch.exclude and keep:  # chosen before the shrink-only filter: the same group
            skipped[keep.pop().name] = f"excluded by {LAST!r} (the last prunable group)"
        elif LAST in ch.exclude:
            used[LAST] = False
        if not ch.shrink:
            for g in [g for g in keep if g.shrink_only]:
                keep.remove(g)
                skipped[g.name] = (
                    f"{g.shrink_only[0]} normalises over these channels: removing one is exact "
                    "only when it leaves the model (sparsity.channels.shrink: true)"
                )
        unused = [p for p, u in used.items() if not u]
        if unused:
            raise ConfigError(f"ChannelConfig.exclude entry {unused[0]!r} matches no layer")
        return keep, skipped

    def _floors(self) -> torch.Tensor:
        ch = self.config.channels
        assert ch is not None
        floors = []
        for c, u in zip(self.sizes.tolist(), self.units.tolist()):
            r = ch.round_to // math.gcd(ch.round_to, u)  # in units of the group
            m = max(1, math.floor(c * (1.0 - ch.sparsity) * ch.min_keep_ratio))
            if r > 1:
                m = c if c <= r else max(r, -(-m // r) * r)
            floors.append(m)
        return torch.tensor(floors, dtype=torch.int64)

    # -- events ------------------------------------------------------------------------------
    def target(self, t: int) -> int:
        """Live prunable channels the schedule asks for after step ``t``."""
        ch = self.config.channels
        assert ch is not None
        s = channel_sparsity(ch.sparsity, t, self.config.channel_end)
        return round(self.physical * (1.0 - s))

    def live_physical(self) -> int:
        """Live prunable channels, counting a unit as its physical channels."""
        return int(self.weight[self.alive].sum())

    def stats(self) -> ChannelStats:
        return channel_stats(self.slots, self.masks.params, self.masks, self.total)

    def event(self, t: int, generator: torch.Generator) -> int:
        """Remove channels down to the target of step ``t``; returns how many were removed."""
        ch = self.config.channels
        assert ch is not None
        target = self.target(t)
        n = self.live_physical() - target
        if n <= 0 or self.total == 0:
            return 0
        scores = SCORES[ch.score](self.stats(), generator)
        remove = choose_removals(
            scores, self.alive, self.gid, self.floors, n, ch.round_to, self.units
        )
        removed = int(self.weight[remove].sum())  # physical channels
        if removed:
            self.alive &= ~remove
            self.live -= int(remove.sum())
            self._apply(remove)
        live = self.live_physical()
        self.events.append({"step": t, "removed": removed, "live": live, "target": target})
        log.debug("channel event at step %d: removed %d, %d live", t, removed, live)
        return removed

    def _apply(self, remove: torch.Tensor) -> None:
        per_group = torch.bincount(self.gid[remove], minlength=len(self.groups)).tolist()
        for gi, count in enumerate(per_group):
            if count:
                g = self.groups[gi]
                local = remove[self.offsets[gi] : self.offsets[gi] + g.size]
                self._restrict_group(g, local)

    def _restrict_group(self, group: ChannelGroup, removed: torch.Tensor) -> None:
        for m in group.members:
            if m.role == "buffer":
                continue  # running statistics only matter once the channel is sliced away
            if m.tensor not in self.masks.params:
                raise ConfigError(f"channel group {group.name!r} names unknown tensor {m.tensor}")
            positions = self.masks.to_current(m.tensor, m.axis, m.index[removed].reshape(-1))
            positions = positions[positions >= 0]  # a shrink took the others away already
            if positions.numel() == 0:
                continue
            keep = torch.ones(self.masks.params[m.tensor].shape[m.axis], dtype=torch.bool)
            keep[positions] = False
            self.masks.restrict(m.tensor, m.axis, keep)

    def rebase(self) -> None:
        """Map the producer slots onto the mask set's current coordinates (after a shrink);
        channels keep their original indices everywhere else (reports, ``alive``)."""
        self.slots, _ = producer_slots(self.groups, self.masks)

    def replay(self) -> None:
        """Re-apply the current live state to the masks (after loading a state dict)."""
        if self.live < self.total:
            self._apply(~self.alive)

    def resync(self) -> None:
        """Rebuild what derives from ``alive`` after it was overwritten in place (a broadcast
        from rank 0): the live count and the masks' channel restrictions."""
        self.live = int(self.alive.sum())
        self.masks.clear_channels()
        self.replay()

    def check(self) -> list[str]:
        """Broken invariants of the live-channel state, one sentence each (empty: all hold)."""
        problems = []
        if int(self.alive.sum()) != self.live:
            problems.append("channel pruner's live count disagrees with its keep vector")
        if bool((self.live_per_group() < torch.minimum(self.floors, self.sizes)).any()):
            problems.append("a channel group fell below its floor")
        return problems

    # -- reporting ---------------------------------------------------------------------------
    def live_per_group(self) -> torch.Tensor:
        """Live channels of every prunable group (int64, in ``groups`` order)."""
        return torch.bincount(self.gid[self.alive], minlength=len(self.groups))

    def keep(self) -> dict[str, torch.Tensor]:
        """Bool keep-vector of every group (unpruned groups included, all True)."""
        out = {g.name: torch.ones(g.size, dtype=torch.bool) for g in self.all_groups}
        for gi, g in enumerate(self.groups):
            out[g.name] = self.alive[self.offsets[gi] : self.offsets[gi] + g.size].clone()
        return out

    def summary(self) -> dict[str, Any]:
        live_g = (self.live_per_group() * self.units).tolist()
        live = self.live_physical()
        return {  # physical channels (a unit of a grouped conv counts as its channels)
            "live": live,
            "total": self.physical,
            "sparsity": 0.0 if self.physical == 0 else 1.0 - live / self.physical,
            "groups": {
                g.name: {"live": live_g[i], "total": g.size * g.unit}
                for i, g in enumerate(self.groups)
            },
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": self.STATE_VERSION,
            "groups": [[g.name, g.size] for g in self.groups],
            "alive": self.alive.clone(),
            "events": list(self.events),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``alive`` and the event log, and re-apply them to the masks."""
        state_version(state, (self.STATE_VERSION,), "channel pruner state")
        mine = [[g.name, g.size] for g in self.groups]
        theirs = [list(x) for x in state["groups"]]
        if mine != theirs:
            raise ValueError(
                "channel groups of this model differ from the saved ones "
                f"({len(mine)} vs {len(theirs)} groups): was the model or ChannelConfig changed?"
            )
        self.alive = state["alive"].clone().to(torch.bool)
        self.events = list(state["events"])
        self.resync()


def _match(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern)
