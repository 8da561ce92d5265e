"""Background runs as OS processes: stop (final checkpoint, stopped) and resume (the curve goes
on from the same step), kill (crashed, and the UI never waits), a run that fails (its error on
the badge), and a second run alongside the first."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer

from app.runs.live import LIVE
from tests.app.runs_fixtures import EXAMPLES, curve_length, spec, wait_status


def test_stop_mid_run_then_resume_continues_from_the_same_step(runs_area, qtbot, store):
    area = runs_area
    total = 4000  # long enough that the stop lands mid-run on a loaded machine too
    live = area.start(spec(name="stop-resume", train={"max_steps": total}, checkpoint={"every": 10_000}))
    qtbot.waitUntil(lambda: curve_length(area, live) >= 20, timeout=60_000)
    monitor = area.current_monitor()
    assert monitor.stop_button.isEnabled() and not monitor.resume_button.isEnabled()
    monitor.stop_button.click()
    assert live.status == "stopping"
    wait_status(qtbot, live, ("stopped", "completed", "failed", "crashed"))
    assert live.status == "stopped", live.error

    row = store.get_run(live.run_id)
    stopped_at = row["summary"]["steps"]
    assert row["status"] == "stopped" and 0 < stopped_at < total
    (checkpoint,) = [c for c in store.checkpoints(live.run_id) if c["tag"] == "stop"]
    assert checkpoint["step"] == stopped_at
    loss = live.series["train/loss"]
    assert loss.x[-1] == stopped_at

    qtbot.waitUntil(monitor.resume_button.isEnabled)
    monitor.resume_button.click()
    qtbot.waitUntil(lambda: live.step > stopped_at, timeout=60_000)
    assert live.resumed_from == stopped_at
    wait_status(qtbot, live, ("completed", "stopped", "failed", "crashed"))
    assert live.status == "completed", live.error
    # one curve, every step once, continuing from the checkpoint's step
    assert np.array_equal(loss.x, np.arange(1, total + 1))
    steps, values, _ = store.series(live.run_id, "train/loss")
    assert np.array_equal(steps, np.arange(1, total + 1)) and np.allclose(values, loss.y)
    qtbot.waitUntil(lambda: curve_length(area, live) > 0)
    assert any("resuming run" in line.text for line in live.logs)
    assert any(f"resumed from the checkpoint at step {stopped_at}" in line.text for line in live.logs)


def test_kill_shows_crashed_and_the_ui_never_waits(runs_area, qtbot, store):
    area = runs_area
    live = area.start(spec(name="to-kill", train={"max_steps": 100_000}))
    qtbot.waitUntil(lambda: curve_length(area, live) > 0, timeout=60_000)
    # a probe timer records what the UI saw while the process went down: the event loop kept
    # turning (the probe ran) with the run still live, and the crash arrived through it later
    seen = []
    timer = QTimer(interval=10)
    timer.timeout.connect(lambda: seen.append(live.status))
    timer.start()
    area.current_monitor().kill_button.click()
    right_after = live.status
    wait_status(qtbot, live, ("crashed", "failed", "stopped", "completed"))
    timer.stop()
    assert right_after in LIVE, "kill must not wait for the process to end"
    assert any(status in LIVE for status in seen)
    assert live.status == "crashed"
    assert store.get_run(live.run_id)["status"] == "crashed"
    monitor = area.current_monitor()
    assert monitor.badge.text() == "crashed" and monitor.error.isVisible()
    assert "without reporting" in monitor.error.text()
    assert monitor.resume_button.isEnabled()


def test_a_failing_run_shows_failed_with_its_error(runs_area, qtbot, tmp_path):
    data = tmp_path / "wine.csv"
    data.write_bytes((EXAMPLES / "data" / "wine.csv").read_bytes())
    doc = spec("wine_csv", name="will-fail", data={"path": str(data)})
    data.write_text("cultivar,alcohol\n1,abc\n2,13.1\n")  # now unreadable as numbers
    live = runs_area.start(doc)
    wait_status(qtbot, live, ("failed", "crashed", "completed", "stopped"))
    assert live.status == "failed"
    monitor = runs_area.current_monitor()
    assert monitor.badge.text() == "failed" and monitor.error.isVisible()
    assert "is not numeric" in monitor.error.text()
    assert any(line.level == "error" for line in live.logs)


def test_two_runs_at_once_each_with_its_own_monitor(runs_area, qtbot):
    area = runs_area
    a = area.start(spec(name="first", train={"max_steps": 100_000}))
    b = area.start(spec(name="second", train={"max_steps": 100_000}))
    qtbot.waitUntil(
        lambda: a.series.get("train/loss") is not None and b.series.get("train/loss") is not None,
        timeout=60_000,
    )
    assert len(area.live_runs()) == 2
    assert area.current_monitor().live is b
    titles = [area.list_model.data(area.list_model.index(i)) for i in range(area.list_model.rowCount())]
    assert titles[:3] == ["Running", a.title, b.title]
    area.show_run(a)
    qtbot.waitUntil(lambda: curve_length(area, a) > 0)
    area.stop_all()
    wait_status(qtbot, a, ("stopped", "completed", "failed", "crashed"))
    wait_status(qtbot, b, ("stopped", "completed", "failed", "crashed"))
    assert (a.status, b.status) == ("stopped", "stopped")
