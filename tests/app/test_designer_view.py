"""The canvas's view and gestures: fit at a readable zoom, scrolling, selecting by click and
band, panning, edges routed around their nodes, where pastes and duplicates land, and help
text shown as HTML."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from app.designer import commands
from app.designer.items import EdgeItem, NodeItem, PendingEdgeItem
from app.designer.view import GraphView
from engine.graph import Graph
from tests.app.conftest import click_node, drag, in_port, node_center, out_port

READABLE = GraphView.READABLE_ZOOM


def chain(n: int) -> Graph:
    """Input → n alternating Linear/ReLU nodes in one long row."""
    g = Graph(name=f"chain{n}")
    g.add_node("Input", {"shape": [8]}, (0, 0), "x")
    prev = "x"
    for i in range(n):
        node = g.add_node(
            "Linear" if i % 2 == 0 else "ReLU", {"out_features": 8} if i % 2 == 0 else {}, (256 * (i + 1), 0)
        )
        g.connect(prev, node.id, 0)
        prev = node.id
    return g


def visible(area, node_id: str) -> bool:
    return area.view.visible_rect().contains(area.scene.nodes[node_id].sceneBoundingRect())


def points(path, n: int = 400) -> list[QPointF]:
    return [path.pointAtPercent(i / n) for i in range(n + 1)]


def crosses(path, item: NodeItem) -> bool:
    """Whether the path runs through the node's body (its ends touch the ports on the border)."""
    body = item.body_scene_rect().adjusted(3, 3, -3, -3)
    return any(body.contains(p) for p in points(path))


# ------------------------------------------------------------------ fit


def test_fit_never_zooms_below_readable_and_starts_from_the_input(window, qtbot):
    area = window.designer
    window.resize(1024, 700)
    window.doc.replace(chain(40))
    qtbot.wait(10)
    assert not area.view.fit()
    assert area.view.zoom() == READABLE
    assert visible(area, "x") and not visible(area, "relu20")
    assert window.statusBar().currentMessage().startswith(f"Larger than the view at {READABLE:.0%}")

    # with a selection, fit shows the selection instead
    area.scene.select_nodes(["relu20"])
    area.actions.fit.trigger()
    assert area.view.zoom() == READABLE and visible(area, "relu20") and not visible(area, "x")


def test_the_cnn_template_at_1024_by_700_is_readable(window, qtbot):
    window.resize(1024, 700)
    qtbot.wait(10)
    window.designer.view.fit()
    assert window.designer.view.zoom() >= READABLE
    assert visible(window.designer, "image")


def test_in_a_small_window_the_opening_model_reads_like_a_page(qtbot, qapp):
    from app.main import create_app, create_window

    create_app()
    window = create_window()
    qtbot.addWidget(window)
    window.resize(1024, 700)
    with qtbot.waitSignal(window.designer.canvas_sized, timeout=10_000):
        window.show()
    area, doc = window.designer, window.doc
    assert area.view.viewport().width() > 560  # the panels leave the canvas more than half
    assert area.view.zoom() == READABLE and not doc.dirty
    # laid out in bands as wide as the view at that zoom: the first band is seen whole
    top = min(n.pos[1] for n in doc.graph.nodes.values())
    first_band = [n for n, node in doc.graph.nodes.items() if node.pos[1] == top]
    assert len(first_band) >= 3 and all(visible(area, n) for n in first_band)
    assert len({n.pos[1] for n in doc.graph.nodes.values()}) > 3  # and the rest below it


def test_a_model_that_fits_is_shown_whole_and_never_magnified(window, qtbot):
    area = window.designer
    window.doc.replace(chain(2))
    assert area.view.fit()
    assert area.view.zoom() == 1.0
    assert all(visible(area, n) for n in window.doc.graph.nodes)


