"""The run form: generated from the engine's spec registry, validated as typed by the engine,
filled in as a user does — and a tiny digits run started from it, watched to completion."""

from __future__ import annotations

import json
import os
import threading

import pytest
from PySide6.QtCore import Qt

from app.fields import UNSET
from app.runs.form import RunForm
from app.runs.spec_model import ENGINE_FAILED, RunSpecModel
from engine.fields import Field
from engine.spec import SECTIONS
from tests.app.runs_fixtures import EXAMPLES, ROOT, curve_length, spec, wait_status
from tests.app.test_fields_editors import wheel

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
            if f"{section}.{f.name}" == "train.freeze":
                continue  # drawn as checkboxes on the model's node list
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
    assert editor(form, "data.source").widget.currentText() == "csv"
    model.set("data.source", UNSET)  # a prune run may take its parent's data
    assert editor(form, "data.source").widget.currentText() == "(the parent run's)"
    assert not form.rows["data.val_fraction"].label.isVisibleTo(form)
    assert form.preview.message.text() == "The run uses its parent's data."
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
    qtbot.waitUntil(lambda: "peak" in form.memory.text(), timeout=60_000)  # the breakdown is in
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


# ------------------------------------------------------------------ declared, not special-cased


def test_new_fields_appear_with_their_label_traits_and_condition(qtbot, monkeypatch):
    from app.fields import MultilineEditor, PathEditor, RunPicker

    cache = Field(
        "cache", "str", None, "csv: a cache folder", optional=True, traits={"path"}, when={"source": ("csv",)}
    )
    threads = Field(
        "threads", "int", None, "torch threads per process", min=1, optional=True, label="Threads"
    )
    base = Field("base", "int", None, "the run to start from", min=1, optional=True, traits={"run"})
    notes = Field("notes", "str", "", "what this run tries", traits={"multiline"})
    monkeypatch.setitem(SECTIONS, "data", (*SECTIONS["data"], cache))
    monkeypatch.setitem(SECTIONS, "hardware", (*SECTIONS["hardware"], threads))
    monkeypatch.setitem(SECTIONS, "train", (*SECTIONS["train"], base, notes))
    model = RunSpecModel()
    form = RunForm(model, completed_runs=lambda: [{"id": 4, "name": "p", "kind": "train", "summary": {}}])
    qtbot.addWidget(form)
    form.show()
    assert isinstance(editor(form, "data.cache"), PathEditor)
    assert isinstance(editor(form, "train.base"), RunPicker)
    assert form.rows["hardware.threads"].label.text() == "Threads"
    assert form.rows["optim.lr"].label.text() == "Learning rate"  # Field.title, not a table here
    assert form.rows["data.split_seed"].label.text() == "Split seed"
    assert "Only when data.source is 'csv'" in editor(form, "data.cache").widget.toolTip()
    assert not form.rows["data.cache"].label.isVisibleTo(form)
    choose(qtbot, editor(form, "data.source").widget, "csv")
    assert form.rows["data.cache"].label.isVisibleTo(form)
    form.refresh_runs()
    choose(qtbot, editor(form, "train.base").widget, 4)
    retype(qtbot, editor(form, "hardware.threads").widget, "2")
    assert isinstance(editor(form, "train.notes"), MultilineEditor)
    qtbot.keyClicks(editor(form, "train.notes").widget, "wider")
    assert model.doc["train"]["base"] == 4 and model.doc["hardware"]["threads"] == 2
    assert model.doc["train"]["notes"] == "wider"
    form.shutdown()


# ------------------------------------------------------------------ the wheel


def test_the_wheel_scrolls_the_form_and_changes_no_setting(runs_area, qtbot):
    form = runs_area.form
    assert form.load_spec(EXAMPLES / "digits_mlp.json")
    before = json.dumps(runs_area.model.doc, sort_keys=True)
    bar = form.scroll.verticalScrollBar()
    targets = [
        editor(form, "train.epochs").widget,  # a spin box
        editor(form, "train.batch_size").widget,
        editor(form, "optim.name").widget,  # a combo box
        editor(form, "data.source").widget,
        form.schedule_plot.plot.view.viewport(),  # the LR plot zoomed instead of scrolling
    ]
    view_range = form.schedule_plot.plot.plot_item.getViewBox().viewRange()
    for widget in targets:
        form.scroll.ensureWidgetVisible(widget, 0, 200)
        start = bar.value()
        notches = -1 if start < bar.maximum() else 1
        wheel(widget, notches)
        assert bar.value() != start, widget.objectName()  # the page scrolled
        wheel(widget, -notches)
        assert bar.value() == start
    assert json.dumps(runs_area.model.doc, sort_keys=True) == before  # no setting changed
    assert editor(form, "train.epochs").widget.value() == 10
    assert editor(form, "optim.name").widget.currentText() == "adamw"
    assert form.schedule_plot.plot.plot_item.getViewBox().viewRange() == view_range

    # a field the user clicked into takes the wheel
    epochs = editor(form, "train.epochs").widget
    form.scroll.ensureWidgetVisible(epochs)
    form.window().activateWindow()
    qtbot.waitUntil(form.window().isActiveWindow)
    qtbot.mouseClick(epochs.lineEdit(), Qt.MouseButton.LeftButton)
    start = bar.value()
    wheel(epochs, 1)
    assert runs_area.model.doc["train"]["epochs"] == 11 and bar.value() == start


