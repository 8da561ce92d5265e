"""What a run does: train, prune or distill. Each task is `run(ctx: TaskContext) -> summary`
(see `engine.tasks.context`), and imports nothing from the runner that calls it."""

from __future__ import annotations

from collections.abc import Callable


def task_for(kind: str) -> Callable:
    if kind == "train":
        from engine.tasks.train import run
    elif kind == "prune":
        from engine.tasks.prune import run
    elif kind == "distill":
        from engine.tasks.distill import run
    else:
        raise ValueError(kind)
    return run
