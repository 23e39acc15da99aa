"""Optimizer and learning-rate schedule of a run (one ``LambdaLR`` stepped per iteration)."""

from __future__ import annotations

import math

import torch
from torch import nn

from chase.train.config import OptimConfig, ScheduleConfig


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD or AdamW; with ``decay_norm_and_bias: false`` biases and norm parameters (every
    parameter with fewer than two dimensions) get no weight decay."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.dim() < 2 and not cfg.decay_norm_and_bias else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def lr_factor(cfg: ScheduleConfig, it: int, total: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate at iteration ``it`` (0-based) of ``total``."""
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if it < warmup:
        return (it + 1) / warmup
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "cosine":
        span = max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (it - warmup) / span)))
    passed = sum(1 for m in cfg.milestones if it >= round(m * total))
    return float(cfg.gamma**passed)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(cfg, it, total, steps_per_epoch)
    )
