"""The run form: generated from the engine's spec registry, validated as typed by the engine,
filled in as a user does — and a tiny digits run started from it, watched to completion."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from app.runs.form import RunForm
from app.runs.spec_model import RunSpecModel
from engine.fields import Field
from engine.spec import SECTIONS
from tests.app.runs_fixtures import EXAMPLES, ROOT, curve_length, spec, wait_status

TEMPLATES = ROOT / "resources" / "templates"


def retype(qtbot, widget, text: str) -> None:
    """Select what the field holds and type over it, as a user does."""
    qtbot.keyClick(widget, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(widget, text)


def choose(qtbot, combo, value) -> None:
    """Pick an item of a combo box with the keyboard (which emits `activated`, as a click does)."""
    target = combo.findData(value)
    assert target >= 0, value
    while combo.currentIndex() != target:
        key = Qt.Key.Key_Down if combo.currentIndex() < target else Qt.Key.Key_Up
        qtbot.keyClick(combo, key)


def editor(form, path: str):
    return form.rows[path].editor


def test_fill_the_form_and_start_a_tiny_digits_run(runs_area, qtbot, file_dialog, store):
    area, form = runs_area, runs_area.form
    file_dialog.next_path = str(TEMPLATES / "mlp.json")
    qtbot.mouseClick(form.model_radios["file"], Qt.MouseButton.LeftButton)
    assert area.model.model_source == "file"
    assert "17.2k parameters" in form.model_summary.text()

    retype(qtbot, editor(form, "name").widget, "tiny-digits")
    choose(qtbot, editor(form, "data.source").widget, "digits")
    retype(qtbot, editor(form, "train.max_steps").widget, "60")
    retype(qtbot, editor(form, "train.batch_size").widget, "32")
    choose(qtbot, editor(form, "optim.name").widget, "adam")
    retype(qtbot, editor(form, "optim.lr").widget, "0.003")
    assert area.model.doc["train"] == {"epochs": 10, "max_steps": 60, "batch_size": 32}
    assert form.start_button.isEnabled(), area.model.problems

    qtbot.mouseClick(form.start_button, Qt.MouseButton.LeftButton)
    (live,) = area.launcher.runs
    assert area.current_monitor().live is live
    qtbot.waitUntil(lambda: curve_length(area, live) > 0, timeout=60_000)  # the loss plot gets points
    wait_status(qtbot, live, ("completed", "failed", "crashed"))
    assert live.status == "completed", live.error
    qtbot.waitUntil(lambda: curve_length(area, live) == 60)

    row = store.get_run(live.run_id)
    assert row["status"] == "completed" and row["name"] == "tiny-digits"
    assert row["spec"]["train"]["max_steps"] == 60 and row["spec"]["optim"] == {
        **row["spec"]["optim"],
        "name": "adam",
        "lr": 0.003,
    }
    steps, _values, _walls = store.series(live.run_id, "train/loss")
    assert steps.tolist() == list(range(1, 61))
    monitor = area.current_monitor()
    assert {"loss", "lr", "val:accuracy"} <= set(monitor.plots)
    assert monitor.badge.text() == "completed" and monitor.progress.value() == 1000
    assert any("finished at step 60" in line.text for line in live.logs)


def test_an_invalid_field_shows_the_engines_message_and_nothing_starts(runs_area, qtbot):
    area, form = runs_area, runs_area.form
    assert form.load_spec(EXAMPLES / "digits_mlp.json")
    assert form.start_button.isEnabled()

    lr = editor(form, "optim.lr")
    retype(qtbot, lr.widget, "-1")
    assert lr.error.isVisible() and "must be > 0" in lr.error.text()
    assert lr.widget.property("invalid") is True
    assert not form.start_button.isEnabled() and not form.queue_button.isEnabled()
    assert form.status.text() == "✖ 1 problem"
    assert form.status_detail.full.startswith("— optim.lr: must be > 0")

    retype(qtbot, lr.widget, "fast")  # not a number at all: still the engine's words
    assert "must be a number" in lr.error.text()
    qtbot.mouseClick(form.start_button, Qt.MouseButton.LeftButton)
    qtbot.keyClick(form, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert area.launcher.runs == [] and area.launcher.queue == []
    assert not area.launcher.spec_dir.exists() or not list(area.launcher.spec_dir.iterdir())

    retype(qtbot, lr.widget, "0.01")
    assert not lr.error.isVisible() and form.start_button.isEnabled()


def test_the_form_is_generated_from_the_registry(qtbot, monkeypatch):
    # a field another engineer adds to the registry shows up with no change to the form
    extra = Field("label_smoothing", "float", 0.0, "soften the targets", min=0, max=1)
    monkeypatch.setitem(SECTIONS, "train", (*SECTIONS["train"], extra))
    model = RunSpecModel()
    form = RunForm(model)
    qtbot.addWidget(form)
    form.show()
    for section, fields in SECTIONS.items():
        for f in fields:
            if section == "hardware" and f.name in ("device", "gpus"):
                continue  # drawn by the device checklist
            assert f"{section}.{f.name}" in form.rows, f"{section}.{f.name}"
    retype(qtbot, editor(form, "train.label_smoothing").widget, "2")
    assert "must be >= 0 and <= 1, got 2" in editor(form, "train.label_smoothing").error.text()
    assert not form.start_button.isEnabled()
    retype(qtbot, editor(form, "train.label_smoothing").widget, "0.1")
    assert model.doc["train"]["label_smoothing"] == 0.1

    # fields that apply to one choice are shown for that choice only
    assert not form.rows["data.path"].label.isVisibleTo(form)
    choose(qtbot, editor(form, "data.source").widget, "csv")
    assert form.rows["data.path"].label.isVisibleTo(form) and form.rows["data.target"].label.isVisibleTo(form)
    assert "data.path" in model.problems  # required for a file source, said beside the field
    assert "is required" in editor(form, "data.path").error.text()
    choose(qtbot, editor(form, "optim.name").widget, "sgd")
    assert form.rows["optim.momentum"].label.isVisibleTo(form)
    assert not form.rows["optim.betas"].label.isVisibleTo(form)
    # task sections belong to their task kind
    assert not form.cards["prune"].isVisibleTo(form)
    choose(qtbot, editor(form, "task.kind").widget, "prune")
    assert form.cards["prune"].isVisibleTo(form) and not form.cards["distill"].isVisibleTo(form)
    assert "required for a prune run" in editor(form, "prune.parent").error.text()
    form.shutdown()


def test_parent_and_teacher_come_from_completed_runs(runs_area, qtbot, store):
    parent_id = store.create_run(spec(name="parent"), status="running")
    store.finish_run(parent_id, "completed", {"val/accuracy": 0.97})
    failed = store.create_run(spec(name="broken"), status="running")
    store.finish_run(failed, "failed", error="boom")
    form = runs_area.form
    form.load_spec(EXAMPLES / "digits_mlp.json")
    form.refresh_runs()
    choose(qtbot, editor(form, "task.kind").widget, "distill")
    picker = editor(form, "distill.teacher").widget
    offered = [picker.itemText(i) for i in range(picker.count())]
    assert offered == ["Choose a completed run…", f"#{parent_id} parent (train) — accuracy 0.97"]
    choose(qtbot, picker, parent_id)
    assert runs_area.model.doc["distill"] == {"teacher": parent_id}
    qtbot.mouseClick(form.model_radios["parent"], Qt.MouseButton.LeftButton)
    assert "model" not in runs_area.model.doc
    assert form.start_button.isEnabled(), runs_area.model.all_problems()


def test_data_preview_and_schedule_plot_come_from_the_engine(runs_area, qtbot):
    form = runs_area.form
    form.load_spec(EXAMPLES / "digits_mlp.json")
    qtbot.waitUntil(lambda: form.preview.summary is not None, timeout=30_000)
    assert form.preview.stack.currentWidget() is form.preview.images
    assert "input 1×8×8" in form.preview.shape.text() and "10 classes" in form.preview.shape.text()
    # the LR plot: the engine's warm-up and cosine over the run's real step count
    lr = form.schedule_plot.plot
    qtbot.waitUntil(lambda: lr.buffer("lr").n > 0, timeout=30_000)
    steps = 10 * (1438 // 32)
    qtbot.waitUntil(lambda: lr.buffer("lr").x[-1] == steps, timeout=30_000)
    ys = lr.buffer("lr").y
    assert abs(ys[0] - 0.002 / 20) < 1e-12 and abs(ys.max() - 0.002) < 1e-12 and ys[-1] < 1e-5
    assert f"{steps:,} optimizer steps" in form.schedule_plot.note.text()
    # the engine's memory-fit estimate for the chosen devices, with the loaded data counted
    qtbot.waitUntil(lambda: "fit " in form.memory.text(), timeout=60_000)
    assert "Fits" in form.memory.text() and "peak" in form.memory.text()

    form.load_spec(EXAMPLES / "wine_csv.json")
    qtbot.waitUntil(lambda: form.preview.stack.currentWidget() is form.preview.table, timeout=30_000)
    header = [
        form.preview.table.horizontalHeaderItem(i).text() for i in range(form.preview.table.columnCount())
    ]
    assert header[-1] == "cultivar" and form.preview.table.rowCount() == 8
    qtbot.waitUntil(lambda: "input 13" in form.preview.shape.text(), timeout=30_000)

    # a file the engine cannot read: its message, beside the data, and Start stays off
    runs_area.model.set("data.target", "no_such_column")
    qtbot.waitUntil(lambda: "data" in runs_area.model.extra_problems, timeout=30_000)
    assert "no column named 'no_such_column'" in form.cards["data"].problems.text()
    assert not form.start_button.isEnabled()


def test_spec_shows_as_json_and_saves_and_loads(runs_area, qtbot, tmp_path):
    form = runs_area.form
    form.load_spec(EXAMPLES / "wine_csv.json")
    retype(qtbot, editor(form, "train.epochs").widget, "3")
    form.tabs.setCurrentIndex(1)
    shown = json.loads(form.json_view.toPlainText())
    assert shown["train"]["epochs"] == 3 and shown["data"]["source"] == "csv"
    form.json_complete.setChecked(True)
    complete = json.loads(form.json_view.toPlainText())
    assert complete["train"]["batch_size"] == 16 and complete["schedule"]["name"] == "constant"

    path = tmp_path / "saved.json"
    assert form.save_spec(path)
    other = RunSpecModel()
    other.replace(json.loads(path.read_text()), base_dir=EXAMPLES)
    assert other.spec == runs_area.model.spec


def test_the_queue_starts_the_next_run_when_one_ends(runs_area, qtbot, store):
    area = runs_area
    first = area.launcher.enqueue(spec(name="queued-1", train={"max_steps": 5}))
    second = area.launcher.enqueue(spec(name="queued-2", train={"max_steps": 5}))
    assert first not in area.launcher.queue  # nothing was running: it started at once
    assert area.launcher.queue == [second]
    (one,) = area.launcher.runs
    wait_status(qtbot, one, ("completed", "failed", "crashed"))
    qtbot.waitUntil(lambda: len(area.launcher.runs) == 2, timeout=10_000)
    two = area.launcher.runs[1]
    wait_status(qtbot, two, ("completed", "failed", "crashed"))
    assert [r["name"] for r in store.list_runs(status="completed")] == ["queued-2", "queued-1"]
    assert area.launcher.queue == [] and not list(area.launcher.queue_dir.glob("*.json"))


def test_the_queue_outlives_the_window_and_comes_back_paused(runs_area, qtbot, db_path):
    from app.runs.area import RunsArea

    launcher = runs_area.launcher
    launcher.set_queue_paused(True)  # nothing starts, so this test runs no engine
    first = launcher.enqueue(spec(name="later-1"))
    launcher.enqueue(spec(name="later-2"))
    assert [q.name for q in launcher.queue] == ["later-1", "later-2"] and first.path.exists()
    assert runs_area.queue_bar.isVisible() and "2 queued" in runs_area.queue_state.text()
    launcher.remove_queued(first)
    assert not first.path.exists()

    reopened = RunsArea(db_path)
    qtbot.addWidget(reopened)
    try:
        assert [q.name for q in reopened.launcher.queue] == ["later-2"]
        assert reopened.launcher.queue_paused and reopened.queue_toggle.text() == "Resume queue"
        titles = [
            reopened.list_model.data(reopened.list_model.index(i))
            for i in range(reopened.list_model.rowCount())
        ]
        assert titles == ["Queue · paused", "later-2"]
    finally:
        reopened.shutdown()
