"""Reading a run back from the store: its whole history when it is opened, and new points as
they are written while it runs in a process this window did not start (a run reattached after
the app restarted, or one started from the command line).

Following is polling, by design: the store is the only channel to such a process. Each poll
reads the chunks written since the last one (`RunStore.series_since`), the run's row, and the
new lines of its run.log — a few small queries, about every half second.

No progress events come this way, so step, elapsed time and ETA are read off the record: the
step from the loss curve; the elapsed time as the run's summary states it once it has ended,
else as the loss curve's wall clock shows it — the time between consecutive points, leaving out
gaps of PAUSE_S or more (the run was stopped and later resumed), so it counts the run's whole
active life like the engine does; the ETA from the steps per second of the last RATE_WINDOW_S.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path

import numpy as np

from app.runs.live import LiveRun
from engine.store import RunStore

CLOCK_KEY = "train/loss"  # logged every step: its wall times are the run's clock
PAUSE_S = 60.0  # a gap this long between two logged steps is not training time
RATE_WINDOW_S = 30.0  # the ETA's rate: steps per second over this much of the latest training
LOG_LEVELS = {"INFO": "info", "WARN": "warning", "WARNING": "warning", "ERROR": "error", "DEBUG": "info"}


def parse_log_line(line: str) -> tuple[float | None, str, str]:
    """A run.log line, `YYYY-mm-dd HH:MM:SS LEVEL message`, as (time, level, message)."""
    parts = line.split(None, 3)
    if len(parts) >= 3 and parts[2] in LOG_LEVELS:
        try:
            t = time.mktime(time.strptime(f"{parts[0]} {parts[1]}", "%Y-%m-%d %H:%M:%S"))
        except ValueError:
            t = None
        return t, LOG_LEVELS[parts[2]], parts[3] if len(parts) > 3 else ""
    return None, "info", line


class RunReader:
    """Reads one run from the store into a LiveRun: everything at first, then what is new."""

    def __init__(self, store: RunStore, live: LiveRun):
        self.store, self.live = store, live
        self.seqs: dict[str, int] = {}  # metric key → last chunk read
        self.log_offset = 0
        self.active_s = 0.0  # training time up to the last logged step (see the module docstring)
        self._last_wall: float | None = None
        self._recent: deque[tuple[float, float]] = deque()  # (wall, step) of the latest training

    @property
    def log_path(self) -> Path:
        return self.store.artifacts_root / f"run-{self.live.run_id}" / "run.log"

    def load(self) -> None:
        """The run's row, every metric point and its log so far (replacing what the LiveRun had)."""
        self.live.load_row(self.store.get_run(self.live.run_id))
        for key in self.store.series_summaries(self.live.run_id):
            steps, values, walls, seq = self.store.series_since(self.live.run_id, key)
            self.live.buffer(key).replace(steps, values)
            self.seqs[key] = seq
            if key == CLOCK_KEY:
                self._clock(steps, walls)
        self.live.logs.clear()
        self.log_offset = 0
        self._read_log()
        self.live.checkpoints = [
            {"step": c["step"], "path": c["path"], "tag": c["tag"]}
            for c in self.store.checkpoints(self.live.run_id)
        ]
        self._derive_progress()
        self.live.touch()

    def poll(self) -> None:
        """New points, log lines and the row's status since the last read."""
        run_id = self.live.run_id
        for key in self.store.series_summaries(run_id):
            steps, values, walls, seq = self.store.series_since(run_id, key, self.seqs.get(key, -1))
            if len(steps):
                self.live.add_points(key, steps, values)
                self.seqs[key] = seq
                if key == CLOCK_KEY:
                    self._clock(steps, walls)
        self._read_log()
        self.store.reap()  # a dead process shows up as crashed in the row read next
        row = self.store.get_run(run_id)
        was_live = self.live.live
        status = "stopping" if self.live.status == "stopping" and row["status"] == "running" else None
        self.live.load_row(row)
        if status:
            self.live.set_status(status)
        self._derive_progress()
        if was_live and not self.live.live:
            _reap_child(row.get("pid") or self.live.pid)

    def _read_log(self) -> None:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(self.log_offset)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # whole lines only; the rest is read next time
        self.log_offset += end
        for raw in data[:end].decode("utf-8", "replace").splitlines():
            if raw.strip():
                t, level, text = parse_log_line(raw)
                self.live.add_log(level, text, t)

    def _clock(self, steps: np.ndarray, walls: np.ndarray) -> None:
        """Count the training time and the recent rate in a new batch of clock points."""
        if not len(walls):
            return
        walls = np.asarray(walls, dtype=np.float64)
        joined = walls if self._last_wall is None else np.concatenate([[self._last_wall], walls])
        gaps = np.diff(joined)
        self.active_s += float(gaps[(gaps > 0) & (gaps < PAUSE_S)].sum())
        paused = np.flatnonzero(gaps >= PAUSE_S)
        if len(paused):  # a resume: the rate before it says nothing about now
            self._recent.clear()
            after = int(paused[-1]) + (1 if self._last_wall is None else 0)  # the first point after it
            steps, walls = steps[after:], walls[after:]
        self._last_wall = float(walls[-1])
        since = min(len(walls) - 1, int(np.searchsorted(walls, self._last_wall - RATE_WINDOW_S)))
        self._recent.extend([(float(walls[since]), float(steps[since])), (self._last_wall, float(steps[-1]))])
        while self._recent and self._recent[0][0] < self._last_wall - RATE_WINDOW_S:
            self._recent.popleft()

    def _rate(self) -> float | None:
        """Steps per second over the latest training, None when it cannot tell."""
        if len(self._recent) < 2:
            return None
        (w0, s0), (w1, s1) = self._recent[0], self._recent[-1]
        return (s1 - s0) / (w1 - w0) if w1 > w0 and s1 > s0 else None

    def _derive_progress(self) -> None:
        """Step, epoch, elapsed and ETA from the stored record (no progress events here)."""
        live = self.live
        loss = live.series.get(CLOCK_KEY)
        step = int(loss.x[-1]) if loss is not None and loss.n else live.step
        epoch_buf = live.series.get("train/epoch")
        epoch = float(epoch_buf.y[-1]) if epoch_buf is not None and epoch_buf.n else None
        total = live.summary.get("total_steps") or live.total_steps
        elapsed, eta = live.summary.get("elapsed_s"), None
        if (elapsed is None or live.live) and self._last_wall is not None:
            elapsed = self.active_s
            if live.live:  # training goes on between the last stored point and now (the store lags ≤ 1 s)
                elapsed += min(max(0.0, time.time() - self._last_wall), PAUSE_S)
        rate = self._rate()
        if live.live and total and rate:
            eta = max(0, total - step) / rate
        live.set_progress(step, total, epoch, elapsed, eta)


def _reap_child(pid: int | None) -> None:
    """A run released by an earlier window of this same process is our child: collect it, so it
    does not linger as a zombie. Not our child: nothing happens."""
    if not pid or not hasattr(os, "waitpid"):
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass
