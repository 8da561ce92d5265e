"""Optimizers and learning-rate schedules from the spec's `optim` and `schedule` sections."""

from __future__ import annotations

import math

import torch
from torch import nn


def make_optimizer(model: nn.Module, optim: dict) -> torch.optim.Optimizer:
    # Weight decay on matrices only: decaying biases and norm gains hurts and helps nothing.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": optim["weight_decay"]}, {"params": rest, "weight_decay": 0.0}]
    name, lr = optim["name"], optim["lr"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=optim["momentum"])
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=tuple(optim["betas"]))


def lr_factor(schedule: dict, step: int, total_steps: int) -> float:
    """Multiplier of the peak lr at `step` (0-based), warm-up included."""
    warm = schedule["warmup_steps"]
    if step < warm:
        return (step + 1) / warm
    name = schedule["name"]
    if name == "step":
        return schedule["gamma"] ** ((step - warm) // schedule["step_size"])
    if name == "cosine":
        span = max(1, total_steps - warm)
        progress = min(1.0, (step - warm) / span)
        floor = schedule["min_lr_ratio"]
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def make_scheduler(optimizer, schedule: dict, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(schedule, step, total_steps))
