"""Sweeps in the GUI: a run-form field switched to a range (checked against the field's own
range), the Sweep button, the sweep view over a real sweep's trials (table, best so far,
pruned trials marked on the curves, importance, parallel coordinates, promote best), and
Experiments grouping the trials under their sweep."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from app.runs.form import RunForm
from app.runs.spec_model import RunSpecModel
from app.sweeps.view import TABS, SweepView
from engine.spec import load_spec
from engine.store import RunStore
from tests.app.experiments_synthetic import open_area
from tests.app.test_runs_form import retype
from tests.conftest import EXAMPLES, TEMPLATES

HANG_S = 300


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A real sweep of the digits MLP: 6 trials, two at a time, ASHA over a mostly hopeless range."""
    from engine.sweep import start_sweep

    folder = tmp_path_factory.mktemp("swept")
    doc = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    doc.update(model=str(TEMPLATES / "mlp.json"), checkpoint={"every": 1_000_000})
    doc["train"].update(epochs=3, eval_every=15)
    doc["sweep"] = {
        "params": {"optim.lr": {"log_uniform": [1e-6, 3e-2]}, "train.batch_size": {"choice": [32, 64]}},
        "objective": {"metric": "val/accuracy", "direction": "maximize"},
        "trials": 6,
        "parallel": 2,
        "sampler": "random",
        "pruner": "asha",
    }
    (folder / "sweep.json").write_text(json.dumps(doc))
    store = RunStore(folder / "runs.db")
    sweep_id, status = start_sweep(store, load_spec(folder / "sweep.json"))
    assert status == "completed"
    store.close()
    return folder / "runs.db", sweep_id


def _form(qtbot) -> RunForm:
    form = RunForm(RunSpecModel())
    qtbot.addWidget(form)
    form.resize(1300, 900)
    form.show()
    qtbot.waitExposed(form)
    return form


def test_a_field_switched_to_a_range_is_checked_against_its_own_range(qtbot):
    form = _form(qtbot)
    assert not form.sweep_button.isEnabled() and form.sweep_card.isHidden()
    form.load_spec(EXAMPLES / "digits_mlp.json")
    qtbot.mouseClick(form.ranges.toggles["optim.lr"], Qt.MouseButton.LeftButton)
    ranged = form.ranges.ranges["optim.lr"]
    assert ranged.isVisible() and not form.rows["optim.lr"].editor.isVisible()
    # a decade either side of the value, log-uniform; the sweep section appears with it
    assert form.model.doc["sweep"]["params"] == {"optim.lr": {"log_uniform": [0.0002, 0.02]}}
    assert form.sweep_card.isVisible() and form.sweep_button.isEnabled()
    # a spec with ranges is a sweep: Sweep stands where Queue and Start were
    assert form.sweep_button.isVisible() and form.start_button.isHidden() and form.queue_button.isHidden()
    assert form.status.text() == "✔ Ready to sweep"
    retype(qtbot, ranged.low.widget, "0")
    assert ranged.low.problems == ["lr must be > 0 and <= 10, got 0"]
    assert not form.sweep_button.isEnabled()
    retype(qtbot, ranged.low.widget, "1e-5")
    retype(qtbot, ranged.high.widget, "1")
    assert form.model.doc["sweep"]["params"]["optim.lr"] == {"log_uniform": [1e-5, 1.0]}
    # a list of values for another field, each one checked as the field checks it
    qtbot.mouseClick(form.ranges.toggles["train.batch_size"], Qt.MouseButton.LeftButton)
    batch = form.ranges.ranges["train.batch_size"]
    batch.kind.widget.setCurrentIndex(batch.kind.widget.findData("choice"))
    batch.kind.widget.activated.emit(batch.kind.widget.currentIndex())
    retype(qtbot, batch.values.widget, "32, 64, 0")
    assert batch.error.text().startswith("0: must be >= 1")
    retype(qtbot, batch.values.widget, "32, 64, 128")
    assert form.model.doc["sweep"]["params"]["train.batch_size"] == {"choice": [32, 64, 128]}
    # the sweep's own fields, parsed as declared; the engine's verdict decides the button
    retype(qtbot, form.ranges.sweep_editors["sweep.objective.metric"][1].widget, "val/accuracy")
    retype(qtbot, form.ranges.sweep_editors["sweep.trials"][1].widget, "16")
    sweep = form.model.spec["sweep"]
    assert (sweep["trials"], sweep["objective"]["metric"]) == (16, "val/accuracy")
    with qtbot.waitSignal(form.sweep_requested) as sent:
        qtbot.mouseClick(form.sweep_button, Qt.MouseButton.LeftButton)
    assert sent.args[0]["sweep"]["params"]["train.batch_size"] == {"choice": [32, 64, 128]}
    # back to single values: no ranges, no sweep section, no Sweep button
    for path in ("optim.lr", "train.batch_size"):
        qtbot.mouseClick(form.ranges.toggles[path], Qt.MouseButton.LeftButton)
    assert "sweep" not in form.model.doc and form.sweep_card.isHidden()
    assert form.rows["optim.lr"].editor.isVisible() and not form.sweep_button.isEnabled()
    assert form.sweep_button.isHidden() and form.start_button.isVisible()


