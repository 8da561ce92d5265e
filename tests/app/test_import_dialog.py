"""File ▸ Import Model, driven as a user does: the import runs in an engine process, the report
is shown, and the graph opens in the designer with the opaque module as one box whose inside is
listed, without the GUI process running the model's code."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt

from tests.conftest import ROOT

ZOO = ROOT / "tests" / "engine" / "models_for_import.py"


def _user_file(tmp_path) -> Path:
    user = tmp_path / "my_models.py"  # a path of its own: no other test has imported it here
    user.write_text(ZOO.read_text())
    return user


def _loaded(path: Path) -> bool:
    return any(getattr(m, "__file__", None) == str(path) for m in list(sys.modules.values()))


def test_import_model_from_the_file_menu_opens_the_graph(qtbot, window, tmp_path):
    user = _user_file(tmp_path)
    action = window.import_model_action
    assert action.text() == "&Import Model…" and action in window.menuBar().actions()[0].menu().actions()
    dialog = window.import_model()
    qtbot.keyClicks(dialog.source, str(user))
    assert dialog.out.text() == str(tmp_path / "my_models_graph.json")  # suggested beside the model
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    assert "Name the factory" in dialog.status.text()  # asked for, nothing started
    qtbot.keyClicks(dialog.factory, "seeded")
    qtbot.keyClicks(dialog.kwargs, '{"name": "gated", "seed": 1}')
    qtbot.keyClicks(dialog.input, "8")
    with qtbot.waitSignal(dialog.finished_import, timeout=600_000) as done:
        qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    report, error = done.args
    assert error is None and [o["node"] for o in report["opaque"]] == ["gate"]
    shown = dialog.report_view.toPlainText()
    assert "Linear 2, ReLU 1" in shown and "SortGate" in shown and "max abs difference 0" in shown
    assert dialog.open_button.isEnabled()

    qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    window.doc.wait_for_analysis()
    graph = window.doc.graph
    assert window.doc.path == tmp_path / "my_models_graph.json"
    assert graph.nodes["gate"].op == "Module" and graph.init_from.endswith("my_models_graph.safetensors")
    box = window.designer.scene.nodes["gate"]
    assert box.inside[0].startswith("SortGate(") and not box.errors
    assert "my_models.py" in box.toolTip() and "opening the graph runs nothing" in box.toolTip()
    assert box.height > window.designer.scene.nodes["inp"].height  # the listing is on the box
    window.designer.scene.select_nodes(["gate"])
    editors = window.designer.inspector.editors
    measured = [name for name, e in editors.items() if getattr(e.widget, "isReadOnly", lambda: False)()]
    assert measured == ["inputs", "output", "parameters", "flops", "inside"]  # shown, not edited
    assert not editors["kwargs"].widget.isReadOnly()  # a reference stays editable
    assert not _loaded(user)  # neither the import nor opening ran the model's code in this process


def test_a_failed_import_says_why_in_one_line(qtbot, window, tmp_path):
    user = _user_file(tmp_path)
    dialog = window.import_model()
    dialog.source.setText(str(user))
    dialog.factory.setText("seeded")
    dialog.kwargs.setText('{"name": "gated"}')
    dialog.input.setText("5")  # the model takes 8 features
    with qtbot.waitSignal(dialog.finished_import, timeout=600_000) as done:
        qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    report, error = done.args
    assert report is None and "does not run on an input of 2×5 float" in error and "\n" not in error
    assert "Not imported" in dialog.status.text() and not dialog.open_button.isEnabled()
    dialog.kwargs.setText("[1, 2]")
    assert dialog.argv() is None and "JSON object" in dialog.status.text()


def test_the_run_form_freezes_nodes_with_checkboxes_and_counts_them(runs_area, qtbot, file_dialog):
    area, form = runs_area, runs_area.form
    templates = ROOT / "resources" / "templates"
    file_dialog.next_path = str(templates / "gpt.json")
    qtbot.mouseClick(form.model_radios["file"], Qt.MouseButton.LeftButton)
    freeze = form.freeze_list
    assert "train.freeze" not in form.rows  # no JSON editor: the node list stands for it
    assert list(freeze.boxes) == ["embed", "pos", "blocks", "ln_f"]  # lm_head's only weight is embed's
    assert "frozen 0 parameters" in freeze.counts.text()

    qtbot.mouseClick(freeze.boxes["embed"], Qt.MouseButton.LeftButton)
    assert area.model.doc["train"]["freeze"] == ["embed"]
    qtbot.mouseClick(freeze.boxes["blocks"], Qt.MouseButton.LeftButton)
    assert area.model.doc["train"]["freeze"] == ["embed", "blocks"]
    spin = freeze.copies["blocks"]
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key.Key_Down)  # the first 3 of the 4 copies
    assert area.model.doc["train"]["freeze"] == ["embed", "blocks[:3]"]
    assert not any(p.startswith("train.freeze") for p in area.model.all_problems())
    from engine import freeze as engine_freeze
    from engine.graph import Graph, analyze

    trainable, frozen = engine_freeze.counts(
        analyze(Graph.load(templates / "gpt.json")), ["embed", "blocks[:3]"]
    )
    assert freeze.counts.text() == f"Trainable {fmt_count(trainable)} · frozen {fmt_count(frozen)} parameters"
    qtbot.mouseClick(freeze.boxes["embed"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(freeze.boxes["blocks"], Qt.MouseButton.LeftButton)
    assert "freeze" not in area.model.doc.get("train", {})  # nothing frozen: the field is left out


def fmt_count(n: int) -> str:
    from engine import format as fmt

    return fmt.count(n)


def test_the_designer_counts_a_tied_weight_once(qtbot, window):
    gpt = [a for a in window.files.templates_menu.actions() if a.text() == "GPT language model"][0]
    gpt.trigger()
    window.doc.wait_for_analysis()
    assert window.doc.graph.tie == {"lm_head.weight": "embed.weight"}
    assert window.doc.analysis.total_params == 834_304  # the head's weight is the embedding's
    assert window.doc.analysis.nodes["lm_head"].n_params == 0