# ------------------------------------------------------------------ New run


def test_new_run_starts_fresh_and_is_named_after_the_model(runs_area, qtbot, store):
    from app.designer.files import load_template

    area, form = runs_area, runs_area.form
    graph = load_template("cnn").to_dict()
    area.set_model_provider(lambda: graph)
    assert form.load_spec(EXAMPLES / "digits_cnn_prune.json")
    choose(qtbot, editor(form, "prune.method").widget, "taylor")
    assert form.cards["prune"].isVisibleTo(form)
    form.scroll.verticalScrollBar().setValue(400)

    qtbot.mouseClick(area.new_button, Qt.MouseButton.LeftButton)
    model = area.model
    assert model.doc == {
        "schema": 1,
        "name": "digits-cnn",  # the designer's graph
        "data": {"source": "digits"},
        "train": {"epochs": 10},
        "model": graph,
    }
    assert model.value("task.kind") == "train" and model.file is None and model.model_source == "designer"
    assert not form.cards["prune"].isVisibleTo(form)
    assert editor(form, "prune.method").widget.currentText() == "l1"
    assert editor(form, "name").widget.text() == "digits-cnn"
    assert form.scroll.verticalScrollBar().value() == 0 and form.tabs.currentIndex() == 0
    assert form.start_button.isEnabled(), model.all_problems()

    # a name that recent runs already have gets a number; a typed name is kept
    store.finish_run(store.create_run(spec(name="digits-cnn"), status="running"), "completed", {})
    qtbot.mouseClick(area.new_button, Qt.MouseButton.LeftButton)
    assert model.doc["name"] == "digits-cnn-2"
    retype(qtbot, editor(form, "name").widget, "mine")
    qtbot.mouseClick(form.model_radios["parent"], Qt.MouseButton.LeftButton)  # hidden for train; still
    model.set_model_source("designer")
    assert model.doc["name"] == "mine"

    # a spec file without a name is named after the file
    doc = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    del doc["name"]
    path = EXAMPLES.parent / "unnamed.json"
    assert not path.exists()
    try:
        path.write_text(json.dumps(doc))
        form.load_spec(path)
    finally:
        path.unlink()
    assert model.doc["name"] == "unnamed"


# ------------------------------------------------------------------ cramped or clipped


def test_the_device_list_is_as_tall_as_its_devices(runs_area, qtbot):
    devices = runs_area.form.devices
    lst = devices.widget
    # the machine's own report comes from a background process: let it land before ours
    qtbot.waitUntil(lambda: runs_area.form.detector.report is not None, timeout=60_000)

    def gpu(i):
        return {"index": i, "name": f"NVIDIA H200 NVL with a long marketing name {i}", "free_bytes": 2**37}

    for report, rows in (
        ({"cpu": {"name": "x86_64", "cores": 2, "memory_bytes": 2**34}, "cuda": []}, 2),
        ({"cpu": {"name": "x86_64", "cores": 2}, "cuda": [gpu(0), gpu(1)]}, 4),
        ({"cpu": {"name": "x86_64", "cores": 2}, "cuda": [gpu(i) for i in range(8)]}, 10),
    ):
        devices.set_report(report)
        runs_area.form.scroll.ensureWidgetVisible(devices)
        qtbot.waitUntil(lambda rows=rows: lst.count() == rows)
        shown = min(rows, lst.MAX_ROWS)

        def laid_out(shown=shown, rows=rows) -> bool:
            row = lst.sizeHintForRow(0)
            return (
                shown * row <= lst.viewport().height() < (shown + 1) * row  # no empty rows
                and lst.verticalScrollBar().isVisible() == (rows > lst.MAX_ROWS)
            )

        qtbot.waitUntil(laid_out)
        assert not lst.horizontalScrollBar().isVisible()
        for i in range(lst.count()):  # entries fit the list's width (elided, the tooltip has all)
            assert lst.visualItemRect(lst.item(i)).right() <= lst.viewport().width()
            assert lst.item(i).text() in lst.item(i).toolTip()


