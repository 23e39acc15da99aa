"""The sparsity engine: masks, allocation, selection, schedules, updaters, channel learner.

Imports torch only; never imports ``chase.train`` or ``chase.cli``.
"""

from chase.sparsity.config import ChannelConfig, SparsityConfig
from chase.sparsity.engine import MASKABLE, SparsityEngine, maskable_weights, unwrap
from chase.sparsity.groups import ChannelGroup, Member
from chase.sparsity.masks import MaskSet
from chase.sparsity.updaters import UPDATERS, TopologyUpdater, register_updater

__all__ = [
    "MASKABLE",
    "UPDATERS",
    "ChannelConfig",
    "ChannelGroup",
    "MaskSet",
    "Member",
    "SparsityConfig",
    "SparsityEngine",
    "TopologyUpdater",
    "maskable_weights",
    "register_updater",
    "unwrap",
]
