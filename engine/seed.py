"""Seeding, and the random number generators' state that a checkpoint carries.

A run seeds every generator it may draw from (Python's `random`, NumPy's global generator,
torch on the CPU and on every CUDA device) and saves all of their states in each checkpoint,
so a resumed run draws exactly the numbers (dropout masks, augmentations) it would have drawn
had it never stopped. The states are stored as tensors and builtins, so checkpoints still
load with `weights_only=True`; a checkpoint from before this module holds the torch CPU state
alone under `rng`, and restores as such.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and all CUDA devices); with `deterministic`, ask torch
    for deterministic kernels (warning, not failing, where an op has none). Both ways are set,
    so a process that runs run after run (a sweep's worker) carries neither over."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device, now or when CUDA initialises
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def capture_rng() -> dict:
    """Every generator's state, for a checkpoint."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "python": {
            "version": version,
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": python_gauss,
        },
        "numpy": {
            "kind": kind,
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict | torch.Tensor) -> None:
    """Put back what `capture_rng` saved (or an older checkpoint's torch CPU state)."""
    if isinstance(state, torch.Tensor):
        torch.set_rng_state(state)
        return
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