def test_a_loaded_sweep_spec_shows_its_ranges_on_the_rows(qtbot, tmp_path):
    doc = json.loads((EXAMPLES / "digits_mlp_sweep.json").read_text())  # the section
    (tmp_path / "mlp.json").write_text((TEMPLATES / "mlp.json").read_text())
    doc["model"] = "mlp.json"
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    form = _form(qtbot)
    form.load_spec(tmp_path / "sweep.json")
    assert form.model.valid and form.sweep_button.isEnabled()
    lr, batch = form.ranges.ranges["optim.lr"], form.ranges.ranges["train.batch_size"]
    assert lr.isVisible() and form.ranges.toggles["optim.lr"].isChecked()
    assert (lr.distribution, lr.low.widget.text(), lr.high.widget.text()) == ("log_uniform", "1e-05", "1.0")
    assert (batch.distribution, batch.values.widget.text()) == ("choice", "32, 64, 128")
    assert form.ranges.sweep_editors["sweep.pruner"][1].widget.currentData() == "asha"
    assert form.ranges.sweep_editors["sweep.trials"][1].widget.text() == "16"


def test_the_sweep_view_shows_the_trials_and_what_they_found(qtbot, swept):
    db, sweep_id = swept
    view = SweepView(db, sweep_id)
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    qtbot.waitExposed(view)
    results = view.results
    assert view.model.rowCount() == 6 and not view.timer.isActive()  # finished: no polling
    states = {view.model.value(r, "state") for r in range(6)}
    assert states <= {"complete", "pruned"} and "pruned" in states
    best = results.best()
    best_row = next(r for r in range(6) if view.model.value(r, "number") == best.number)
    assert view.model.data(view.model.index(best_row, 0)) == f"★ {best.number}"
    numbers, values = results.best_so_far()
    assert list(view.best_plot.buffer("best").y) == values and values[-1] == best.objective
    # curves: one per trial, the pruned ones crossed where the pruner judged them
    view.tabs.setCurrentIndex(TABS.index("Curves"))
    plot = view.tabs.currentWidget().findChild(type(view.best_plot))
    pruned = [t for t in results.trials if t.state == "pruned"]
    assert len(plot.curves) == 6 and sorted(plot.pruned_marks.data["x"]) == sorted(
        t.pruned_step for t in pruned
    )
    # importance, off the UI thread
    view.tabs.setCurrentIndex(TABS.index("Importance"))
    label = view.tabs.currentWidget()
    qtbot.waitUntil(lambda: "%" in label.text() or "needs two" in label.text(), timeout=HANG_S * 1000)
    if results.counts().get("complete", 0) >= 2:
        assert "optim.lr" in label.text() and "train.batch_size" in label.text()
    # parallel coordinates over the trials, coloured by the objective
    view.tabs.setCurrentIndex(TABS.index("Parallel coordinates"))
    qtbot.waitUntil(lambda: not view.parallel._dirty, timeout=HANG_S * 1000)
    assert [a.column for a in view.parallel.axes] == [
        "spec:optim.lr",
        "spec:train.batch_size",
        "summary:objective",
    ]
    assert sorted(view.parallel.ids.tolist()) == sorted(t.run_id for t in results.trials)
    # promote best: the best trial's values with the sweep's own hardware
    with qtbot.waitSignal(view.promote_requested) as promoted:
        qtbot.mouseClick(view.promote, Qt.MouseButton.LeftButton)
    spec = promoted.args[0]
    assert spec["optim"]["lr"] == best.params["optim.lr"] and spec["hardware"]["threads"] is None
    assert "sweep" not in spec and spec["name"] == "digits-mlp-best"
    view.close()


def test_experiments_groups_trials_under_their_sweep(qtbot, swept):
    db, sweep_id = swept
    area = open_area(qtbot, db)
    area.browser.tree_toggle.click()
    tree = area.browser.tree_model
    trials = [r["id"] for r in RunStore(db, readonly=True).list_runs() if r["parent_id"] == sweep_id]
    assert len(trials) == 6
    assert all(tree.index_of(t).parent().internalId() == sweep_id for t in trials)
    area.set_selection([trials[0]])
    assert area.run_actions["open_sweep"].isEnabled()
    kinds = [area.browser.kind_box.itemData(i) for i in range(area.browser.kind_box.count())]
    assert "sweep" in kinds


def test_a_sweep_started_from_the_gui_stops_and_resumes_to_its_budget(qtbot, tmp_path):
    from app.sweeps.launch import SweepWindow

    doc = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    doc.update(model=str(TEMPLATES / "mlp.json"), checkpoint={"every": 1_000_000})
    doc["train"].update(epochs=4)
    doc["sweep"] = {
        "params": {"optim.lr": {"log_uniform": [1e-3, 1e-2]}},
        "objective": {"metric": "val/loss", "direction": "minimize"},
        "trials": 3,
        "sampler": "random",
    }
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    db = tmp_path / "runs.db"
    window = SweepWindow(db)
    qtbot.addWidget(window)
    window.start(load_spec(tmp_path / "sweep.json"))
    window.show()
    qtbot.waitUntil(lambda: window.view is not None, timeout=HANG_S * 1000)
    view = window.view
    qtbot.waitUntil(lambda: view.model.rowCount() >= 1 and view.stop.isEnabled(), timeout=HANG_S * 1000)
    qtbot.mouseClick(view.stop, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.results.sweep["status"] == "stopped", timeout=HANG_S * 1000)
    assert view.resume.isVisible()
    qtbot.mouseClick(view.resume, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.results.sweep["status"] == "completed", timeout=HANG_S * 1000)
    assert [t.number for t in view.results.trials] == [0, 1, 2]
    assert all(t.state == "complete" for t in view.results.trials)
    assert not view.resume.isVisible() and not view.stop.isVisible()
    window.close()
