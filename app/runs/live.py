"""`LiveRun`: what the app knows about one run it shows — status, progress, metric curves, log.

It is the model the monitor, the run list and the close dialog read; feeds write it (a
`ProcessFeed` from the engine's event stream, a `StoreFeed` by polling the run store). Changes
bump `version`; views compare versions on their timer tick instead of repainting per event,
and only status changes are signalled at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.plots import CurveBuffer
from engine.compare import HEADLINE_METRICS, headline
from engine.store import FINAL

LIVE = ("starting", "running", "stopping")
MAX_LOG_LINES = 20_000


@dataclass(frozen=True)
class LogLine:
    t: float  # unix seconds
    level: str  # info | warning | error | stderr | app
    text: str


class LiveRun(QObject):
    status_changed = Signal(str)

    def __init__(self, run_id: int | None = None, name: str = "run", kind: str = "train", parent=None):
        super().__init__(parent)
        self.run_id = run_id
        self.name = name
        self.kind = kind
        self.status = "starting"
        self.error: str | None = None
        self.summary: dict = {}
        self.spec: dict | None = None
        self.pid: int | None = None
        self.started_at: float | None = None  # unix seconds
        self.ended_at: float | None = None
        # progress, as of the last progress event (elapsed/ETA tick on from then while running)
        self.step = 0
        self.total_steps: int | None = None
        self.epoch: float | None = None
        self.elapsed_s: float | None = None  # the run's active life, across stops and resumes
        self.eta_s: float | None = None
        self._progress_at: float | None = None  # monotonic time elapsed_s/eta_s were true at
        self.resumed_from: int | None = None
        self.series: dict[str, CurveBuffer] = {}
        self.logs: list[LogLine] = []
        self.logs_dropped = 0  # lines dropped from the front beyond MAX_LOG_LINES
        self.checkpoints: list[dict] = []
        self.version = 0

    def __repr__(self) -> str:
        return f"<LiveRun {self.run_id} {self.name!r} {self.status}>"

    # ------------------------------------------------------------ reading

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def title(self) -> str:
        return f"#{self.run_id} {self.name}" if self.run_id is not None else self.name

    def fraction(self) -> float | None:
        if not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)

    def elapsed(self) -> float | None:
        """Seconds of the run's active life — the engine's count, kept across stops and resumes
        (`elapsed_s` of its progress events, or the store's summary once it has ended) — ticking
        between events while it runs. None until the engine has said."""
        if not self.live and self.summary.get("elapsed_s") is not None:
            return float(self.summary["elapsed_s"])
        if self.elapsed_s is None:
            return None
        return self.elapsed_s + self._ticked()

    def eta(self) -> float | None:
        if self.eta_s is None or not self.live:
            return None
        return max(0.0, self.eta_s - self._ticked())

    def _ticked(self) -> float:
        """Seconds since the last progress, while the run trains (a stopped run's clock stands)."""
        if self.status != "running" or self._progress_at is None:
            return 0.0
        return time.monotonic() - self._progress_at

    def headline(self) -> tuple[str, float] | None:
        """The metric a run is judged by (`engine.compare.headline`), from the newest point of
        its curves, else its summary; the training loss until a validation metric exists."""
        last = {k: float(b.y[b.n - 1]) for k, b in self.series.items() if b.n}
        return headline(last, (*HEADLINE_METRICS, "train/loss")) or headline(self.summary)

    # ------------------------------------------------------------ writing

    def touch(self) -> None:
        self.version += 1

    def set_status(self, status: str, error: str | None = None) -> None:
        if error is not None:
            self.error = error
        if status != self.status:
            if self.elapsed_s is not None:  # the clock stands while not running, and restarts
                ticked = self._ticked()
                self.elapsed_s += ticked
                self.eta_s = None if self.eta_s is None else max(0.0, self.eta_s - ticked)
                self._progress_at = time.monotonic()
            self.status = status
            if status in FINAL and self.ended_at is None:
                self.ended_at = time.time()
            self.touch()
            self.status_changed.emit(status)
        elif error is not None:
            self.touch()

    def buffer(self, key: str) -> CurveBuffer:
        buf = self.series.get(key)
        if buf is None:
            buf = self.series[key] = CurveBuffer()
        return buf

    def add_points(self, key: str, steps, values) -> None:
        if len(steps):
            self.buffer(key).extend(np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64))
            self.touch()

    def add_log(self, level: str, text: str, t: float | None = None) -> None:
        self.logs.append(LogLine(t or time.time(), level, text))
        if len(self.logs) > MAX_LOG_LINES:
            cut = len(self.logs) - MAX_LOG_LINES
            del self.logs[:cut]
            self.logs_dropped += cut
        self.touch()

    def set_progress(self, step, total_steps=None, epoch=None, elapsed_s=None, eta_s=None, **_) -> None:
        self.step = int(step)
        if total_steps:
            self.total_steps = int(total_steps)
        self.epoch = epoch
        self.elapsed_s = elapsed_s
        self.eta_s = eta_s
        self._progress_at = time.monotonic()
        self.touch()

    def apply_event(self, ev: dict) -> None:
        """One event of the engine's stream (see engine.events)."""
        kind = ev.get("event")
        if ev.get("run_id") is not None and self.run_id is None:
            self.run_id = int(ev["run_id"])
            self.touch()
        if kind == "metrics":
            for key, (steps, values, _walls) in ev["points"].items():
                self.add_points(key, steps, values)
        elif kind == "progress":
            self.set_progress(
                **{k: ev.get(k) for k in ("step", "total_steps", "epoch", "elapsed_s", "eta_s")}
            )
        elif kind == "log":
            self.add_log(ev.get("level", "info"), ev.get("message", ""), ev.get("t"))
        elif kind == "run_started":
            self.name = ev.get("name") or self.name
            self.kind = ev.get("kind") or self.kind
            self.total_steps = ev.get("total_steps") or self.total_steps
            resumed = ev.get("resumed_from") or 0
            self.resumed_from = resumed
            self.step = resumed
            if resumed:
                # the engine replays the steps after its checkpoint: drop what we have past it
                for buf in self.series.values():
                    buf.truncate_after(resumed)
            if self.started_at is None:
                self.started_at = ev.get("t") or time.time()
            self.set_status("running")
            self.touch()
        elif kind == "checkpoint":
            self.checkpoints.append({"step": ev.get("step"), "path": ev.get("path"), "tag": ev.get("tag")})
            self.add_log("info", f"checkpoint ({ev.get('tag')}) at step {ev.get('step'):,}", ev.get("t"))
        elif kind == "run_ended":
            self.summary = ev.get("summary") or self.summary
            status = ev.get("status", "failed")
            self.set_status(status, ev.get("error"))
            self.ended_at = ev.get("t") or time.time()

    def load_row(self, row: dict) -> None:
        """Header fields from the store's row of this run."""
        self.run_id = row["id"]
        self.name, self.kind = row["name"], row["kind"]
        self.summary = row.get("summary") or {}
        self.spec = row.get("spec")
        self.pid = row.get("pid")
        self.started_at = row.get("started_at")
        self.ended_at = row.get("ended_at")
        self.error = row.get("error")
        self.total_steps = self.summary.get("total_steps") or self.total_steps
        status = row["status"]
        self.set_status(status)
        self.touch()
