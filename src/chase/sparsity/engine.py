"""The sparsity engine: one clock, the masks, the updater and the channel pruner.

Order of work after every real optimizer step (DESIGN §4): advance ``t``; re-apply masks to
weights and optimizer state; run a channel event if ``t`` is one; run the topology update if
``t`` is one; re-apply. Nothing on the per-step path synchronises with the device.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from chase.errors import CheckpointError, ConfigError, InvariantError, ScheduleWarning
from chase.sparsity import distributed
from chase.sparsity.allocation import allocate, match_layers
from chase.sparsity.channels import ChannelPruner
from chase.sparsity.config import SparsityConfig
from chase.sparsity.groups import ChannelGroup
from chase.sparsity.masks import MaskSet
from chase.sparsity.report import channel_report
from chase.sparsity.schedules import inaction, is_channel_event, is_update_step
from chase.sparsity.selection import top_k_mask
from chase.sparsity.updaters import Context, Layer, create_updater, rewire

log = logging.getLogger(__name__)

#: Module types whose ``weight`` gets a mask (the one definition; ``chase.sparsity.MASKABLE``).
MASKABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
#: Layout version of :meth:`SparsityEngine.state_dict`; its ``updater`` and ``channels``
#: sub-states carry their own (``TopologyUpdater.state_version``, ``ChannelPruner.STATE_VERSION``).
STATE_VERSION = 1


@dataclass(frozen=True)
class ShrinkEvent:
    """What ``on_shrink`` callbacks hear: the model shrank after optimizer step ``step``.

    ``removed`` counts the tensor positions cut (summed over every cut axis); ``shapes`` maps
    each maskable weight's FQN to its new shape. Anything holding the old parameter shapes
    (a DDP wrapper, a ``torch.compile`` cache, a model-EMA copy) must be rebuilt now.
    """

    step: int
    removed: int
    shapes: dict[str, tuple[int, ...]]


class Resizer(Protocol):
    """The model surgery the engine shrinks with (``chase.structure.Shrinker``)."""

    def shrink(self, keep: Mapping[str, torch.Tensor], optimizer: Any) -> Any: ...
    def load(self, state: Any, optimizer: Any) -> Any: ...
    def state(self) -> dict[str, Any] | None: ...
    def kept(self) -> dict[str, dict[int, torch.Tensor]]: ...
    def cut(self, tensors: Mapping[str, torch.Tensor], step: Any) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class EngineRecord:
    """What measurement needs of a run, as plain data (``chase.metrics.engine_flops``).

    Per maskable weight (FQN): its size in the original model and its active count now; the
    active counts after every change, and the weights' sizes after every shrink, each as
    ``(step, {fqn: count})`` from step 0; the iterations that read the dense gradient; the
    original model's parameter count (weights, biases, norms).
    """

    original: dict[str, int]
    active: dict[str, int]
    trajectory: list[tuple[int, dict[str, int]]]
    sizes: list[tuple[int, dict[str, int]]]
    dense_grad_iterations: list[int]
    params_original: int


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def maskable_weights(model: nn.Module) -> list[str]:
    """FQNs of every Conv/Linear weight, in module registration order (a weight shared by
    several modules is listed once, under the name ``named_parameters`` gives it)."""
    params = dict(model.named_parameters())
    names = (
        f"{name}.weight" if name else "weight"
        for name, mod in model.named_modules()
        if isinstance(mod, MASKABLE) and isinstance(getattr(mod, "weight", None), nn.Parameter)
    )
    return [n for n in names if n in params]


class SparsityEngine:
    """Dynamic sparse training state of one model; see :func:`chase.sparsify`."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        config: SparsityConfig,
        groups: list[ChannelGroup] | None = None,
        attach: bool = True,
        resizer: Resizer | None = None,
        on_shrink: Callable[[ShrinkEvent], None] | None = None,
    ):
        self.config = config
        self.model = unwrap(model)
        self.resizer = resizer if config.channels is not None and config.channels.shrink else None
        self.optimizer = optimizer
        self._check_shrink(model, on_shrink)
        self._shrink_hooks = [] if on_shrink is None else [on_shrink]
        self.groups = groups
        self.step = 0
        self.generator = torch.Generator().manual_seed(config.seed)
        params = dict(self.model.named_parameters())
        self.layers = maskable_weights(self.model)
        if not self.layers:
            raise ConfigError("the model has no Conv or Linear weights to sparsify")
        self.shapes = {n: tuple(params[n].shape) for n in self.layers}
        self.total = sum(params[n].numel() for n in self.layers)
        self.budget = round(config.density * self.total)
        self.pinned = set(match_layers(self.layers, config.keep_dense, "SparsityConfig.keep_dense"))
        self.targets = allocate(
            self.shapes, self.budget, config.allocation, config.erk_power, dense=list(self.pinned)
        )
        self.masks = MaskSet(params, self._initial_masks(params))
        self.updater = create_updater(config)
        #: what the config cannot do within ``total_steps`` (each also a ``ScheduleWarning``)
        self.schedule_problems = inaction(config, self.updater)
        for problem in self.schedule_problems:
            warnings.warn(problem, ScheduleWarning, stacklevel=3)
        self.channels: ChannelPruner | None = None
        if config.channels is not None:
            if groups is None:
                raise ConfigError(
                    "SparsityConfig.channels needs the model's channel groups: "
                    "pass example_inputs to chase.sparsify"
                )
            self.channels = ChannelPruner(config, groups, self.masks)
        self.trajectory: list[tuple[int, list[int]]] = []
        self.update_steps: list[int] = []  # steps after which the topology was updated
        self.shrinks: list[int] = []  # steps after which the model shrank
        self.sizes: list[tuple[int, list[int]]] = [(0, [params[n].numel() for n in self.layers])]
        self._expected: int | None = self.budget  # exact active count, None after channel events
        self._warned_capacity = False  # the budget no longer fits in the live channels
        self._ceiling = self.budget  # most active weights allowed until the next update
        self._changed()
        # every rank now holds rank 0's masks; make the surviving weights agree as well
        distributed.broadcast_tensors([self.masks.params[n] for n in self.layers])
        self._hook = None
        if attach:
            if optimizer is None:
                raise ConfigError("attach=True needs an optimizer; pass attach=False instead")
            self._hook = optimizer.register_step_post_hook(lambda *_: self.after_step())

    # -- construction ------------------------------------------------------------------------
    def _check_shrink(self, model: nn.Module, on_shrink: Any) -> None:
        ch = self.config.channels
        if ch is None or not ch.shrink:
            return
        if self.resizer is None:
            raise ConfigError(
                "ChannelConfig.shrink needs the model surgery chase.sparsify provides: build "
                "the engine with chase.sparsify(..., example_inputs=...)"
            )
        if model is not self.model and on_shrink is None:
            raise ConfigError(
                f"ChannelConfig.shrink changes parameter shapes, and the model is wrapped "
                f"({type(model).__name__}): pass on_shrink= to rebuild the wrapper after each "
                "shrink, or sparsify the bare model"
            )

    def on_shrink(self, callback: Callable[[ShrinkEvent], None]) -> None:
        """Call ``callback(event)`` after every shrink, once the model, the optimizer state and
        the engine are all cut; rebuild anything that holds parameter shapes there."""
        self._shrink_hooks.append(callback)

    def _initial_masks(self, params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
        """Exactly ``targets[n]`` active positions per layer, chosen uniformly at random."""
        masks = {}
        for n in self.layers:
            k = self.targets[n]
            if k >= params[n].numel():
                mask = torch.ones(self.shapes[n], dtype=torch.bool)
            else:
                noise = torch.rand(self.shapes[n], generator=self.generator)
                mask = top_k_mask(noise, k)
            masks[n] = mask.to(params[n].device)
        return masks

    def detach(self) -> None:
        """Stop acting after optimizer steps (the masks stay applied)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # -- the per-step path -------------------------------------------------------------------
    def after_step(self) -> None:
        """Advance the clock after one real optimizer step and run any due event."""
        self.step += 1
        t = self.step
        if self.updater.dense_grad == "every":
            self.updater.observe({n: self.masks.params[n] for n in self.layers})
        self.masks.apply(self.optimizer)
        changed = removed = False
        event = self.channels is not None and is_channel_event(self.config, t)
        if event and self.channels.event(t, self.generator):  # type: ignore[union-attr]
            self._after_channel_event()
            changed = removed = True
        if self.updater.rewires and is_update_step(self.config, t):
            self._update(t)
            changed = True
        if changed:
            self._changed()
        if removed and self.resizer is not None:
            self._shrink()

    def _changed(self) -> None:
        """Make every rank hold rank 0's masks, apply them, and record the active counts."""
        if distributed.world_size() > 1:
            tensors = [self.masks[n] for n in self.layers]
            if self.channels is not None:
                tensors.append(self.channels.alive)
            distributed.broadcast_bool(tensors)
            if self.channels is not None:
                self.channels.resync()
        self.masks.apply(self.optimizer)
        self.trajectory.append((self.step, self.masks.counts()))

    def _shrink(self) -> None:
        """Cut the removed channels out of the model, its optimizer state, the masks and the
        updater's state, then tell the ``on_shrink`` callbacks."""
        assert self.resizer is not None and self.channels is not None
        if self.optimizer is None:  # before anything is cut: the caller's optimizer would break
            raise ConfigError(
                "ChannelConfig.shrink cuts the optimizer's state along with the model, and this "
                "engine has no optimizer: pass it to chase.sparsify (attach=False keeps the "
                "loop yours)"
            )
        step = self.resizer.shrink(self.channels.keep(), self.optimizer)
        if step is None:
            return
        self._cut_state(step)
        if distributed.mismatched(self._layout_vectors()):
            raise InvariantError(f"step {self.step}: the processes shrank the model differently")
        self.shrinks.append(self.step)
        self.sizes.append((self.step, [self.masks.params[n].numel() for n in self.layers]))
        shapes = {n: tuple(self.masks.params[n].shape) for n in self.layers}
        event = ShrinkEvent(self.step, int(step.removed()), shapes)
        log.debug("step %d: shrank the model by %d positions", self.step, event.removed)
        for hook in self._shrink_hooks:
            hook(event)

    def _cut_state(self, step: Any) -> None:
        """After the resizer cut the model by ``step``: cut masks and updater state alike."""
        assert self.resizer is not None
        resizer = self.resizer
        self.masks.shrunk(resizer.cut(dict(self.masks.items()), step), resizer.kept())
        self.updater.shrunk(lambda tensors: resizer.cut(tensors, step))
        if self.channels is not None:
            self.channels.rebase()

    def _layout_vectors(self) -> list[torch.Tensor]:
        """The kept positions of every cut axis as bool vectors (compared across ranks)."""
        assert self.resizer is not None
        out = []
        for _, axes in sorted(self.resizer.kept().items()):
            for _, kept in sorted(axes.items()):
                vec = torch.zeros(int(kept.max()) + 1 if kept.numel() else 0, dtype=torch.bool)
                vec[kept] = True
                out.append(vec)
        return out

    @property
    def layout(self) -> Any:
        """The cut applied to the live model so far (a ``SlimSpec`` in original coordinates),
        or None when the model has its original shape."""
        return None if self.resizer is None else getattr(self.resizer, "layout", None)

    def _after_channel_event(self) -> None:
        self._expected = None  # active <= budget until the next weight update regrows
        if self.config.scope == "layer":
            live = {n: self.masks.live_shape(n) for n in self.layers}
            caps = {n: self.masks.capacity(n) for n in self.layers}
            self.targets = allocate(
                live,
                self.budget,
                self.config.allocation,
                self.config.erk_power,
                dense=[n for n in self.layers if n in self.pinned],
                capacity=caps,
            )

    def _update(self, t: int) -> None:
        counts = dict(zip(self.layers, self.masks.counts()))
        free = [n for n in self.layers if n not in self.pinned]
        pinned_active = sum(self.masks.capacity(n) for n in self.pinned)
        layers = [
            Layer(
                name=n,
                weight=self.masks.params[n],
                mask=self.masks[n],
                region=self.masks.region(n),
                active=counts[n],
                capacity=self.masks.capacity(n),
                target=self.targets[n],
                pinned=False,
            )
            for n in free
        ]
        ctx = Context(t, self.total, self.budget - pinned_active, pinned_active, self.generator)
        plan = self.updater.plan(ctx, layers)
        for name, mask in rewire(layers, plan, self.updater, self.generator).items():
            self.masks.set(name, mask)
        self.update_steps.append(t)
        capacity = sum(lay.capacity for lay in layers) + pinned_active
        self._ceiling = self.updater.ceiling(t, self.budget, self.total)
        self._expected = min(self._ceiling, capacity)
        if capacity < self.budget and not self._warned_capacity:
            self._warned_capacity = True
            log.warning(
                "step %d: the live channels hold only %d weights, fewer than the budget of %d; "
                "every live weight is active and the density stays below its target "
                "(lower channels.sparsity or raise density)",
                t,
                capacity,
                self.budget,
            )

    # -- inspection --------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Plain-dict snapshot: step, active, budget, density, per-layer counts, channels."""
        counts = self.masks.counts()
        active = sum(counts)
        out: dict[str, Any] = {
            "step": self.step,
            "active": active,
            "budget": self.budget,
            "total": self.total,
            "density": active / self.total,
            "layers": {
                n: {"active": c, "total": self._original(n), "density": c / self._original(n)}
                for n, c in zip(self.layers, counts)
            },
        }
        if self.channels is not None:
            out["channels"] = self.channels.summary()
        return out

    def _original(self, name: str) -> int:
        """Size of a weight in the original model (the budget is defined there)."""
        return math.prod(self.masks.original_shapes[name])

    def record(self, total_steps: int) -> EngineRecord:
        """The run's plain records for measurement, over its first ``total_steps`` steps."""
        return EngineRecord(
            original={n: self._original(n) for n in self.layers},
            active=dict(zip(self.layers, self.masks.counts())),
            trajectory=[(t, dict(zip(self.layers, c))) for t, c in self.trajectory],
            sizes=[(t, dict(zip(self.layers, c))) for t, c in self.sizes],
            dense_grad_iterations=self.dense_grad_iterations(total_steps),
            params_original=sum(math.prod(s) for s in self.masks.original_shapes.values()),
        )

    def dense_grad_iterations(self, total_steps: int) -> list[int]:
        """Training iterations (0-based) at which this run read the dense weight gradient:
        the iteration before each gradient-based update, or every one (SNFS)."""
        if self.updater.dense_grad == "every":
            return list(range(total_steps))
        if self.updater.dense_grad == "update":
            return [t - 1 for t in self.update_steps if 0 < t <= total_steps]
        return []

    def channel_report(self, ratio: float = 0.5) -> dict[str, Any]:
        """Per-group channel densities and UMM scores, and the sparse-amenable fraction."""
        if self.groups is None:
            raise ConfigError("channel_report needs channel groups: pass example_inputs")
        keep = self.channels.keep() if self.channels is not None else None
        return channel_report(self.groups, self.masks, keep, ratio)

    def check(self) -> None:
        """Verify every invariant; raise ``InvariantError`` naming each broken one."""
        problems = self.masks.check()
        counts = self.masks.counts()
        for n, count in zip(self.layers, counts):
            if n in self.pinned and count != self.masks.capacity(n):
                problems.append(f"{n}: keep_dense layer is not dense")
        active = sum(counts)
        if self._expected is not None and active != self._expected:
            problems.append(f"{active} active weights, expected exactly {self._expected}")
        if active > self._ceiling:
            problems.append(f"{active} active weights exceed the bound {self._ceiling}")
        if self.channels is not None:
            problems += self.channels.check()
        tensors = [self.masks[n] for n in self.layers]
        if distributed.mismatched(tensors):
            problems.append("masks differ between ranks")
        if self.resizer is not None and distributed.mismatched(self._layout_vectors()):
            problems.append("model shapes differ between ranks")
        if problems:
            raise InvariantError("sparsity engine check failed: " + "; ".join(problems))

    # -- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Masks, clock, RNG, targets, updater and channel state (plain tensors and dicts)."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "step": self.step,
            "layers": list(self.layers),
            "masks": {n: self.masks[n].cpu().clone() for n in self.layers},
            "rng": self.generator.get_state(),
            "targets": dict(self.targets),
            "expected": self._expected,
            "ceiling": self._ceiling,
            "updater": self.updater.state_dict(),
            "channels": None if self.channels is None else self.channels.state_dict(),
            "trajectory": [[t, list(c)] for t, c in self.trajectory],
            "update_steps": list(self.update_steps),
            "layout": None if self.resizer is None else self.resizer.state(),
            "shrinks": list(self.shrinks),
            "sizes": [[t, list(c)] for t, c in self.sizes],
        }

    def load_structure(self, state: dict[str, Any]) -> None:
        """Cut a freshly built model to the shape a saved state had (a no-op for a state
        written before any shrink). Call it before loading the model's and the optimizer's
        states, which have that shape; ``load_state_dict`` calls it too."""
        layout = state.get("layout") if isinstance(state, dict) else None
        if layout is None:
            return
        if self.resizer is None:
            raise CheckpointError(
                "engine state holds a shrunk model, but this engine does not shrink "
                "(ChannelConfig.shrink is off)"
            )
        step = self.resizer.load(layout, self.optimizer)
        if step is not None:
            self._cut_state(step)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state into an engine built for the same model and config."""
        version = state.get("version") if isinstance(state, dict) else None
        if version != STATE_VERSION:
            raise CheckpointError(
                f"engine state has version {version}, this version of chase reads {STATE_VERSION}"
            )
        if list(state["layers"]) != self.layers:
            raise CheckpointError("engine state was saved for a model with other layers")
        if (state["channels"] is None) != (self.channels is None):
            raise CheckpointError("engine state and config disagree on channel pruning")
        self.load_structure(state)
        self.step = int(state["step"])
        self.generator.set_state(state["rng"])
        self.targets = dict(state["targets"])
        self._expected = state["expected"]
        self._ceiling = int(state["ceiling"])
        self.masks.clear_channels()  # the channel pruner re-applies its saved live state
        for n in self.layers:
            self.masks.set(n, state["masks"][n].to(torch.bool))
        self.updater.load_state_dict(state["updater"])
        if self.channels is not None:
            self.channels.load_state_dict(state["channels"])
        self.trajectory = [(int(t), list(c)) for t, c in state["trajectory"]]
        self.update_steps = [int(t) for t in state["update_steps"]]
        self.shrinks = [int(t) for t in state.get("shrinks", [])]
        if "sizes" in state:  # states written before shrinking existed have the original sizes
            self.sizes = [(int(t), list(c)) for t, c in state["sizes"]]
        self.masks.apply(self.optimizer)
