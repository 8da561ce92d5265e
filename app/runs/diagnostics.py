"""What the monitor shows of a run's diagnostics, in one object it creates and ticks: the
live-control row (`ControlBar`), the Health tab (`HealthPanel`) and the markers of the run's
changes on every curve (`EventMarkers`), all fed by one reader of the run's events."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QWidget

from app.runs.control_bar import ControlBar
from app.runs.health_panel import HealthPanel
from app.runs.live import LiveRun
from app.runs.run_events import EventMarkers, RunEventsFeed


class RunDiagnostics:
    def __init__(self, live: LiveRun, db_path: Path | None, parent: QWidget | None = None):
        if db_path is None:
            from engine.store import default_db_path

            db_path = default_db_path()
        self.live = live
        self.feed = RunEventsFeed(Path(db_path))
        self.control_bar = ControlBar(live, self.feed, parent)
        self.health = HealthPanel(live, self.feed, parent)
        self.markers = EventMarkers()
        self._read_ended = False  # a run that ended has had its events read once since

    def refresh(self, plots) -> None:
        """On the monitor's tick: new events (about once a second while the run is live, once
        after it ended), then every view."""
        self.feed.set_run(self.live.run_id)
        if self.live.live:
            self.feed.poll()
            self._read_ended = False
        elif not self._read_ended and self.feed.run_id is not None:
            self.feed.poll(force=True)
            self._read_ended = True
        self.control_bar.refresh()
        if self.health.isVisible():
            self.health.refresh()
        self.markers.sync(plots, self.feed.events)