def test_shift_wheel_scrolls_sideways_and_the_wheel_zooms(window, qtbot):
    view = window.designer.view
    view.set_zoom(1.0)
    centre = QPointF(view.viewport().rect().center())

    def wheel(dy: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
        view.wheelEvent(
            QWheelEvent(
                centre, QPointF(view.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, dy),
                Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False,
            )
        )  # fmt: skip

    before = view.visible_center()
    wheel(-120, Qt.KeyboardModifier.ShiftModifier)
    after = view.visible_center()
    assert after.x() > before.x() and after.y() == before.y() and view.zoom() == 1.0
    wheel(120)
    assert view.zoom() > 1.0


# ------------------------------------------------------------------ gestures


def test_click_selects_one_ctrl_click_toggles_and_empty_canvas_clears(window, qtbot):
    area = window.designer
    ctrl = Qt.KeyboardModifier.ControlModifier
    click_node(qtbot, area, "conv1")
    click_node(qtbot, area, "bn1", ctrl)
    assert area.scene.selected_node_ids() == ["conv1", "bn1"]
    click_node(qtbot, area, "conv1", ctrl)
    assert area.scene.selected_node_ids() == ["bn1"]
    click_node(qtbot, area, "conv1", ctrl)
    click_node(qtbot, area, "relu1")  # a plain click: only this one
    assert area.scene.selected_node_ids() == ["relu1"]
    empty = area.view.mapFromScene(area.scene.nodes_rect().bottomRight() + QPointF(60, 60))
    qtbot.mouseClick(area.view.viewport(), Qt.MouseButton.LeftButton, pos=empty)
    assert area.scene.selected_node_ids() == []


def test_ctrl_band_adds_to_the_selection_and_leaves_nothing_behind(window, qtbot):
    area = window.designer
    click_node(qtbot, area, "head")
    first, last = area.scene.nodes["image"], area.scene.nodes["conv1"]
    a = area.view.mapFromScene(first.sceneBoundingRect().topLeft() - QPointF(20, 20))
    b = area.view.mapFromScene(last.mapToScene(last.body_rect().center()))
    port = area.view.viewport()
    ctrl = Qt.KeyboardModifier.ControlModifier
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, ctrl, a)
    qtbot.mouseMove(port, (a + b) / 2)
    qtbot.mouseMove(port, b)
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, ctrl, b)
    assert area.scene.selected_node_ids() == ["image", "conv1", "head"]
    assert all(isinstance(i.parentItem() or i, NodeItem | EdgeItem) for i in area.scene.items())


def test_space_drag_pans_and_a_drag_moves_nothing_meanwhile(window, qtbot):
    area, doc = window.designer, window.doc
    view, port = area.view, area.view.viewport()
    before, graph = view.visible_center(), doc.graph.to_dict()
    start = view.mapFromScene(node_center(area, "conv1"))  # even over a node, Space pans
    qtbot.keyPress(view, Qt.Key.Key_Space)
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(port, start + QPoint(-120, -40))
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=start + QPoint(-120, -40))
    qtbot.keyRelease(view, Qt.Key.Key_Space)
    after = view.visible_center()
    assert after.x() > before.x() and after.y() > before.y()
    assert doc.graph.to_dict() == graph and doc.undo_stack.count() == 0


def test_escape_cancels_a_connection_drag(window, qtbot):
    area, doc = window.designer, window.doc
    edges = list(doc.graph.edges)
    view, port = area.view, area.view.viewport()
    a = view.mapFromScene(in_port(area, "bn1"))  # picks up conv1 → bn1 by its input end
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(port, a + QPoint(30, 90))
    lifted = area.scene.edges[doc.graph.edges[1]]
    assert not lifted.isVisible() and any(isinstance(i, PendingEdgeItem) for i in area.scene.items())
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=a + QPoint(30, 90))
    assert lifted.isVisible() and not any(isinstance(i, PendingEdgeItem) for i in area.scene.items())
    assert doc.graph.edges == edges and doc.undo_stack.count() == 0


# ------------------------------------------------------------------ edges


