"""Checkpoint files: written atomically, read with `weights_only=True`.

A checkpoint is a plain dict of tensors and builtins (model, optimizer, scheduler and scaler
state, step, epoch, elapsed time, RNG state and the graph), so loading it never unpickles code.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import torch

from engine.errors import StoreError
from engine.store import no_space

FORMAT = "trainbench.checkpoint/1"
_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def save_atomic(state: dict, path: str | Path) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over the target:
    a kill during the save leaves the previous file intact, never a truncated one (and at
    most a `*.tmp` file, which `remove_partial` clears when the run is next claimed).

    A full disk or a file size limit raises StoreError("no space left on <path> ..."); torch
    reports those only as `inline_container.cc` RuntimeErrors, so the file's own writes are
    watched for the OS error behind them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise StoreError(_os_message(path, err)) from None
    watched = None
    try:
        with os.fdopen(fd, "wb") as fh:
            watched = _WatchedFile(fh)
            torch.save({"format": FORMAT, **state}, watched)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        cause = (watched and watched.error) or (err if isinstance(err, OSError) else None)
        if cause is None or not isinstance(err, RuntimeError | OSError):
            raise
        raise StoreError(_os_message(path, cause)) from None
    return path


def _os_message(path: Path, err: OSError) -> str:
    if err.errno in _NO_SPACE:
        return no_space(path, err.errno)
    return f"{path}: cannot write the checkpoint ({err.strerror or err})"


class _WatchedFile:
    """A file object for torch.save that remembers the OS error of a failed write."""

    def __init__(self, fh):
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.fh.flush()


def remove_partial(folder: str | Path) -> list[Path]:
    """Delete the temporary files of saves that a kill interrupted (`step-*.pt.*.tmp`); call
    only while holding the run's claim, so no save of a live writer is in flight."""
    removed = []
    for tmp in Path(folder).glob("*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


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
