"""Every kind of edit is one undoable command: undo walks back to the start, redo forward again."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.designer.area import DesignerArea
from app.designer.document import GraphDocument
from engine.graph import Graph
from tests.app.conftest import click_node, drag, in_port, node_center, out_port, palette_add, snapshot


def test_undo_and_redo_every_edit_kind(window, qtbot):
    area, doc = window.designer, window.doc
    stack = doc.undo_stack
    states = [snapshot(doc)]
    kinds = []

    def done(kind: str) -> None:
        assert snapshot(doc) != states[-1], f"{kind} changed nothing"
        states.append(snapshot(doc))
        kinds.append(kind)

    # add (palette, after the selected node: one step for add + wire)
    click_node(qtbot, area, "drop")
    extra = palette_add(qtbot, area, "Dropout")
    done("add")
    # set param (inspector)
    edit = area.inspector.editors["p"].widget
    edit.selectAll()
    qtbot.keyClicks(edit, "0.3")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    done("set param")
    # set output (inspector check box)
    area.inspector.output_box.click()
    done("set output")
    # move (drag a node: one undo step however many mouse moves)
    before = stack.count()
    drag(qtbot, area.view, node_center(area, extra), node_center(area, extra) + QPointF(60, 90), steps=6)
    assert stack.count() == before + 1
    done("move")
    # disconnect (drag the edge's input end onto empty canvas)
    drag(qtbot, area.view, in_port(area, extra), in_port(area, extra) + QPointF(-40, 160))
    done("disconnect")
    # connect (drag output → input)
    drag(qtbot, area.view, out_port(area, "relu3"), in_port(area, extra))
    done("connect")
    # reconnect (pick the edge up by its input end, drop it on another free input) = one step
    area.scene.clearSelection()
    add = palette_add(qtbot, area, "Add")
    done("add variadic")
    drag(qtbot, area.view, in_port(area, extra), in_port(area, add, 0))
    assert ("relu3", add, 0) in [(e.src, e.dst, e.port) for e in doc.graph.edges]
    done("reconnect")
    # duplicate, copy + paste, cut
    click_node(qtbot, area, "conv1")
    click_node(qtbot, area, "bn1", Qt.KeyboardModifier.ControlModifier)
    area.actions.duplicate.trigger()
    assert {"conv3", "bn3"} <= set(doc.graph.nodes)
    done("duplicate")
    area.actions.copy.trigger()
    area.actions.paste.trigger()
    done("paste")
    area.actions.cut.trigger()
    done("cut")
    # delete (selected nodes and an edge, with the Delete key's action)
    click_node(qtbot, area, "pool")
    area.scene.edges[next(e for e in doc.graph.edges if e.src == "conv1")].setSelected(True)
    area.actions.delete.trigger()
    assert "pool" not in doc.graph.nodes
    done("delete")
    # auto-layout
    area.actions.auto_layout.trigger()
    done("auto-layout")

    assert stack.count() == len(kinds)
    for i in range(len(kinds), 0, -1):
        stack.undo()
        assert snapshot(doc) == states[i - 1], f"undo of {kinds[i - 1]}"
    assert not doc.dirty
    for i in range(1, len(kinds) + 1):
        stack.redo()
        assert snapshot(doc) == states[i], f"redo of {kinds[i - 1]}"
    # the canvas mirrors the graph after all that
    assert set(area.scene.nodes) == set(doc.graph.nodes)
    assert set(area.scene.edges) == set(doc.graph.edges)


def test_typing_into_a_field_is_one_undo_step(window, qtbot):
    area, doc = window.designer, window.doc
    click_node(qtbot, area, "conv1")
    spin = area.inspector.editors["out_channels"].widget
    spin.setFocus()
    for _ in range(3):
        qtbot.keyClick(spin, Qt.Key.Key_Up)
    assert doc.graph.nodes["conv1"].params["out_channels"] == 35
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert doc.graph.nodes["conv1"].params["out_channels"] == 32


def test_arrow_keys_nudge_as_one_step(window, qtbot):
    area, doc = window.designer, window.doc
    click_node(qtbot, area, "bn1")
    x, y = doc.graph.nodes["bn1"].pos
    for _ in range(3):
        qtbot.keyClick(area.view, Qt.Key.Key_Right)
    qtbot.keyClick(area.view, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    assert doc.graph.nodes["bn1"].pos == (x + 3, y + 20)
    assert doc.undo_stack.count() == 1


def test_repeat_body_opens_in_its_own_designer_and_applies_as_one_step(window, qtbot):
    window.files.templates_menu.actions()[3].trigger()  # GPT
    area, doc = window.designer, window.doc
    assert "blocks" in doc.graph.nodes
    before = snapshot(doc)
    seen = {}

    def edit_body() -> None:
        dialog = QApplication.activeModalWidget()
        inner = dialog.area
        seen["input"] = str(inner.doc.analysis.nodes["x"].out)
        click_node(qtbot, inner, "block")
        heads = inner.inspector.editors["n_heads"].widget
        heads.lineEdit().selectAll()
        qtbot.keyClicks(heads.lineEdit(), "8")
        qtbot.keyClick(heads.lineEdit(), Qt.Key.Key_Return)
        palette_add(qtbot, inner, "LayerNorm")  # after the selected block, wired
        seen["inner steps"] = inner.doc.undo_stack.count()
        dialog.accept()

    QTimer.singleShot(0, edit_body)
    area.scene.node_activated.emit("blocks")  # what a double-click on the node does
    assert seen == {"input": "64×128", "inner steps": 2}
    body = Graph.from_dict(doc.graph.nodes["blocks"].params["body"])
    assert body.nodes["block"].params["n_heads"] == 8
    assert len(body.nodes) == 3
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert snapshot(doc) == before


def test_copy_paste_between_two_documents(qtbot, qapp):
    from app.designer.files import load_template

    first = DesignerArea(GraphDocument(load_template("cnn")))
    second = DesignerArea(GraphDocument(load_template("mlp")))
    for area in (first, second):
        qtbot.addWidget(area)
        area.resize(1000, 700)
        area.show()
    first.scene.select_nodes(["conv1", "bn1", "relu1"])
    first.actions.copy.trigger()
    taken = set(second.doc.graph.nodes)
    second.actions.paste.trigger()
    pasted = set(second.doc.graph.nodes) - taken
    assert len(pasted) == 3
    ops = sorted(second.doc.graph.nodes[n].op for n in pasted)
    assert ops == ["BatchNorm2d", "Conv2d", "ReLU"]
    inner = [e for e in second.doc.graph.edges if e.src in pasted and e.dst in pasted]
    assert len(inner) == 2  # the edges among the copied nodes came along
    assert set(second.scene.selected_node_ids()) == pasted
