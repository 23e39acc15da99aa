"""The sparsity engine: masks, allocation, selection, schedules, updaters, channel learner.

Imports torch only; never imports ``chase.train`` or ``chase.cli``. The registries
(``UPDATERS``, ``SCORES``, ``ALLOCATIONS``, ``DROP_SCHEDULES``) are the only lists of names.
"""

from chase.sparsity.allocation import ALLOCATIONS
from chase.sparsity.config import ChannelConfig, SparsityConfig
from chase.sparsity.engine import (
    MASKABLE,
    EngineRecord,
    ShrinkEvent,
    SparsityEngine,
    maskable_weights,
    unwrap,
)
from chase.sparsity.groups import ChannelGroup, Member
from chase.sparsity.masks import MaskSet
from chase.sparsity.schedules import DROP_SCHEDULES, register_schedule
from chase.sparsity.scores import SCORES
from chase.sparsity.updaters import UPDATERS, TopologyUpdater, register_updater

__all__ = [
    "ALLOCATIONS",
    "DROP_SCHEDULES",
    "MASKABLE",
    "SCORES",
    "UPDATERS",
    "ChannelConfig",
    "ChannelGroup",
    "EngineRecord",
    "MaskSet",
    "Member",
    "ShrinkEvent",
    "SparsityConfig",
    "SparsityEngine",
    "TopologyUpdater",
    "maskable_weights",
    "register_schedule",
    "register_updater",
    "unwrap",
]
