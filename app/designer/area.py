"""The Designer area: canvas in the middle, layer palette on the left, inspector on the right,
model summary below, and the editing actions (undo, clipboard, zoom, layout) that the main
window puts in its menus and toolbar. A Repeat body opens in another DesignerArea in a dialog.

This module turns user intents ("add a ReLU after the selected node", "paste here") into
commands; it decides nothing about shapes or params, which the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCursor, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QMessageBox

from app import icons
from app.designer import clipboard, commands
from app.designer.document import GraphDocument
from app.designer.health_overlay import HealthOverlay
from app.designer.inspector import InspectorWidget
from app.designer.interactions import Interactions
from app.designer.items import NODE_H, NODE_W
from app.designer.layout import COLUMN, layered_positions
from app.designer.palette import PaletteWidget, QuickAdd
from app.designer.scene import GraphScene
from app.designer.summary import SummaryPanel
from app.designer.view import GRID, GraphView
from engine.errors import GraphError
from engine.graph import OPS, Edge, Graph
from engine.graph.ops import categories

Key = QKeySequence.StandardKey
#: each paste or duplicate lands this far from the one before (or from the originals)
PASTE_STEP = (2 * GRID, 2 * GRID)
CANVAS_SETTLE_MS = 150  # a resize is announced once the canvas stops changing size


@dataclass
class DesignerActions:
    undo: QAction
    redo: QAction
    cut: QAction
    copy: QAction
    paste: QAction
    delete: QAction
    duplicate: QAction
    select_all: QAction
    add_node: QAction
    set_output: QAction
    edit_body: QAction
    zoom_in: QAction
    zoom_out: QAction
    fit: QAction
    auto_layout: QAction

    def edit_menu_groups(self) -> list[list[QAction]]:
        return [
            [self.undo, self.redo],
            [self.cut, self.copy, self.paste, self.duplicate, self.delete],
            [self.select_all],
            [self.add_node, self.set_output, self.edit_body],
        ]

    def view_actions(self) -> list[QAction]:
        return [self.zoom_in, self.zoom_out, self.fit, self.auto_layout]

    def all(self) -> list[QAction]:
        return [getattr(self, f.name) for f in fields(self)]


class DesignerArea(QMainWindow):
    status = Signal(str)
    # the panels have their first real size, and so has the canvas; later, the canvas settled
    # at a new size (a window manager's or the user's resize)
    canvas_sized = Signal()

    def __init__(self, doc: GraphDocument, parent=None):
        super().__init__(parent)
        self.setObjectName("designerArea")
        self.setWindowFlags(Qt.WindowType.Widget)
        self.doc = doc
        if doc.parent() is None:
            # A document nobody owns lives and dies with its view: left to Python's garbage
            # collector, it outlived the widgets its signals reach and crashed when collected.
            doc.setParent(self)
        self.scene = GraphScene(doc, self)
        self.view = GraphView(self.scene)
        self.interactions = Interactions(doc, self.scene, self.view, self)
        self.setCentralWidget(self.view)
        self.palette = PaletteWidget()
        self.inspector = InspectorWidget(doc)
        self.summary = SummaryPanel(doc)
        self.docks = {
            "palette": self._dock("Layers", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea),
            "inspector": self._dock("Properties", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea),
            "summary": self._dock("Model summary", self.summary, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        self.health = HealthOverlay(self.scene, self.view, self)  # a run's health on the nodes
        self.docks["health"] = self._dock("Health", self.health.widget, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["inspector"], self.docks["health"])
        self.docks["inspector"].raise_()
        self.docks["health"].visibilityChanged.connect(lambda on: on and self.health.showing())
        self._docks_sized = False  # by a restored state, or at the first show
        self._shown = False
        self._resized = QTimer(self, singleShot=True, interval=CANVAS_SETTLE_MS)
        self._resized.timeout.connect(self.canvas_sized)
        self.view.viewport().installEventFilter(self)
        self.quick_add = QuickAdd(self)
        self._quick_target: tuple[QPointF, str | None] = (QPointF(), None)
        self._last_paste: tuple[str, tuple[float, float], list[str]] | None = None  # text, shift, ids
        self._active = True
        self.actions = self._make_actions()

        self.palette.op_activated.connect(lambda op: self.add_op(op))
        self.view.op_dropped.connect(self._dropped)
        self.view.notice.connect(self.status)
        self.quick_add.chosen.connect(self._quick_chosen)
        self.interactions.message.connect(self.status)
        self.interactions.refused.connect(self._refused)
        self.interactions.connected.connect(self._connected)
        self.interactions.dropped_from_output.connect(lambda src, pos: self.open_quick_add(pos, src))
        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.node_activated.connect(self._node_activated)
        self.scene.background_activated.connect(lambda pos: self.open_quick_add(pos))
        self.scene.context_requested.connect(self._context_menu)
        doc.reset.connect(self.view.clear_note)
        self.summary.node_selected.connect(self.reveal)
        self.inspector.edit_body_requested.connect(self.edit_body)
        self._selection_changed()

    def restoreState(self, state, version: int = 0) -> bool:
        restored = super().restoreState(state, version)
        self._docks_sized |= restored
        return restored

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._shown:
            # once the window has its real size (a main window shares later growth out among
            # the panels in proportion, so sizes set earlier end up wrong)
            self._shown = True
            QTimer.singleShot(0, self._first_shown)

    def eventFilter(self, obj, event) -> bool:
        if obj is self.view.viewport() and event.type() == QEvent.Type.Resize and self._shown:
            self._resized.start()
        return super().eventFilter(obj, event)

    def _first_shown(self) -> None:
        """Panels sized for the window (unless a saved state sized them), then the canvas is
        announced: also with restored panels, the opening model must be laid out for the canvas
        it has, not the one a template assumes."""
        if not self.isVisible():
            return
        if not self._docks_sized:
            self._docks_sized = True
            self._size_docks()
        self.layout().activate()  # the canvas gets its size now, not at the next layout pass
        self.canvas_sized.emit()
        self.view.fit()

    def _size_docks(self) -> None:
        """Panels sized for the window: fixed widths left a 1024-pixel window half its canvas."""
        w, h = self.width(), self.height()
        self.resizeDocks(
            [self.docks["palette"], self.docks["inspector"]],
            [_within(w * 0.17, 180, 210), _within(w * 0.24, 240, 300)],
            Qt.Orientation.Horizontal,
        )
        self.resizeDocks([self.docks["summary"]], [_within(h * 0.24, 130, 190)], Qt.Orientation.Vertical)

    def _dock(self, title: str, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{widget.objectName() or title}Dock")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    def _make_actions(self) -> DesignerActions:
        def act(text, slot, shortcut=None, icon=None, tip=None) -> QAction:
            a = QAction(text, self)
            if icon:
                a.setIcon(icons.icon(icon))
            if shortcut is not None:
                a.setShortcuts(shortcut if isinstance(shortcut, list) else QKeySequence.keyBindings(shortcut))
            if tip:
                a.setStatusTip(tip)
                a.setToolTip(tip)
            a.triggered.connect(lambda _checked=False: slot())
            self.addAction(a)  # shortcuts work wherever this area is shown (the main window or a dialog)
            return a

        stack = self.doc.undo_stack
        undo = stack.createUndoAction(self, "&Undo")
        undo.setShortcuts(QKeySequence.keyBindings(Key.Undo))
        undo.setIcon(icons.icon("undo"))
        undo.setProperty("title", "Undo")  # its text names the step it undoes
        redo = stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        redo.setIcon(icons.icon("redo"))
        redo.setProperty("title", "Redo")
        self.addActions([undo, redo])
        keys = QKeySequence
        return DesignerActions(
            undo=undo,
            redo=redo,
            cut=act("Cu&t", self.cut, Key.Cut, "cut", "Cut the selected nodes to the clipboard"),
            copy=act("&Copy", self.copy, Key.Copy, "copy", "Copy the selected nodes as graph JSON"),
            paste=act("&Paste", self.paste, Key.Paste, "paste", "Paste nodes from the clipboard"),
            delete=act(
                "&Delete",
                self.delete_selection,
                [keys(Qt.Key.Key_Delete), keys(Qt.Key.Key_Backspace)],
                "delete",
                "Delete the selected nodes and connections",
            ),
            duplicate=act(
                "D&uplicate", self.duplicate, [keys("Ctrl+D")], "duplicate", "Duplicate the selection"
            ),
            select_all=act("Select &All", self.select_all, Key.SelectAll),
            add_node=act(
                "&Add Layer…",
                lambda: self.open_quick_add(),
                [keys("Shift+A")],
                "add",
                "Add a layer at the cursor",
            ),
            set_output=act(
                "Mark as &Output",
                self.set_output,
                [keys("Ctrl+Shift+O")],
                "output",
                "Make the selected node the model output",
            ),
            edit_body=act("Edit Repeat &Body…", self.edit_selected_body, [keys("Ctrl+E")], "body"),
            zoom_in=act(
                "Zoom &In", self.view.zoom_in, [keys("Ctrl+="), keys("Ctrl++")], "zoom-in", "Zoom in"
            ),
            zoom_out=act("Zoom &Out", self.view.zoom_out, [keys("Ctrl+-")], "zoom-out", "Zoom out"),
            fit=act(
                "&Fit to View", self.view.fit, [keys("Ctrl+0"), keys("F")], "fit", "Show the whole model"
            ),
            auto_layout=act(
                "Auto-&Layout", self.auto_layout, [keys("Ctrl+L")], "layout", "Arrange nodes left to right"
            ),
        )

    def set_active(self, active: bool) -> None:
        """Whether this area is the one on screen. Its actions, and so their shortcuts, work only
        then: Delete or Ctrl+D on another tab must not edit a model out of sight (and would
        clash with that tab's own Delete and Ctrl+D)."""
        self._active = active
        for action in [*self.actions.all(), *(d.toggleViewAction() for d in self.docks.values())]:
            action.setEnabled(active)
        if active:
            self.actions.undo.setEnabled(self.doc.undo_stack.canUndo())
            self.actions.redo.setEnabled(self.doc.undo_stack.canRedo())
            self._selection_changed()

    def refresh_icons(self) -> None:
        """Re-tint the action icons after a theme change."""
        a = self.actions
        for action, name in (
            (a.undo, "undo"), (a.redo, "redo"), (a.cut, "cut"), (a.copy, "copy"), (a.paste, "paste"),
            (a.delete, "delete"), (a.duplicate, "duplicate"), (a.add_node, "add"), (a.set_output, "output"),
            (a.edit_body, "body"), (a.zoom_in, "zoom-in"), (a.zoom_out, "zoom-out"), (a.fit, "fit"),
            (a.auto_layout, "layout"),
        ):  # fmt: skip
            action.setIcon(icons.icon(name))
        self.palette.refresh_icons()

    # ------------------------------------------------------------ adding

    def add_op(self, op: str, pos: QPointF | None = None, connect_from: str | None = None) -> str:
        """Add an op; without a position it goes right of the selected node and is wired to it."""
        graph = self.doc.graph
        if pos is None and connect_from is None:
            selected = self.scene.selected_node_ids()
            if len(selected) == 1:
                connect_from = selected[0]
        if pos is None:
            if connect_from is not None:
                x, y = graph.nodes[connect_from].pos
                pos = QPointF(x + COLUMN, y)
            else:
                pos = self.view.visible_center() - QPointF(NODE_W / 2, NODE_H / 2)
            pos = self._free_spot(pos)
        command = commands.AddNode(self.doc, op, (round(pos.x()), round(pos.y())))
        new = command.node.id
        wire = connect_from is not None and OPS[op].max_inputs != 0
        if wire:
            self.doc.undo_stack.beginMacro(command.text())
            self.doc.push(command)
            reason = graph.can_connect(connect_from, new, 0)
            if reason is None:
                self.doc.push(commands.Connect(self.doc, connect_from, new, 0))
            self.doc.undo_stack.endMacro()
        else:
            self.doc.push(command)
        self.scene.select_nodes([new])
        self.view.center_on_node(new)
        return new

    def _free_spot(self, pos: QPointF) -> QPointF:
        taken = [n.pos for n in self.doc.graph.nodes.values()]
        while any(abs(x - pos.x()) < NODE_W * 0.6 and abs(y - pos.y()) < NODE_H for x, y in taken):
            pos += QPointF(0, NODE_H + 30)
        return pos

    def open_quick_add(self, pos: QPointF | None = None, connect_from: str | None = None) -> None:
        if pos is None:
            cursor = self.view.mapFromGlobal(QCursor.pos())
            inside = self.view.viewport().rect().contains(cursor)
            pos = self.view.mapToScene(cursor) if inside else self.view.visible_center()
        self._quick_target = (pos, connect_from)
        screen = self.view.viewport().mapToGlobal(self.view.mapFromScene(pos))
        self.quick_add.popup(screen)

    def _quick_chosen(self, op: str) -> None:
        pos, connect_from = self._quick_target
        target = pos - QPointF(0 if connect_from else NODE_W / 2, NODE_H / 2)
        self.add_op(op, target, connect_from)

    # ------------------------------------------------------------ editing the selection

    def delete_selection(self) -> None:
        nodes = self.scene.selected_node_ids()
        gone = set(nodes)
        edges = [e for e in self.scene.selected_edges() if e.src not in gone and e.dst not in gone]
        if not nodes and not edges:
            return
        stack = self.doc.undo_stack
        stack.beginMacro("Delete")
        for edge in edges:
            self.doc.push(commands.Disconnect(self.doc, edge))
        if nodes:
            self.doc.push(commands.RemoveNodes(self.doc, nodes))
        stack.endMacro()

    def copy(self) -> int:
        ids = self.scene.selected_node_ids()
        if ids:
            clipboard.copy_to_clipboard(clipboard.fragment(self.doc.graph, ids))
            self.status.emit(f"Copied {len(ids)} node{'s' if len(ids) != 1 else ''}")
        return len(ids)

    def cut(self) -> None:
        ids = self.scene.selected_node_ids()
        if self.copy():
            self.doc.push(commands.RemoveNodes(self.doc, ids, text="Cut"))

    def paste(self) -> None:
        part = clipboard.from_clipboard()
        if part is None or not part.nodes:
            self.status.emit("The clipboard holds no Trainbench nodes")
            return
        key, last = part.to_json(), self._last_paste
        if last is not None and last[0] == key and any(n in self.doc.graph.nodes for n in last[2]):
            (dx, dy) = last[1]  # the same nodes again: one step on from the last paste
            delta = (dx + PASTE_STEP[0], dy + PASTE_STEP[1])
        else:
            delta = self._paste_spot(part)
        delta = self._paste(part, delta, "Paste")
        self._last_paste = (key, delta, self.scene.selected_node_ids())

    def duplicate(self) -> None:
        """A copy of the selection one step down and right of it; Ctrl+D again copies the copy,
        so repeated duplicates walk on instead of stacking."""
        ids = self.scene.selected_node_ids()
        if ids:
            self._paste(clipboard.fragment(self.doc.graph, ids), PASTE_STEP, "Duplicate")

    def _paste_spot(self, part: Graph) -> tuple[float, float]:
        """Beside the originals while they are in sight, else in the middle of the view."""
        xs = [n.pos[0] for n in part.nodes.values()]
        ys = [n.pos[1] for n in part.nodes.values()]
        where = QRectF(min(xs), min(ys), max(xs) - min(xs) + NODE_W, max(ys) - min(ys) + NODE_H)
        if self.view.visible_rect().intersects(where):
            return PASTE_STEP
        center = self.view.visible_center() - where.center()
        return (round(center.x() / GRID) * GRID, round(center.y() / GRID) * GRID)

    def _paste(self, part: Graph, delta: tuple[float, float], text: str) -> tuple[float, float]:
        """Add `part` shifted by `delta`, stepping on while a copy would land on a node already
        there; returns the shift used."""
        near = GRID  # closer than this in both directions reads as "on top of"
        taken = [n.pos for n in self.doc.graph.nodes.values()]
        moved = [n.pos for n in part.nodes.values()]
        dx, dy = delta
        for _ in range(100):
            if not any(
                abs(x + dx - tx) < near and abs(y + dy - ty) < near for x, y in moved for tx, ty in taken
            ):
                break
            dx, dy = dx + PASTE_STEP[0], dy + PASTE_STEP[1]
        command = commands.Paste(self.doc, part, (round(dx), round(dy)), text=text)
        self.doc.push(command)
        self.scene.select_nodes(command.node_ids)
        return (round(dx), round(dy))

    def select_all(self) -> None:
        for item in self.scene.nodes.values():
            item.setSelected(True)

    def set_output(self) -> None:
        ids = self.scene.selected_node_ids()
        if len(ids) == 1 and self.doc.graph.output != ids[0]:
            self.doc.push(commands.SetOutput(self.doc, ids[0]))

    def auto_layout(self) -> None:
        positions = layered_positions(self.doc.graph, self.view_size())
        moved = {n: p for n, p in positions.items() if self.doc.graph.nodes[n].pos != p}
        if moved:
            self.doc.push(commands.MoveNodes(self.doc, moved, text="Auto-layout"))
        self.view.fit()

    def view_size(self) -> tuple[float, float]:
        size = self.view.viewport().size()
        return (float(size.width()), float(size.height()))

    def reveal(self, node_id: str) -> None:
        """Select a node and scroll it into view (from the summary's problems and table)."""
        self.scene.select_nodes([node_id])
        self.view.center_on_node(node_id)

    # ------------------------------------------------------------ Repeat bodies

    def edit_selected_body(self) -> None:
        ids = self.scene.selected_node_ids()
        if len(ids) == 1 and "body" in {f.name for f in OPS[self.doc.graph.nodes[ids[0]].op].params}:
            self.edit_body(ids[0])

    def edit_body(self, node_id: str) -> None:
        from app.designer.body import BodyDialog  # a dialog holding another DesignerArea

        node = self.doc.graph.nodes[node_id]
        info = self.doc.analysis.nodes.get(node_id) if self.doc.analysis else None
        input_type = info.inputs[0] if info and info.inputs else None
        try:
            dialog = BodyDialog(node, input_type, f"{self.doc.graph.name} › {node_id}", self)
        except GraphError as err:
            QMessageBox.warning(self, "Cannot open the body", str(err))
            return
        if dialog.exec() and dialog.changed:
            self.doc.push(commands.SetParam(self.doc, node_id, "body", dialog.body()))

    # ------------------------------------------------------------ reacting to the canvas

    def _dropped(self, op: str, pos: QPointF) -> None:
        if op in OPS:  # the palette's drag, not some other program's
            self.add_op(op, pos - QPointF(NODE_W / 2, NODE_H / 2))

    def _refused(self, reason: str, pos: QPointF) -> None:
        text = f"Cannot connect: {reason}"
        self.status.emit(text)
        self.view.show_note(text, pos)

    def _connected(self, edge: Edge) -> None:
        self.view.clear_note()
        self.status.emit(f"Connected {edge.src} → {edge.dst}")

    def _selection_changed(self) -> None:
        ids = self.scene.selected_node_ids()
        has_edges = bool(self.scene.selected_edges())
        self.inspector.show_node(ids[0] if len(ids) == 1 else None, len(ids))
        if not self._active:
            return
        a = self.actions
        for action in (a.cut, a.copy, a.duplicate):
            action.setEnabled(bool(ids))
        a.delete.setEnabled(bool(ids) or has_edges)
        a.set_output.setEnabled(len(ids) == 1)
        a.edit_body.setEnabled(
            len(ids) == 1 and any(f.kind == "graph" for f in OPS[self.doc.graph.nodes[ids[0]].op].params)
        )

    def _node_activated(self, node_id: str) -> None:
        if any(f.kind == "graph" for f in OPS[self.doc.graph.nodes[node_id].op].params):
            self.edit_body(node_id)
        elif self.inspector.editors:
            next(iter(self.inspector.editors.values())).widget.setFocus()

    def _context_menu(self, node_id: str | None, screen) -> None:
        a = self.actions
        menu = QMenu(self)
        if node_id is not None:
            menu.addActions([a.cut, a.copy, a.duplicate, a.delete])
            menu.addSeparator()
            menu.addActions([a.set_output, a.edit_body] if a.edit_body.isEnabled() else [a.set_output])
        else:
            scene_pos = self.view.mapToScene(self.view.mapFromGlobal(screen))
            add = menu.addMenu(icons.icon("add"), "Add Layer")
            for category, ops in categories().items():
                sub = add.addMenu(category)
                for op in ops:
                    sub.addAction(op.name, lambda op=op.name: self.add_op(op, scene_pos))
            menu.addActions([a.paste, a.select_all])
            menu.addSeparator()
            menu.addActions([a.auto_layout, a.fit])
        menu.exec(screen)


def _within(value: float, low: int, high: int) -> int:
    return int(min(max(value, low), high))
