"""Checkpoint files: written atomically, read with `weights_only=True`.

A checkpoint is a plain dict of tensors and builtins (model, optimizer, scheduler and scaler
state, step, epoch, RNG state and the graph), so loading it never unpickles code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from engine.errors import StoreError

FORMAT = "trainbench.checkpoint/1"


def save_atomic(state: dict, path: str | Path) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over the target:
    a kill during the save leaves the previous file intact, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format": FORMAT, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise StoreError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StoreError(f"{path}: not a Trainbench checkpoint (no {FORMAT!r} marker)")
    return state
