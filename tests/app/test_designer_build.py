"""Building a model the way a user does: palette, mouse, inspector; then save and load it back."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt

from engine.graph import Graph
from tests.app.conftest import click_node, drag, in_port, out_port, palette_add, snapshot


def test_build_a_model_through_user_actions_then_save_and_load(window, qtbot, file_dialog, tmp_path):
    area, doc = window.designer, window.doc
    window.files.new.trigger()
    assert doc.graph.nodes == {}

    # An Input from the palette, its shape typed into the inspector.
    image = palette_add(qtbot, area, "Input")
    shape = area.inspector.editors["shape"].widget
    qtbot.keyClicks(shape, "1, 8, 8")
    qtbot.keyClick(shape, Qt.Key.Key_Return)
    assert doc.graph.nodes[image].params["shape"] == [1, 8, 8]

    # With a node selected, double-clicking a layer adds it after that node, wired up.
    flat = palette_add(qtbot, area, "Flatten")
    dense = palette_add(qtbot, area, "Linear")
    assert [(e.src, e.dst) for e in doc.graph.edges] == [(image, flat), (flat, dense)]

    # A ReLU placed on its own, then connected by dragging from Linear's output port to its input.
    area.scene.clearSelection()
    relu = palette_add(qtbot, area, "ReLU")
    drag(qtbot, area.view, out_port(area, dense), in_port(area, relu))
    assert (dense, relu) in [(e.src, e.dst) for e in doc.graph.edges]

    # Linear's width edited in its generated spin box.
    click_node(qtbot, area, dense)
    assert area.inspector.node_id == dense
    spin = area.inspector.editors["out_features"].widget
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "10")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert doc.graph.nodes[dense].params["out_features"] == 10

    with qtbot.waitSignal(doc.analyzed, timeout=2000):
        pass
    assert doc.analysis.ok, doc.analysis.problems
    assert str(doc.analysis.output_type) == "10"
    assert area.scene.nodes[dense].out_text == "10"
    assert area.scene.edges[doc.graph.edges[-1]].label == "10"

    # Save through File ▸ Save (an untitled model asks where), then open it again.
    path = tmp_path / "tiny.json"
    file_dialog.next_path = str(path)
    window.files.save.trigger()
    assert not doc.dirty and doc.path == path
    saved = snapshot(doc)
    assert Graph.load(path).to_dict() == saved

    window.files.new.trigger()
    assert doc.graph.nodes == {}
    window.files.open.trigger()
    assert snapshot(doc) == saved
    assert window.windowTitle().startswith("tiny.json")


def test_rubber_band_selects_the_nodes_it_touches(window, qtbot):
    area = window.designer
    view = area.view
    area.scene.clearSelection()
    first, last = area.scene.nodes["image"], area.scene.nodes["bn1"]
    top_left = first.sceneBoundingRect().topLeft() - QPointF(30, 30)
    bottom = last.mapToScene(last.body_rect().center())
    a, b = view.mapFromScene(top_left), view.mapFromScene(bottom)
    port = view.viewport()
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(port, pos=(a + b) / 2)
    qtbot.mouseMove(port, pos=b)
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=b)
    assert area.scene.selected_node_ids() == ["image", "conv1", "bn1"]
    assert area.inspector.node_id is None  # several nodes: the inspector says so
    assert not area.actions.edit_body.isEnabled() and area.actions.delete.isEnabled()
