"""Where a sweep's trials run: a pool of slots, one trial at a time in each.

On CUDA every selected GPU (`hardware.gpus`, default: every visible one) gives `per_gpu`
slots; on a CPU there are `parallel` slots. Either way the cores are divided among the
slots: each trial's `hardware.threads` is the cores over the trials at once (unless the spec
sets it), so trials × threads ≤ cores. Measured here: two digits runs side by side on two
cores took 47.5 s with every run on every core and 8.4 s with one thread each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.memory import device_plan


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: int | None  # a CUDA device index, or None off CUDA
    threads: int

    def place(self, spec: dict) -> dict:
        """The trial's spec on this slot: its GPU and its CPU threads."""
        hw = dict(spec["hardware"])
        if self.gpu is not None:
            hw.update(device="cuda", gpus=[self.gpu], nproc_per_node=None)
        hw["threads"] = self.threads
        return {**spec, "hardware": hw}

    @property
    def label(self) -> str:
        return f"cuda:{self.gpu}" if self.gpu is not None else "cpu"


def plan_slots(
    spec: dict, parallel: int, per_gpu: int = 1, cores: int | None = None, gpus: list[int] | None = None
) -> tuple[list[Slot], str]:
    """The slots for the sweep of `spec`, and one line saying how the machine is shared.
    `cores` and `gpus` default to this machine's (GPUs told without importing torch)."""
    cores = cores or _cores()
    hw = spec["hardware"]
    if gpus is None:
        # One process per GPU on one machine: the plan then counts the selected or visible GPUs.
        plan = device_plan({**spec, "hardware": {**hw, "nproc_per_node": None, "nnodes": "1"}})
        on_cuda = plan is not None and plan.device_type == "cuda"
        gpus = (list(plan.gpus) if plan.gpus else list(range(plan.nproc_per_node))) if on_cuda else []
    places: list[int | None] = (
        [g for g in gpus for _ in range(per_gpu)][:parallel] if gpus else [None] * parallel
    )
    threads = hw["threads"] or max(1, cores // len(places))
    slots = [Slot(i, gpu, threads) for i, gpu in enumerate(places)]
    where = f"{len(gpus)} GPU(s), {per_gpu} trial(s) each" if gpus else "the CPU"
    note = f"{len(slots)} trial(s) at once on {where}; {threads} CPU thread(s) each of {cores} cores"
    if len(slots) < parallel:
        note += f" (sweep.parallel is {parallel}: more than the GPUs × sweep.per_gpu)"
    return slots, note


def _cores() -> int:
    """The cores this process may use, as `engine.runner.cpu_cores` counts them, without
    importing the runner (and with it torch): the sweep process never trains."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
