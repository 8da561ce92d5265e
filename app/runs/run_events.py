"""A run's recorded events in the GUI — the changes made to it while it ran and what its health
checks found — read from the store, and the changes drawn as markers on its curves.

The store is the one source for every run, whoever started it (a run the GUI launched, one
started in a terminal, one reattached after a restart), so the monitor reads events there
rather than from its own event stream: `RunEventsFeed.poll()` asks for events newer than the
last one seen, at most once a second, through a read-only connection.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPen

from app import theme
from engine.control import describe
from engine.errors import StoreError
from engine.store import RunStore

POLL_S = 1.0


class RunEventsFeed:
    """The events of one run, growing as the run records more."""

    def __init__(self, db_path: Path | None):
        self.db_path = db_path
        self.run_id: int | None = None
        self.events: list[dict] = []
        self.version = 0  # bumped when events arrive
        self._store: RunStore | None = None
        self._last_poll = float("-inf")

    def set_run(self, run_id: int | None) -> None:
        if run_id != self.run_id:
            self.run_id, self.events, self._last_poll = run_id, [], float("-inf")
            self.version += 1

    @property
    def store(self) -> RunStore | None:
        if self._store is None and self.db_path is not None and Path(self.db_path).exists():
            try:
                self._store = RunStore(self.db_path, readonly=True)
            except StoreError:
                return None
        return self._store

    def poll(self, force: bool = False) -> bool:
        """Read what is new (at most every POLL_S unless `force`); True when something came."""
        now = time.monotonic()
        if self.run_id is None or (not force and now - self._last_poll < POLL_S) or self.store is None:
            return False
        self._last_poll = now
        try:
            new = self.store.run_events(self.run_id, after_id=self.events[-1]["id"] if self.events else 0)
        except StoreError:
            return False
        if new:
            self.events += new
            self.version += 1
        return bool(new)

    def of_kind(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["kind"] == kind]

    def paused(self) -> bool:
        """Whether the run's last pause or resume was a pause."""
        for e in reversed(self.of_kind("control")):
            if e["data"].get("command") in ("pause", "resume"):
                return e["data"]["command"] == "pause"
        return False

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def marker_text(event: dict) -> str:
    data = event["data"]
    cmd = data.get("command")
    if cmd == "lr":
        return f"lr {data['value']:g}"
    if cmd == "lr_scale":
        return f"lr ×{data['value']:g}"
    if cmd in ("steps", "epochs"):
        return f"→ {data.get('total', 0):,} steps"
    return describe(data)


class EventMarkers:
    """A dashed vertical line at each step the run was changed, on every plot it is given,
    labelled with what changed there (several changes at one step share a line)."""

    def __init__(self):
        self._lines: dict[int, dict[int, pg.InfiniteLine]] = {}  # id(plot) → step → line
        self._seen: dict[int, set[int]] = {}  # id(plot) → event ids drawn

    def sync(self, plots, events: list[dict]) -> None:
        changes = [e for e in events if e["kind"] == "control" and e["data"].get("command") != "ignored"]
        if not changes:
            return
        by_step: dict[int, list[dict]] = {}
        for e in changes:
            by_step.setdefault(e["step"], []).append(e)
        for plot in plots:
            seen = self._seen.setdefault(id(plot), set())
            if seen.issuperset(e["id"] for e in changes):
                continue
            lines = self._lines.setdefault(id(plot), {})
            for step, at in by_step.items():
                line = lines.get(step)
                if line is None:
                    line = lines[step] = self._line(step)
                    plot.plot_item.addItem(line, ignoreBounds=True)
                line.label.setFormat(" · ".join(marker_text(e) for e in at))
                line.setToolTip("\n".join(f"step {step:,}: {describe(e['data'])}" for e in at))
                seen.update(e["id"] for e in at)

    @staticmethod
    def _line(step: int) -> pg.InfiniteLine:
        pen = QPen(QColor(theme.current().accent))
        pen.setStyle(Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        line = pg.InfiniteLine(
            pos=step,
            angle=90,
            movable=False,
            pen=pen,
            label="",
            labelOpts={"position": 0.92, "color": theme.current().subtext, "rotateAxis": (1, 0)},
        )
        line.setProperty("run_event_step", step)
        return line

    def lines(self, plot) -> list[pg.InfiniteLine]:
        return list(self._lines.get(id(plot), {}).values())