def test_a_new_backward_edge_goes_around_both_its_nodes_and_above_others(window, qtbot):
    area, doc = window.designer, window.doc
    window.files.new.trigger()
    doc.push(commands.AddNode(doc, "Input", (400, 0), {"shape": [4]}))
    doc.push(commands.AddNode(doc, "ReLU", (300, 110)))  # below and left, overlapping in x
    doc.push(commands.AddNode(doc, "GELU", (40, 200)))  # below and further left
    view = area.view
    view.fit()
    # while dragging over the target, the curve already takes the route the edge will have
    a, b = view.mapFromScene(out_port(area, "input1")), view.mapFromScene(in_port(area, "relu1"))
    port = view.viewport()
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(port, (a + b) / 2)
    qtbot.mouseMove(port, b)
    preview = area.interactions.gesture.item.path
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=b)
    drag(qtbot, view, out_port(area, "relu1"), in_port(area, "gelu1"))
    assert [(e.src, e.dst) for e in doc.graph.edges] == [("input1", "relu1"), ("relu1", "gelu1")]

    for edge in doc.graph.edges:
        item = area.scene.edges[edge]
        assert not crosses(item.path, item.src) and not crosses(item.path, item.dst), edge
        assert item.zValue() > item.src.zValue()
    final = area.scene.edges[doc.graph.edges[0]].path
    near = [min((p - q).manhattanLength() for q in points(final)) for p in points(preview, 50)]
    assert max(near) < 8


def test_no_template_edge_runs_through_its_own_nodes(window, qtbot):
    from app.designer.files import TEMPLATE_TITLES, templates

    for name in templates():
        action = next(
            a for a in window.files.templates_menu.actions() if a.text() == TEMPLATE_TITLES.get(name)
        )
        action.trigger()
        for item in window.designer.scene.edges.values():
            assert not crosses(item.path, item.src) and not crosses(item.path, item.dst), (name, item.edge)


# ------------------------------------------------------------------ paste and duplicate


def test_duplicate_lands_beside_the_selection_and_repeats_walk_on(window, qtbot):
    area, doc = window.designer, window.doc
    click_node(qtbot, area, "conv1")
    x, y = doc.graph.nodes["conv1"].pos
    area.view.set_zoom(3.0)
    item = area.scene.nodes["conv1"]
    area.view.centerOn(item.body_scene_rect().bottomRight())  # so close that conv1's corner is off-screen
    assert not area.view.visible_rect().contains(item.body_scene_rect().topLeft())
    copies = []
    for _ in range(3):
        area.actions.duplicate.trigger()
        (copy,) = area.scene.selected_node_ids()
        copies.append(doc.graph.nodes[copy].pos)
    assert copies == [(x + 40, y + 40), (x + 80, y + 80), (x + 120, y + 120)]


def test_repeated_pastes_step_on_and_never_stack(window, qtbot):
    area, doc = window.designer, window.doc
    click_node(qtbot, area, "bn1")
    x, y = doc.graph.nodes["bn1"].pos
    area.actions.copy.trigger()
    pasted = []
    for _ in range(3):
        area.actions.paste.trigger()
        (copy,) = area.scene.selected_node_ids()
        pasted.append(doc.graph.nodes[copy].pos)
    assert pasted == [(x + 40, y + 40), (x + 80, y + 80), (x + 120, y + 120)]
    # a node already where the next paste would go pushes it one step further
    doc.push(commands.AddNode(doc, "ReLU", (x + 160, y + 163)))
    area.actions.paste.trigger()
    (copy,) = area.scene.selected_node_ids()
    assert doc.graph.nodes[copy].pos == (x + 200, y + 200)


def test_a_paste_far_from_its_originals_lands_in_the_middle_of_the_view(window, qtbot):
    area, doc = window.designer, window.doc
    click_node(qtbot, area, "bn1")
    area.actions.copy.trigger()
    area.view.centerOn(QPointF(5000, 4000))
    area.actions.paste.trigger()
    (copy,) = area.scene.selected_node_ids()
    assert visible(area, copy)
    positions = [n.pos for n in doc.graph.nodes.values()]
    assert positions.count(doc.graph.nodes[copy].pos) == 1


# ------------------------------------------------------------------ help text


def test_help_text_code_is_shown_as_code(window, qtbot):
    area = window.designer
    tips = {name: item.toolTip(0) for name, item in area.palette.items.items()}
    assert "<code>times</code>" in tips["Repeat"]
    assert not any("`" in tip for tip in tips.values())
    window.files.templates_menu.actions()[3].trigger()  # GPT: a Repeat node
    assert "<code>times</code>" in area.scene.nodes["blocks"].toolTip()
