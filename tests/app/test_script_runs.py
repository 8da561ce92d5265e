"""Script runs in the app: "Run a script" driven as a user does, the monitor's curves and log,
Stop, the Experiments views reading a script's config, and File ▸ Import of TensorBoard logs."""

from __future__ import annotations

import importlib
import textwrap

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QRadioButton

from app.experiments.catalog import RunCatalog
from app.experiments.fields import hyperparameter_choices, varying_hyperparameters
from app.experiments.hparams import CompareTableModel
from engine import capsule
from engine.compare import compare_table
from engine.scripts import tracking_import_path
from engine.store import RunStore
from tests.app.runs_fixtures import RUN_TIMEOUT_MS, curve_length, wait_status
from tests.conftest import EXAMPLES


def _start_script(qtbot, area, path, args: str):
    form = area.form
    qtbot.mouseClick(form.findChild(QRadioButton, "mode:script"), Qt.MouseButton.LeftButton)
    assert form.script_form.isVisible() and not form.tabs.isVisible()
    script = form.script_form
    assert not script.start_button.isEnabled()  # no script yet
    qtbot.keyClicks(script.editors["script.file"].widget, str(path))
    qtbot.keyClicks(script.editors["script.args"].widget, args)
    assert script.start_button.isEnabled(), script.status.text()
    qtbot.mouseClick(script.start_button, Qt.MouseButton.LeftButton)
    (live,) = area.launcher.runs
    return live


def test_run_a_script_from_the_form_shows_curves_and_output(qtbot, runs_area, db_path):
    live = _start_script(qtbot, runs_area, EXAMPLES / "train_script.py", "--epochs 2 --lr 0.004")
    wait_status(qtbot, live, "completed")
    assert live.kind == "script" and live.name == "digits-script"
    qtbot.waitUntil(lambda: curve_length(runs_area, live) > 0, timeout=RUN_TIMEOUT_MS)
    assert live.series["train/loss"].n == 44 and live.series["val/accuracy"].n == 2
    lines = [line.text for line in live.logs]
    assert any(t.startswith("epoch 1: validation accuracy") for t in lines)  # the script's stdout
    store = RunStore(db_path, readonly=True)
    run = store.get_run(live.run_id)
    assert run["status"] == "completed" and run["spec"]["config"]["lr"] == 0.004
    assert store.series_summaries(live.run_id)["train/loss"]["count"] == 44
    (recorded,) = store.capsules(live.run_id)
    assert recorded["argv"][-4:] == ["--epochs", "2", "--lr", "0.004"]


def test_a_bad_script_path_is_shown_beside_the_field(qtbot, runs_area, tmp_path):
    form = runs_area.form
    form.set_mode("script")
    editor = form.script_form.editors["script.file"]
    qtbot.keyClicks(editor.widget, str(tmp_path / "missing.py"))
    assert "is not a file" in " ".join(editor.problems)
    assert not form.script_form.start_button.isEnabled()
    form.set_mode("designed")
    assert form.tabs.isVisible() and not form.script_form.isVisible()


def test_stop_ends_a_script_run_as_stopped(qtbot, runs_area, tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            import trainbench
            with trainbench.init(name="slow") as run:
                for step in range(10**6):
                    run.log({"train/loss": 1.0 / (step + 1)})
                    time.sleep(0.01)
            """
        )
    )
    live = _start_script(qtbot, runs_area, script, "")
    qtbot.waitUntil(
        lambda: live.series.get("train/loss") is not None and live.series["train/loss"].n > 5,
        timeout=RUN_TIMEOUT_MS,
    )
    runs_area.launcher.stop(live)
    wait_status(qtbot, live, "stopped")
    assert any("sending SIGINT" in line.text for line in live.logs)


def test_experiments_offer_a_scripts_config_as_hyperparameters(db_path, monkeypatch):
    shim = tracking_import_path()
    if shim:
        monkeypatch.syspath_prepend(shim)
    trainbench = importlib.import_module("trainbench")
    for lr in (0.1, 0.01):
        with trainbench.init(
            name=f"lr{lr}", db=db_path, config={"lr": lr, "optimizer": {"name": "sgd"}}
        ) as run:
            run.log({"val/loss": lr * 2})
    store = RunStore(db_path)
    catalog = RunCatalog(store)
    assert "spec:config.lr" in hyperparameter_choices(catalog)
    assert varying_hyperparameters(catalog, list(range(len(catalog)))) == ["spec:config.lr"]
    store.update_capsule(2, python={"version": "3.12.0"})  # as if run under another Python
    table = compare_table(store, [1, 2], show_all=True)
    table["environment"] = capsule.compare_environment(store, [1, 2])
    model = CompareTableModel()
    model.set_table(table)
    assert model.find("params", "config.lr") is not None
    row = model.find("environment", "python")
    assert row is not None and model.row(row).values[1] == "3.12.0"


def test_file_import_tensorboard_logs(qtbot, window, tmp_path, monkeypatch, dialogs, db_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path / "logs" / "run-a"))
    for step in range(10):
        writer.add_scalar("loss", 1.0 / (step + 1), step)
    writer.close()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "logs"))
    (action,) = [a for a in window.import_menu.actions() if a.text().startswith("TensorBoard")]
    action.trigger()
    qtbot.waitUntil(lambda: bool(dialogs.shown), timeout=RUN_TIMEOUT_MS)
    assert dialogs.shown[0][0] == "information", dialogs.texts()
    assert "1 run(s) imported" in dialogs.texts()
    (run,) = RunStore(db_path, readonly=True).list_runs()
    assert run["kind"] == "imported" and run["name"] == "run-a"
