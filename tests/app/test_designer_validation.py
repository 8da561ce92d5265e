"""The engine's own messages reach the user: refused connections, invalid params, shape errors;
every template opens clean; and a screenshot of the GPT template for people to look at."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDropEvent

from app.designer.files import TEMPLATE_TITLES, templates
from engine.graph import OPS
from tests.app.conftest import click_node, drag, in_port, out_port, palette_add

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_refused_connection_shows_the_engines_reason(window, qtbot):
    area, doc = window.designer, window.doc
    edges = list(doc.graph.edges)
    steps = doc.undo_stack.count()

    # conv2's only input is taken
    reason = doc.graph.can_connect("relu1", "conv1", 0)
    assert reason
    drag(qtbot, area.view, out_port(area, "relu1"), in_port(area, "conv1"))
    assert window.statusBar().currentMessage() == f"Cannot connect: {reason}"
    # ...and beside the drop point, where the user is looking
    note = area.view.note
    assert note.isVisible() and note.text() == f"Cannot connect: {reason}"
    drop = area.view.mapFromScene(in_port(area, "conv1"))
    assert (note.geometry().center() - drop).manhattanLength() < 250

    # a node cannot feed itself; dropping on its own input port is refused likewise
    area.scene.clearSelection()
    add = palette_add(qtbot, area, "Add")
    steps += 1
    reason = doc.graph.can_connect(add, add, 0)
    drag(qtbot, area.view, out_port(area, add), in_port(area, add, 0))
    assert window.statusBar().currentMessage() == f"Cannot connect: {reason}"

    assert doc.graph.edges == edges
    assert doc.undo_stack.count() == steps

    # A connection that works clears the refusal, from the canvas and the status bar.
    assert note.isVisible()
    drag(qtbot, area.view, out_port(area, "relu3"), in_port(area, add, 0))
    assert ("relu3", add, 0) in [(e.src, e.dst, e.port) for e in doc.graph.edges]
    assert not note.isVisible()
    assert "Cannot connect" not in window.statusBar().currentMessage()

    # Left alone, a refusal's note goes after a few seconds.
    area.view._note_timer.setInterval(50)
    drag(qtbot, area.view, out_port(area, add), in_port(area, add, 1))
    assert note.isVisible()
    qtbot.waitUntil(lambda: not note.isVisible(), timeout=5000)


def test_invalid_parameter_shows_the_engines_message_and_is_not_applied(window, qtbot):
    area, doc = window.designer, window.doc
    click_node(qtbot, area, "conv1")
    editor = area.inspector.editors["out_channels"]
    spin = editor.widget.lineEdit()
    spin.selectAll()
    qtbot.keyClicks(spin, "0")
    expected = OPS["Conv2d"].field("out_channels").check(0)[1]
    qtbot.waitUntil(editor.error.isVisible)  # as typed, before Enter
    assert editor.error.text() == expected
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert doc.graph.nodes["conv1"].params["out_channels"] == 32
    assert doc.undo_stack.count() == 0

    click_node(qtbot, area, "image")
    editor = area.inspector.editors["shape"]
    editor.widget.selectAll()
    qtbot.keyClicks(editor.widget, "1, 0, 8")
    qtbot.keyClick(editor.widget, Qt.Key.Key_Return)
    assert editor.error.text() == OPS["Input"].field("shape").check([1, 0, 8])[1]
    assert doc.graph.nodes["image"].params["shape"] == [1, 8, 8]


def test_shape_errors_badge_the_node_and_fill_the_summary(window, qtbot):
    area, doc = window.designer, window.doc
    click_node(qtbot, area, "conv1")
    kernel = area.inspector.editors["kernel_size"].widget.lineEdit()
    kernel.selectAll()
    qtbot.keyClicks(kernel, "11")
    with qtbot.waitSignal(doc.analyzed, timeout=2000):
        qtbot.keyClick(kernel, Qt.Key.Key_Return)
    messages = doc.analysis.problems_of("conv1")
    assert messages and "does not fit" in messages[0]
    item = area.scene.nodes["conv1"]
    assert item.errors == messages
    assert messages[0] in item.toolTip()
    assert messages[0] in area.inspector.problems.text()
    assert "problem" in window.validity.text()

    # Clicking the problem in the summary selects the node.
    area.scene.clearSelection()
    problems = area.summary.problems
    row = next(i for i in range(problems.count()) if problems.item(i).text().startswith("conv1:"))
    rect = problems.visualItemRect(problems.item(row))
    qtbot.mouseClick(problems.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert area.scene.selected_node_ids() == ["conv1"]

    doc.undo_stack.undo()
    with qtbot.waitSignal(doc.analyzed, timeout=2000):
        pass
    assert doc.analysis.ok and item.errors == []


@pytest.mark.parametrize("name", templates())
def test_every_template_opens_and_validates_clean(window, qtbot, name):
    menu = window.files.templates_menu
    action = next(a for a in menu.actions() if a.text() == TEMPLATE_TITLES.get(name, a.text()))
    action.trigger()
    doc = window.doc
    assert doc.analysis.ok, doc.analysis.problems
    assert doc.path is None and not doc.dirty  # a template opens as an untitled copy
    assert all(not item.errors and item.out_text for item in window.designer.scene.nodes.values())
    assert window.designer.summary.status.text().endswith("Valid model")


def test_screenshot_of_the_gpt_template(window, qtbot):
    window.files.templates_menu.actions()[3].trigger()
    assert window.doc.graph.name == "char-gpt"
    window.resize(1600, 1000)
    window.designer.view.fit()
    window.designer.reveal("blocks")
    qtbot.wait(50)  # let the resize and selection paint
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "designer-gpt.png"
    image = window.grab().toImage()
    assert image.save(str(path))
    colours = {image.pixel(x, y) for x in range(0, image.width(), 37) for y in range(0, image.height(), 23)}
    assert image.width() == 1600 and len(colours) > 20  # a real picture, not a blank window


def test_dropping_an_op_from_the_palette_adds_it_where_dropped(window, qtbot):
    area = window.designer
    mime = area.palette.tree.mimeData([area.palette.items["GELU"]])
    assert isinstance(mime, QMimeData)
    where = QPoint(200, 150)
    drop = QDropEvent(
        QPointF(where),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    area.view.dropEvent(drop)
    (new,) = [n for n, node in window.doc.graph.nodes.items() if node.op == "GELU"]
    node = area.scene.nodes[new]
    assert node.sceneBoundingRect().contains(area.view.mapToScene(where))


def test_quick_add_popup_at_the_cursor(window, qtbot):
    area = window.designer
    spot = area.view.mapToScene(QPoint(60, 60))
    area.scene.background_activated.emit(spot)  # what a double-click on empty canvas does
    assert area.quick_add.isVisible()
    qtbot.keyClicks(area.quick_add.edit, "silu")
    qtbot.keyClick(area.quick_add.edit, Qt.Key.Key_Return)
    assert not area.quick_add.isVisible()
    (new,) = [n for n, node in window.doc.graph.nodes.items() if node.op == "SiLU"]
    assert area.scene.selected_node_ids() == [new]


def test_the_inspector_parses_as_the_run_form_does(window, qtbot):
    """One parser for both forms: `1x8x8` is a shape here too, and an emptied field means the
    op's default (the param is left out), each edit one undo step."""
    area, doc = window.designer, window.doc
    click_node(qtbot, area, "image")
    shape = area.inspector.editors["shape"].widget
    for text in ("1x8x8", "[1, 8, 8]", "1×8×8"):
        shape.selectAll()
        qtbot.keyClicks(shape, text)
        qtbot.keyClick(shape, Qt.Key.Key_Return)
        assert doc.graph.nodes["image"].params["shape"] == [1, 8, 8], text
    shape.selectAll()
    qtbot.keyClicks(shape, "1, eight, 8")
    assert area.inspector.editors["shape"].error.text() == OPS["Input"].field("shape").check("1, eight, 8")[1]

    dense = next(n for n, node in doc.graph.nodes.items() if node.op == "Linear")
    click_node(qtbot, area, dense)
    width = area.inspector.editors["in_features"]
    width.widget.setFocus()
    width.widget.selectAll()
    qtbot.keyClicks(width.widget, "64")
    qtbot.keyClick(width.widget, Qt.Key.Key_Return)
    steps = doc.undo_stack.count()
    assert doc.graph.nodes[dense].params["in_features"] == 64
    area.view.setFocus()  # a new editing session: a step of its own
    width.widget.setFocus()
    width.widget.selectAll()
    qtbot.keyClick(width.widget, Qt.Key.Key_Delete)
    qtbot.keyClick(width.widget, Qt.Key.Key_Return)
    assert "in_features" not in doc.graph.nodes[dense].params  # back to "inferred"
    assert doc.undo_stack.count() == steps + 1
    assert width.widget.placeholderText() == "auto" and width.widget.text() == ""


def test_the_wheel_over_an_unfocused_inspector_field_changes_nothing(window, qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    area, doc = window.designer, window.doc
    click_node(qtbot, area, "conv1")
    area.view.setFocus()
    before = dict(doc.graph.nodes["conv1"].params)
    for name in ("out_channels", "kernel_size", "padding"):
        widget = area.inspector.editors[name].widget
        assert not widget.hasFocus()
        centre = QPointF(widget.rect().center())
        event = QWheelEvent(
            centre,
            QPointF(widget.mapToGlobal(centre.toPoint())),
            QPoint(0, 0),
            QPoint(0, -120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(widget, event)
    assert doc.graph.nodes["conv1"].params == before and doc.undo_stack.count() == 0
