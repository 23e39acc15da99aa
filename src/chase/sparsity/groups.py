"""Channel groups as plain data: which slices of which tensors one channel occupies.

Coupling discovery (``chase.structure.coupling``) produces these from a traced model; the
channel learner, slimming and the FLOPs accounting consume them. Nothing here refers to module
objects: every tensor is named by its fully-qualified name (FQN) in ``model.state_dict()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: Roles of a member tensor axis inside a channel group.
#: producer: output axis of a Conv/Linear weight (its slices feed the channel score);
#: consumer: input axis of a Conv/Linear weight;
#: param: any other parameter axis (bias, norm affine, PReLU slope): zeroed when removed;
#: buffer: a buffer axis (BatchNorm running statistics): only sliced by ``slim``.
ROLES = ("producer", "consumer", "param", "buffer")


@dataclass(frozen=True)
class Member:
    """One tensor axis indexed by a group's channels.

    ``index`` is an int64 tensor of shape (C, k): channel ``c`` of the group occupies positions
    ``index[c]`` along ``axis`` of tensor ``tensor``. Usually k = 1; a Linear layer fed by a
    flattened H×W feature map has k = H·W; concatenation shows up as an offset.
    """

    tensor: str
    axis: int
    index: torch.Tensor
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Member.role = {self.role!r} is not allowed: one of {ROLES}")
        if self.index.dtype != torch.int64 or self.index.dim() != 2:
            raise ValueError("Member.index must be an int64 tensor of shape (channels, k)")

    @property
    def module(self) -> str:
        """FQN of the module that owns the tensor ('' for a top-level parameter)."""
        return self.tensor.rpartition(".")[0]


@dataclass(frozen=True)
class ChannelGroup:
    """Channel slots that must be removed together (DESIGN §2).

    ``shrink_only`` names layers (LayerNorm) under which removing a channel is exact only if
    the channel leaves the tensor, i.e. when the model shrinks while training.
    ``residual``: the group is tied to a residual stream (more than one non-depthwise producer
    adds into it). ``prunable`` is False, with a ``reason``, when discovery found something it
    cannot handle safely; such groups are reported and never touched. ``unit``: physical
    channels per channel of the group (1, or more where layers only allow removing channels
    together, e.g. one channel per conv group of a grouped conv): ``size`` counts units, each
    member row lists a unit's ``unit``·k positions, and the channel learner counts a removed
    unit as ``unit`` channels.
    """

    name: str
    size: int
    members: tuple[Member, ...]
    residual: bool = False
    prunable: bool = True
    reason: str = ""
    modules: tuple[str, ...] = field(default=())
    unit: int = 1
    shrink_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.unit < 1:
            raise ValueError(f"group {self.name!r}: unit must be >= 1, got {self.unit}")
        for m in self.members:
            if m.index.shape[0] != self.size:
                raise ValueError(
                    f"group {self.name!r}: member {m.tensor} axis {m.axis} indexes "
                    f"{m.index.shape[0]} channels, group has {self.size}"
                )

    def by_role(self, role: str) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.role == role)
