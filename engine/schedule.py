"""The learning-rate schedule as a pure function, without torch, so the run form can plot it
as the user types and the training loop's scheduler follows exactly the same curve."""

from __future__ import annotations

import math


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
