"""Reading a run back from the store: its whole history when it is opened, and new points as
they are written while it runs in a process this window did not start (a run reattached after
the app restarted, or one started from the command line).

Following is polling, by design: the store is the only channel to such a process. Each poll
reads the chunks written since the last one (`RunStore.series_since`), the run's row, and the
new lines of its run.log — a few small queries, about every half second.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from app.runs.live import LIVE, LiveRun
from engine.store import RunStore

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

    @property
    def log_path(self) -> Path:
        return self.store.artifacts_root / f"run-{self.live.run_id}" / "run.log"

    def load(self) -> None:
        """The run's row, every metric point and its log so far (replacing what the LiveRun had)."""
        self.live.load_row(self.store.get_run(self.live.run_id))
        for key in self.store.series_summaries(self.live.run_id):
            steps, values, _walls, seq = self.store.series_since(self.live.run_id, key)
            self.live.buffer(key).replace(steps, values)
            self.seqs[key] = seq
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
            steps, values, _walls, seq = self.store.series_since(run_id, key, self.seqs.get(key, -1))
            if len(steps):
                self.live.add_points(key, steps, values)
                self.seqs[key] = seq
        self._read_log()
        self.store.reap()  # a dead process shows up as crashed here
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

    def _derive_progress(self) -> None:
        """Step, epoch, elapsed and ETA from the stored curves (no progress events here)."""
        live = self.live
        loss = live.series.get("train/loss")
        step = int(loss.x[-1]) if loss is not None and loss.n else live.step
        epoch_buf = live.series.get("train/epoch")
        epoch = float(epoch_buf.y[-1]) if epoch_buf is not None and epoch_buf.n else None
        total = live.summary.get("total_steps") or live.total_steps
        elapsed = eta = None
        if live.started_at:
            end = live.ended_at if (live.ended_at and live.status not in LIVE) else time.time()
            elapsed = max(0.0, end - live.started_at)
            if total and step and live.live:
                eta = elapsed / step * max(0, total - step)
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
