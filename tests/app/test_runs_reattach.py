"""Closing the window with a live run, keeping it in the background, and reopening: the run is
reattached through the store and its curve goes on. Runs that died meanwhile show as crashed."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PySide6.QtCore import QTimer

from app.main import create_window
from app.runs.area import RunsArea
from tests.app.runs_fixtures import curve_end, curve_length, kill_leftovers, spec, wait_status


def alive(pid: int) -> bool:
    from engine.store import pid_alive

    return pid_alive(pid)


def stored(store, run_id: int, key: str = "train/loss") -> int:
    """Points of `key` the store holds for the run."""
    return (store.series_summaries(run_id).get(key) or {}).get("count", 0)


def test_close_and_reopen_while_a_run_is_live_reattaches(
    window, qtbot, monkeypatch, one_thread_engines, store
):
    window.show_area("Runs")
    area = window.area("Runs")
    live = area.start(spec(name="background", train={"max_steps": 100_000}, checkpoint={"every": 10_000}))
    qtbot.waitUntil(lambda: curve_length(area, live) > 0, timeout=60_000)
    # The monitor draws from the event stream; the store gets the same points up to a second
    # later (engine.runner.DB_FLUSH_S). What a reopened window can show is what the store has.
    qtbot.waitUntil(lambda: stored(store, live.run_id) > 0, timeout=60_000)

    asked = []
    monkeypatch.setattr(RunsArea, "ask_close_choice", lambda self, runs: asked.append(runs) or "keep")
    assert window.close()
    assert asked == [[live]]
    pid = live.pid
    assert alive(pid), "keeping the run in the background must not end its process"

    stored_before_reopen = stored(store, live.run_id)
    second = create_window()
    second.resize(1440, 900)
    second.show()
    try:
        second.show_area("Runs")
        reopened = second.area("Runs")
        (followed,) = reopened.live_runs()
        assert followed.run_id == live.run_id and followed.status == "running"
        assert reopened.current_monitor().live is followed  # shown at once
        # with the curve the store holds, read when it was followed, and drawn in its monitor
        loss = followed.series["train/loss"]
        at_reopen = loss.n
        assert at_reopen >= stored_before_reopen and np.array_equal(loss.x, np.arange(1, at_reopen + 1))
        assert curve_length(reopened, followed) > 0
        qtbot.waitUntil(lambda: loss.n > at_reopen + 20, timeout=60_000)  # new points keep coming
        qtbot.waitUntil(lambda: curve_end(reopened, followed) > at_reopen)  # and are drawn
        assert np.array_equal(loss.x, np.arange(1, loss.n + 1))  # the curve continues, no gap, no repeat
        assert followed.step >= at_reopen and followed.total_steps == 100_000

        reopened.current_monitor().stop_button.click()  # a run this window did not start: SIGTERM
        wait_status(qtbot, followed, ("stopped", "crashed", "failed", "completed"))
        assert followed.status == "stopped"
        assert store.get_run(live.run_id)["status"] == "stopped"
        qtbot.waitUntil(lambda: not alive(pid), timeout=10_000)
    finally:
        for built in (second.area("Runs", build=False),):
            if built is not None:
                kill_leftovers(built)
        if pid and alive(pid):
            os.kill(pid, 9)
        second.close()


def test_runs_that_died_while_closed_show_as_crashed(runs_area, qtbot, db_path, store):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    run_id = store.create_run(spec(name="orphan"), status="queued")
    store.start_run(run_id, pid=dead_pid)

    area = RunsArea(db_path)
    qtbot.addWidget(area)
    area.show()
    try:
        (crashed,) = area.launcher.crashed_while_away
        assert crashed.run_id == run_id and crashed.status == "crashed"
        assert area.notice.isVisible() and "marked crashed" in area.notice.text()
        assert "ended without reporting" in (crashed.error or "")
        titles = [area.list_model.data(area.list_model.index(i)) for i in range(area.list_model.rowCount())]
        assert f"#{run_id} orphan" in titles
        assert store.get_run(run_id)["status"] == "crashed"
    finally:
        area.shutdown()


def test_closing_asks_and_stop_ends_the_runs_gracefully(window, qtbot, one_thread_engines, store):
    from PySide6.QtWidgets import QApplication, QMessageBox

    window.show_area("Runs")
    area = window.area("Runs")
    live = area.start(spec(name="stop-at-close", train={"max_steps": 100_000}, checkpoint={"every": 10_000}))
    qtbot.waitUntil(lambda: curve_length(area, live) > 0, timeout=60_000)
    seen = []

    def answer(button_text: str) -> None:
        box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
        seen.append(box.text())
        next(b for b in box.buttons() if b.text() == button_text).click()

    QTimer.singleShot(200, lambda: answer("Cancel"))
    assert not window.close()  # cancelled: the window and the run stay
    assert live.live and "1 run is still going" in seen[0] and live.title in seen[0]

    QTimer.singleShot(200, lambda: answer("Stop it"))
    assert window.close()
    # the process was told to stop, then let go: it saves its checkpoint and records `stopped`
    qtbot.waitUntil(lambda: store.get_run(live.run_id)["status"] != "running", timeout=60_000)
    row = store.get_run(live.run_id)
    assert row["status"] == "stopped"
    assert any(c["tag"] == "stop" for c in store.checkpoints(live.run_id))