def test_the_header_counts_the_problems_and_shows_the_first(runs_area, qtbot, tmp_path):
    form = runs_area.form
    doc = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    doc["model"] = str(TEMPLATES / "mlp.json")
    doc["description"] = ["a description pasted as a list by some other tool"] * 4  # a long first message
    doc["optim"] = {"name": "adam", "lr": -1, "betas": [-1, 0.999]}
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    assert form.load_spec(tmp_path / "bad.json")
    problems = runs_area.model.all_problems()
    assert len(problems) == 3
    assert form.status.text() == "✖ 3 problems"
    first = next(iter(problems))
    assert form.status_detail.full == f"— {first}: {problems[first][0]}"
    tip = form.status_detail.toolTip()
    assert all(f"{p}: {m[0]}" in tip for p, m in problems.items())
    assert "optim.betas: every item must be >= 0 and <= 0.9999, got -1" in tip

    assert first == "description"
    runs_area.resize(800, 700)  # narrow: elided, the count whole
    qtbot.waitUntil(lambda: form.status_detail.text().endswith("…"))
    assert form.status.text() == "✖ 3 problems"
    assert form.status_detail.fontMetrics().horizontalAdvance(form.status_detail.text()) <= (
        form.status_detail.width()
    )

    form.window().activateWindow()
    qtbot.waitUntil(form.window().isActiveWindow)
    form.scroll.verticalScrollBar().setValue(form.scroll.verticalScrollBar().maximum())
    qtbot.mouseClick(form.status_detail, Qt.MouseButton.LeftButton)  # shows the field
    target = form.rows[first.split("[")[0]].editor.widget
    qtbot.waitUntil(target.hasFocus)
    assert target.visibleRegion().boundingRect().height() > 0


def test_the_run_list_never_clips_the_status(runs_area, qtbot, store):
    for i in range(30):
        name = "a-very-long-run-name-for-the-resnet-experiment-with-augmentation" if i % 2 else "digits"
        run_id = store.create_run(spec(name=name), status="running")
        store.finish_run(run_id, "completed", {"val/accuracy": 0.97})
    runs_area._rebuild_list()
    runs_area.resize(1024, 700)
    view = runs_area.list
    qtbot.waitUntil(lambda: view.verticalScrollBar().isVisible())
    assert not view.horizontalScrollBar().isVisible()
    width = view.viewport().width()
    for row in range(runs_area.list_model.rowCount()):
        rect = view.visualRect(runs_area.list_model.index(row))
        assert rect.left() >= 0 and rect.right() <= width, (row, rect, width)


# ------------------------------------------------------------------ hostile files


def _fifo(path):
    os.mkfifo(path)


