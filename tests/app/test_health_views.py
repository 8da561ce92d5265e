"""The diagnostics views with real runs and real engine processes, driven as a user does: the
monitor's Health tab (per-node curves, node filter, warnings), the designer's health overlay
(node colours by statistic and step, warning badges, the hover card), the live-control buttons,
the LR finder beside optim.lr, and the evaluation and explanations dialog."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine import format as fmt
from tests.app.runs_fixtures import EXAMPLES, ROOT, spec, wait_status

RUN_MS = 120_000  # hang detector for a loaded machine

REGRESSION = {
    "format": "trainbench.graph",
    "version": 1,
    "name": "exploding",
    "nodes": [
        {"id": "x", "op": "Input", "params": {"shape": [20]}, "pos": [0, 0]},
        {"id": "fc1", "op": "Linear", "params": {"out_features": 32}, "pos": [200, 0]},
        {"id": "act", "op": "Tanh", "params": {}, "pos": [400, 0]},
        {"id": "head", "op": "Linear", "params": {"out_features": 1}, "pos": [600, 0]},
    ],
    "edges": [{"from": "x", "to": "fc1"}, {"from": "fc1", "to": "act"}, {"from": "act", "to": "head"}],
}


def cli(db, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRAINBENCH_DB": str(db), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A store with run 1, the digits CNN measured every 10 steps and explained, and run 2, a
    regression with an absurd learning rate whose health checks warned before it diverged."""
    folder = tmp_path_factory.mktemp("diagnostics")
    db = folder / "runs.db"
    assert (
        cli(
            db,
            "run",
            EXAMPLES / "digits_cnn.json",
            "--set",
            "train.epochs=2",
            "--set",
            "health.every=10",
            "--quiet",
        ).returncode
        == 0
    )
    exploding = folder / "exploding.json"
    exploding.write_text(
        json.dumps(
            {
                "name": "exploding",
                "model": REGRESSION,
                "data": {"source": "synthetic_regression"},
                "optim": {"name": "sgd", "lr": 1.0, "momentum": 0.0},
                "train": {"max_steps": 300},
                "health": {"every": 2},
            }
        )
    )
    assert cli(db, "run", exploding, "--quiet").returncode == 1  # diverged, as meant
    return db


