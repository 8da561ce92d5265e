"""Helpers for the Runs area tests: a Runs area on a temporary store, example specs with
overrides, and waits on real engine processes that never leave one running."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from engine.spec import validate_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "resources" / "examples"
RUN_TIMEOUT_MS = 60_000  # a generous ceiling for busy machines; tiny runs take a few seconds


def spec(example: str = "digits_mlp", **overrides) -> dict:
    """A validated example spec with `section={field: value}` (or `name="…"`) overrides."""
    doc = json.loads((EXAMPLES / f"{example}.json").read_text())
    for section, values in overrides.items():
        if isinstance(values, dict):
            doc.setdefault(section, {}).update(values)
        else:
            doc[section] = values
    return validate_spec(doc, base_dir=EXAMPLES)


def curve_length(area, live, key: str = "train/loss") -> int:
    """How many points the monitor's plot of `key` has drawn (0 before its plot exists)."""
    monitor = area.monitors.get(id(live))
    if monitor is None:
        return 0
    for plot in monitor.plots.values():
        if plot.has_curve(key):
            data = plot.raw_item(key).xData
            return 0 if data is None else len(data)
    return 0


def curve_end(area, live, key: str = "train/loss") -> float:
    """The last x the monitor's plot of `key` has drawn (0 before it has drawn any): unlike the
    number of points drawn, which stays about a screenful however long the curve, it grows."""
    monitor = area.monitors.get(id(live))
    for plot in monitor.plots.values() if monitor is not None else ():
        if plot.has_curve(key):
            data = plot.raw_item(key).xData
            return 0.0 if data is None or not len(data) else float(data[-1])
    return 0.0


def wait_status(qtbot, live, statuses, timeout: int = RUN_TIMEOUT_MS) -> None:
    statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)
    qtbot.waitUntil(lambda: live.status in statuses, timeout=timeout)


def kill_leftovers(area) -> None:
    """End every engine process a test left running (a failed assertion, say)."""
    for proc in list(area.launcher._processes.values()):
        proc.kill()
    for live in area.launcher.live_runs():
        if live.pid:
            try:
                os.kill(live.pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def one_thread_engines(monkeypatch):
    """Engine processes use one torch thread: on a busy 2-core machine, two threads per run
    contend with the test process and each other (measured: 37 s instead of 5 s for 400 steps)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture
def runs_area(qtbot, db_path, one_thread_engines):
    from app.runs.area import RunsArea

    area = RunsArea(db_path)
    area.resize(1400, 900)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    yield area
    kill_leftovers(area)
    area.shutdown()