HOSTILE_FILES = {
    "not JSON": lambda p: p.write_text("{ this is not json"),
    "empty": lambda p: p.write_text(""),
    "binary": lambda p: p.write_bytes(bytes(range(256)) * 40),
    "invalid UTF-8": lambda p: p.write_bytes(b'{"name": "\xff\xfe"}'),
    "a JSON array": lambda p: p.write_text("[1, 2, 3]"),
    "a JSON string": lambda p: p.write_text('"digits"'),
    "a number": lambda p: p.write_text("1e999"),
    "null": lambda p: p.write_text("null"),
    "nested 100,000 deep": lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
    "huge (100 MB)": lambda p: p.write_bytes(b"") or os.truncate(p, 100 * 2**20),
    "a directory": lambda p: p.mkdir(),
    "a FIFO": _fifo,
    "missing": lambda p: None,
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_a_file_that_is_no_spec_gets_one_line_and_the_form_keeps_working(
    runs_area, qtbot, dialogs, tmp_path, case
):
    form, model = runs_area.form, runs_area.model
    assert form.load_spec(EXAMPLES / "digits_mlp.json")
    retype(qtbot, editor(form, "train.epochs").widget, "3")
    before = json.dumps(model.doc, sort_keys=True)
    path = tmp_path / "hostile.json"
    HOSTILE_FILES[case](path)

    # Hang detector for the FIFO: if the reader blocks opening it, a writer unblocks it after
    # a generous while and the test fails instead of hanging.
    rescued = threading.Event()

    def rescue():
        if not loaded.wait(30):
            rescued.set()
            with open(path, "w") as fh:
                fh.write("{}")

    loaded = threading.Event()
    if case == "a FIFO":
        threading.Thread(target=rescue, daemon=True).start()
    refused = not form.load_spec(path)
    loaded.set()
    assert not rescued.is_set(), "opening a FIFO blocked the UI"
    assert refused

    (kind, title, text) = dialogs.shown[-1]
    assert (kind, title) == ("warning", "Cannot load the spec")
    assert "\n" not in text and str(path) in text and "Traceback" not in text
    assert json.dumps(model.doc, sort_keys=True) == before  # nothing lost
    retype(qtbot, editor(form, "train.epochs").widget, "4")  # and the form still works
    assert model.doc["train"]["epochs"] == 4 and form.start_button.isEnabled()


WRONG_TYPES = [
    {"train": 5},
    {"train": {"epochs": "ten", "batch_size": [64]}},
    {"optim": {"name": ["adam"], "lr": {"peak": 1}, "betas": "fast"}},
    {"data": {"source": {"csv": True}}},
    {"data": []},
    {"task": {"kind": []}},
    {"task": "prune"},
    {"task": {"kind": "prune"}, "prune": {"parent": "seven", "keep": 3}},
    {"hardware": {"device": 3, "gpus": "all", "nnodes": [2]}},
    {"model": 5},
    {"model": ["not", "a", "graph"]},
    {"name": 7, "tags": "x", "description": None},
    {"schema": "one"},
    {"schema": 99},
    {"schema": 1.5},
    {"optim": {"lr": float("nan")}},
    {"checkpoint": {"every": True, "keep": -1}},
    {"schedule": {"name": None}},
]


@pytest.mark.parametrize("overrides", WRONG_TYPES, ids=[json.dumps(o)[:40] for o in WRONG_TYPES])
def test_wrong_types_load_and_are_named_beside_their_fields(runs_area, qtbot, dialogs, tmp_path, overrides):
    form, model = runs_area.form, runs_area.model
    doc = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    doc.update(overrides)
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(doc))
    assert form.load_spec(path)
    assert dialogs.shown == []
    assert not form.start_button.isEnabled() and form.status.text().startswith("✖")
    problems = model.all_problems()
    assert problems and all(messages for messages in problems.values())
    assert not any(ENGINE_FAILED in m for ms in problems.values() for m in ms), problems
    form.tabs.setCurrentIndex(1)  # the JSON view shows the document as loaded
    assert form.json_view.toPlainText()
    form.tabs.setCurrentIndex(0)
    assert form.load_spec(EXAMPLES / "digits_mlp.json") and form.start_button.isEnabled()


def test_mutated_specs_never_break_the_form(runs_area, qtbot, dialogs, tmp_path):
    """Hundreds of specs with one field of every section turned into a value of the wrong type
    or out of range: each loads, each problem is reported, no exception escapes, and the form
    still accepts the example afterwards."""
    import random

    form, model = runs_area.form, runs_area.model
    base = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    base["model"] = str(TEMPLATES / "mlp.json")
    strange = ["", "x", -1, 0, 1.5, -1e9, True, None, [], [1, "a"], {}, {"a": 1}, "1e3", [[[]]], "\x00"]
    rng = random.Random(12)
    paths = [(s, f.name) for s, fields in SECTIONS.items() for f in fields] + [("", "name"), ("", "tags")]
    cases = 0
    engine_failures = []
    for _ in range(320):
        doc = json.loads(json.dumps(base))
        for section, name in rng.sample(paths, 3):
            target = doc if not section else doc.setdefault(section, {})
            if isinstance(target, dict):
                target[name] = rng.choice(strange)
        path = tmp_path / f"case{cases}.json"
        path.write_text(json.dumps(doc))
        assert form.load_spec(path), dialogs.texts()
        if not model.valid:
            problems = model.all_problems()
            assert problems and not form.start_button.isEnabled(), doc
            failed = [m for ms in problems.values() for m in ms if ENGINE_FAILED in m]
            if failed:
                engine_failures.append((doc, failed[0]))
        cases += 1
    assert engine_failures == [], f"{len(engine_failures)} of {cases}, first: {engine_failures[0]}"
    assert cases == 320 and dialogs.shown == []
    assert form.load_spec(EXAMPLES / "digits_mlp.json") and form.start_button.isEnabled()