def test_health_tab_curves_node_filter_and_warnings(qtbot, stored):
    from app.runs.area import RunsArea

    area = RunsArea(stored)
    qtbot.addWidget(area)
    area.show()
    area.follow_run(1)
    monitor = area.current_monitor()
    assert not any(k.startswith("health/") for plot in monitor.plots.values() for k in plot.keys())
    monitor.tabs.setCurrentIndex(1)
    panel = monitor.diagnostics.health
    qtbot.waitUntil(lambda: bool(panel.nodes), timeout=RUN_MS)
    assert panel.nodes[:4] == ["conv1", "bn1", "relu1", "conv2"]  # the model's order
    params = ["conv1", "bn1", "conv2", "bn2", "fc", "head"]
    assert panel.plot.keys() == [f"health/{n}/grad_norm" for n in params]
    qtbot.keyClicks(panel.filter, "conv")
    assert panel.plot.keys() == ["health/conv1/grad_norm", "health/conv2/grad_norm"]
    panel.set_statistic("dead_fraction")
    assert panel.plot.keys() == ["health/conv1/dead_fraction", "health/conv2/dead_fraction"]
    assert not panel.log_y.isChecked()
    xs = panel.plot.raw_item("health/conv1/dead_fraction").xData
    assert list(xs[:3]) == [10, 20, 30]
    assert panel.warnings.count() == 0 and "none" in panel.warn_title.text()

    area.follow_run(2)
    monitor = area.current_monitor()
    monitor.tabs.setCurrentIndex(1)
    panel = monitor.diagnostics.health
    qtbot.waitUntil(lambda: panel.warnings.count() > 0, timeout=RUN_MS)
    first = panel.warnings.item(0)
    assert "exploding gradients at node" in first.text()
    rect = panel.warnings.visualItemRect(first)
    qtbot.mouseClick(panel.warnings.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    node = first.data(Qt.ItemDataRole.UserRole)
    assert panel.filter.text() == node and panel.plot.keys() == [f"health/{node}/grad_norm"]
    area.shutdown()


def test_overlay_colours_nodes_by_statistic_and_step(qtbot, stored):
    from app.designer.area import DesignerArea
    from app.designer.document import GraphDocument
    from app.designer.files import load_template
    from engine.graph.model import Graph

    area = DesignerArea(GraphDocument(load_template("cnn")))
    qtbot.addWidget(area)
    area.resize(1300, 800)
    area.show()
    overlay = area.health
    overlay.set_db_path(stored)
    area.docks["health"].show()
    area.docks["health"].raise_()
    qtbot.waitUntil(lambda: overlay.health is not None, timeout=RUN_MS)
    assert overlay.health.run_id == 1  # the run whose nodes are this model's
    marks = overlay.marks
    params = {"conv1", "bn1", "conv2", "bn2", "fc", "head"}
    assert {n for n, m in marks.items() if m.color is not None} == params
    last = overlay.step
    assert last == 80 and overlay.panel.step_label.text().startswith("step 80")
    value = overlay.health.value("head", "grad_norm", last)
    assert marks["head"].text == fmt.value(value)
    # an earlier step: other values, other colours
    before = {n: (marks[n].text, marks[n].color.name()) for n in params}
    overlay.panel.slider.setValue(0)
    assert overlay.step == 10 and not overlay.panel.follow.isChecked()
    after = {n: (marks[n].text, marks[n].color.name()) for n in params}
    assert before != after
    # the largest gradient norm of the run gets the hot end of the scale, the smallest the cold
    span = overlay.health.span("grad_norm")
    from app.designer.health_overlay import color_at, scale

    for n in params:
        v = overlay.health.value(n, "grad_norm", 10)
        assert marks[n].color.name() == color_at(scale(v, span, True)).name()
    overlay.panel.stat.setCurrentIndex(overlay.panel.stat.findData("dead_fraction"))
    assert {n for n, m in marks.items() if m.color is not None} >= {"relu1", "relu2", "relu3"}
    # hovering a node shows its small curves
    overlay.panel.stat.setCurrentIndex(0)
    item = area.scene.nodes["conv2"]
    view = area.view
    qtbot.waitUntil(lambda: area._docks_sized)  # the first layout (which fits the view) is done
    qtbot.wait(20)
    view.centerOn(item)
    qtbot.mouseMove(view.viewport(), view.mapFromScene(item.mapToScene(item.body_rect().center())))
    qtbot.waitUntil(lambda: overlay.card.isVisible() and overlay.card.node == "conv2", timeout=5000)
    assert overlay.card.node == "conv2" and [c[0] for c in overlay.card.curves] == [
        "grad_norm",
        "update_ratio",
        "dead_fraction",
    ]
    overlay.panel.show_marks.setChecked(False)
    assert all(m.color is None for m in marks.values())
    overlay.panel.show_marks.setChecked(True)

    # the exploding run on its own model: a badge on the warned node
    other = DesignerArea(GraphDocument(Graph.from_dict(REGRESSION)))
    qtbot.addWidget(other)
    other.show()
    other.health.set_db_path(stored)
    other.health.refresh_runs()
    other.health.set_run(2)
    warned = [n for n, m in other.health.marks.items() if m.warnings]
    assert warned and warned[0] in ("fc1", "head")
    assert "exploding" in other.health.marks[warned[0]].toolTip()


def test_control_buttons_change_the_running_run(runs_area, qtbot, store):
    area = runs_area
    live = area.start(
        spec(
            name="steered",
            train={"max_steps": 10**6},
            schedule={"name": "constant", "warmup_steps": 0},
            checkpoint={"every": 10**6},
        )
    )
    qtbot.waitUntil(lambda: live.status == "running" and live.step > 16, timeout=RUN_MS)
    monitor = area.current_monitor()
    bar = monitor.diagnostics.control_bar
    feed = monitor.diagnostics.feed
    assert bar.pause_button.isEnabled() and bar.pause_button.text() == "Pause"
    qtbot.keyClicks(bar.lr_edit, "0.01")
    qtbot.mouseClick(bar.lr_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(feed.of_kind("control")), timeout=RUN_MS)
    (lr_event,) = feed.of_kind("control")
    assert lr_event["data"]["value"] == 0.01 and "learning rate set to 0.01" in bar.state.text()
    qtbot.mouseClick(bar.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bar.pause_button.text() == "Continue", timeout=RUN_MS)
    paused = feed.of_kind("control")[-1]["step"]
    total = paused + 200
    qtbot.keyClicks(bar.steps_edit, str(total))
    qtbot.mouseClick(bar.steps_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(feed.of_kind("control")) == 3, timeout=RUN_MS)
    qtbot.mouseClick(bar.pause_button, Qt.MouseButton.LeftButton)
    wait_status(qtbot, live, ("completed", "failed", "crashed", "stopped"), timeout=RUN_MS)
    assert live.status == "completed", live.error
    assert store.get_run(live.run_id)["summary"]["steps"] == total
    commands = [e["data"]["command"] for e in store.run_events(live.run_id, "control")]
    assert commands == ["lr", "pause", "steps", "resume"]
    qtbot.waitUntil(lambda: len(feed.of_kind("control")) == 4, timeout=RUN_MS)
    loss_plot = next(p for p in monitor.plots.values() if p.has_curve("train/loss"))
    lines = monitor.diagnostics.markers.lines(loss_plot)
    assert sorted(line.value() for line in lines) == sorted({e["step"] for e in feed.of_kind("control")})
    assert "lr 0.01" in next(line for line in lines if line.value() == lr_event["step"]).label.format
    assert not bar.pause_button.isVisible() and bar.explain_button.isVisible()


def test_lr_finder_beside_the_learning_rate_sets_it(runs_area, qtbot):
    form = runs_area.form
    form.load_spec(EXAMPLES / "digits_mlp.json")
    assert form.lr_finder.isEnabled()
    qtbot.mouseClick(form.lr_finder, Qt.MouseButton.LeftButton)
    dialog = form.lr_finder.dialog
    qtbot.waitUntil(lambda: dialog.result is not None or dialog.error is not None, timeout=RUN_MS)
    assert dialog.error is None
    valley = dialog.result["valley"]
    assert 1e-3 <= valley <= 3e-2 and dialog.plot.marks.keys() == {"valley", "steepest"}
    assert dialog.plot.buffer("loss").n == dialog.result["steps"]
    qtbot.mouseClick(dialog.accept_button, Qt.MouseButton.LeftButton)
    assert runs_area.model.value("optim.lr") == valley and runs_area.model.valid


def test_evaluation_dialog_computes_in_the_engine_and_shows_the_files(qtbot, tmp_path):
    from app.experiments.evaluation import EvaluationDialog

    db = tmp_path / "eval.db"
    assert cli(db, "run", EXAMPLES / "digits_cnn.json", "--set", "train.epochs=1", "--quiet").returncode == 0
    dialog = EvaluationDialog(db, 1)
    qtbot.addWidget(dialog)
    dialog.show()
    view = dialog.view
    assert view.evaluation is None and view.tabs.count() == 0
    qtbot.keyClicks(view.samples, "0,7")
    with qtbot.waitSignal(view.computed, timeout=RUN_MS) as done:
        qtbot.mouseClick(view.compute_button, Qt.MouseButton.LeftButton)
    assert done.args == [True], view.error
    titles = [view.tabs.tabText(i) for i in range(view.tabs.count())]
    assert titles == ["Confusion", "Per class", "Most confused", "Explanations"]
    counts = np.asarray(view.evaluation["confusion"])
    table = view.confusion
    assert table.rowCount() == table.columnCount() == 10
    assert all(table.item(i, j).text() == f"{counts[i, j]:,}" for i in range(10) for j in range(10))
    view.normalised.setChecked(True)
    assert table.item(0, 0).text() == f"{view.evaluation['confusion_normalised'][0][0]:.2f}"
    assert view.confused.count() == len(view.evaluation["most_confused"])
    assert [s["index"] for s in view.explained["samples"]] == [0, 7]
    label = view.explain_grid.findChild(type(view.status), "explain:7:gradcam")
    assert label is not None and not label.pixmap().isNull()
