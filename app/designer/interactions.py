"""Mouse and keyboard gestures on the canvas, each a small state object that lives from a
press to its release (orange-canvas-core's `document/interactions.py` is the model).

`Interactions` watches the view's events, starts the gesture a press asks for and feeds it the
moves and the release. A gesture edits nothing itself: it pushes commands to the document
(`Interactions.push`), and the scene follows the document. The gestures:

- `DragMove`: press on a node; selects as Qt items do, then each move pushes a `MoveNodes`
  that merges into one undo step per drag.
- `RubberBand`: press on empty canvas; selects the nodes and edges the band touches.
- `NewEdge`: press on a port; a dashed curve follows the cursor, a release on a port or node
  connects (or says why not), on empty canvas asks what to add. Picking up a connected input
  port lifts its edge: drop it elsewhere to move it, on empty canvas to delete it.
- `Pan`: middle button, or Space + left button; scrolls the view.
- `Nudge`: arrow keys move the selection; a run of nudges is one undo step.
"""

from __future__ import annotations

import itertools

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem

from app import theme
from app.designer import commands
from app.designer.document import GraphDocument
from app.designer.items import EdgeItem, NodeItem, PendingEdgeItem, PortItem
from app.designer.scene import GraphScene
from app.designer.view import GRID, GraphView
from engine.graph import Edge

_gestures = itertools.count(1)
Button = Qt.MouseButton
Key = Qt.Key

#: what the gestures are, in words, for the keyboard-shortcuts dialog
GESTURES = (
    ("Pan", "Middle-drag, or Space + drag"),
    ("Zoom", "Mouse wheel (Shift + wheel scrolls sideways)"),
    ("Select", "Click; Ctrl + click adds or removes; drag on empty canvas for a band"),
    ("Move", "Drag a node (all selected nodes move together)"),
    ("Connect", "Drag from an output port to an input port, or onto a node"),
    ("Move a connection", "Drag its input end elsewhere (drop on empty canvas to delete)"),
    ("Add after a node", "Drag from its output port onto empty canvas"),
    ("Nudge selection", "Arrow keys (Shift: one grid step)"),
    ("Cancel", "Esc"),
)


class Gesture:
    """One gesture in progress: it gets the moves and the release of the button that began it."""

    def __init__(self, canvas: Interactions, button: Qt.MouseButton):
        self.canvas = canvas
        self.button = button

    def move(self, pos: QPointF, event) -> None:
        pass

    def release(self, pos: QPointF, event) -> None:
        pass

    def cancel(self) -> None:
        """Undo whatever the gesture shows (not what it pushed: that is on the undo stack)."""


class DragMove(Gesture):
    """Press on a node or edge: Qt's selection rules (Ctrl toggles on release, a plain click
    selects only this item), and dragging a node moves every selected node."""

    def __init__(self, canvas: Interactions, item: QGraphicsItem, pos: QPointF, modifiers):
        super().__init__(canvas, Button.LeftButton)
        scene = canvas.scene
        self.item, self.press = item, pos
        self.toggle = bool(modifiers & Qt.KeyboardModifier.ControlModifier)
        if not self.toggle and not item.isSelected():
            scene.clearSelection()
            item.setSelected(True)
        graph = canvas.doc.graph
        ids = scene.selected_node_ids() if isinstance(item, NodeItem) else []
        self.start = {n: graph.nodes[n].pos for n in ids}
        self.gesture = next(_gestures)
        self.moved = False

    def move(self, pos: QPointF, event) -> None:
        if not self.start:
            return
        d = pos - self.press
        graph = self.canvas.doc.graph
        positions = {n: (round(x + d.x()), round(y + d.y())) for n, (x, y) in self.start.items()}
        positions = {n: p for n, p in positions.items() if n in graph.nodes}
        if any(positions[n] != graph.nodes[n].pos for n in positions):
            self.moved = True
            self.canvas.push(commands.MoveNodes(self.canvas.doc, positions, gesture=self.gesture))

    def release(self, pos: QPointF, event) -> None:
        if self.moved or pos != self.press or self.item.scene() is None:
            return
        if self.toggle:
            self.item.setSelected(not self.item.isSelected())
            return
        for other in self.canvas.scene.selectedItems():
            if other is not self.item:
                other.setSelected(False)
        self.item.setSelected(True)


class RubberBand(Gesture):
    """Press on empty canvas: clears the selection (unless Ctrl), and a drag selects what the
    band touches (added to the selection with Ctrl)."""

    def __init__(self, canvas: Interactions, pos: QPointF, modifiers):
        super().__init__(canvas, Button.LeftButton)
        self.press = pos
        self.add = bool(modifiers & Qt.KeyboardModifier.ControlModifier)
        self.kept = list(canvas.scene.selectedItems()) if self.add else []
        if not self.add:
            canvas.scene.clearSelection()
        self.band: QGraphicsRectItem | None = None

    def move(self, pos: QPointF, event) -> None:
        rect = QRectF(self.press, pos).normalized()
        if self.band is None:
            t = theme.current()
            self.band = QGraphicsRectItem()
            pen = QPen(QColor(t.accent), 1)
            pen.setCosmetic(True)
            fill = QColor(t.accent)
            fill.setAlpha(40)
            self.band.setPen(pen)
            self.band.setBrush(fill)
            self.band.setZValue(10)
            self.canvas.scene.addItem(self.band)
        self.band.setRect(rect)
        path = QPainterPath()
        path.addRect(rect)
        scene = self.canvas.scene
        scene.setSelectionArea(
            path, Qt.ItemSelectionOperation.ReplaceSelection, Qt.ItemSelectionMode.IntersectsItemShape
        )
        for item in self.kept:
            if item.scene() is scene:
                item.setSelected(True)

    def release(self, pos: QPointF, event) -> None:
        self.cancel()

    def cancel(self) -> None:
        if self.band is not None and self.band.scene() is not None:
            self.band.scene().removeItem(self.band)
        self.band = None


class NewEdge(Gesture):
    """Press on a port: connect it by dragging to the other end."""

    def __init__(self, canvas: Interactions, port: PortItem):
        super().__init__(canvas, Button.LeftButton)
        scene, graph = canvas.scene, canvas.doc.graph
        node = port.node.node_id
        self.lifted: Edge | None = None
        if port.is_input:
            src = graph.inputs_of(node).get(port.index)
            if src is not None and src in scene.nodes:
                # Pick the edge up by its input end: drop it elsewhere to move it, on empty canvas to delete it.
                self.lifted = Edge(src, node, port.index)
                scene.edges[self.lifted].hide()
                port = scene.nodes[src].output
        self.node = port.node.node_id  # the end that stays put
        self.port = port.index  # its input port when dragging backwards from an input
        self.from_output = not port.is_input
        self.item = PendingEdgeItem(port.scenePos(), self.from_output, port.node.body_scene_rect())
        scene.addItem(self.item)
        self.target: Edge | None = None
        self.reason: str | None = None
        self.hovered: PortItem | NodeItem | None = None

    def _candidate(self, pos: QPointF) -> tuple[Edge | None, PortItem | NodeItem | None]:
        """The connection that a release at `pos` would make, and the item to highlight."""
        scene, graph = self.canvas.scene, self.canvas.doc.graph
        port = scene.port_at(pos)
        if port is not None and port.is_input == self.from_output:
            if self.from_output:
                return Edge(self.node, port.node.node_id, port.index), port
            return Edge(port.node.node_id, self.node, self.port), port
        node = scene.node_at(pos)
        if node is None or node.node_id == self.node:
            return None, None  # empty canvas, or back over the node the drag started from
        if self.from_output:
            op = node.op
            free = graph.next_free_port(node.node_id)
            fits = op.max_inputs is None or free < op.max_inputs
            return Edge(self.node, node.node_id, free if fits else 0), node
        return Edge(node.node_id, self.node, self.port), node

    def move(self, pos: QPointF, event) -> None:
        target, hovered = self._candidate(pos)
        reason = None
        if target is not None and target != self.lifted:
            reason = self.canvas.doc.graph.can_connect(target.src, target.dst, target.port)
        if isinstance(self.hovered, PortItem) and self.hovered is not hovered:
            self.hovered.set_highlight(None)
        state = None if target is None else ("error" if reason else "ok")
        if isinstance(hovered, PortItem):
            hovered.set_highlight(state)
        if reason and reason != self.reason:
            self.canvas.message.emit(f"Cannot connect: {reason}")
        self.target, self.reason, self.hovered = target, reason, hovered
        other = None
        if hovered is not None:
            other = (hovered.node if isinstance(hovered, PortItem) else hovered).body_scene_rect()
        self.item.set_end(pos, state, other)

    def release(self, pos: QPointF, event) -> None:
        self.move(pos, event)
        self._clear()
        canvas, doc, target = self.canvas, self.canvas.doc, self.target
        if target is not None and self.reason:
            self._show_lifted()
            canvas.refused.emit(self.reason, pos)
        elif target is not None:
            if target == self.lifted:
                self._show_lifted()
                return
            if self.lifted:
                doc.undo_stack.beginMacro(f"Reconnect {target.src} → {target.dst}")
                canvas.push(commands.Disconnect(doc, self.lifted))
                canvas.push(commands.Connect(doc, target.src, target.dst, target.port))
                doc.undo_stack.endMacro()
            else:
                canvas.push(commands.Connect(doc, target.src, target.dst, target.port))
            canvas.connected.emit(target)
        elif self.lifted:
            canvas.push(commands.Disconnect(doc, self.lifted))
        elif self.from_output:
            canvas.dropped_from_output.emit(self.node, pos)

    def cancel(self) -> None:
        self._show_lifted()
        self._clear()

    def _show_lifted(self) -> None:
        item = self.canvas.scene.edges.get(self.lifted) if self.lifted else None
        if item is not None:
            item.show()

    def _clear(self) -> None:
        if isinstance(self.hovered, PortItem) and self.hovered.scene() is not None:
            self.hovered.set_highlight(None)
        if self.item.scene() is not None:
            self.item.scene().removeItem(self.item)


class Pan(Gesture):
    """Middle button, or Space + left button: the canvas follows the mouse."""

    def __init__(self, canvas: Interactions, button: Qt.MouseButton, at: QPointF):
        super().__init__(canvas, button)
        self.last = at  # viewport coordinates: the scene moves under the mouse, these do not
        canvas.view.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)

    def move(self, pos: QPointF, event) -> None:
        at = event.position()
        delta = at - self.last
        self.last = at
        self.canvas.view.scroll_by(-delta.x(), -delta.y())

    def release(self, pos: QPointF, event) -> None:
        self.cancel()

    def cancel(self) -> None:
        self.canvas.view.viewport().setCursor(
            Qt.CursorShape.OpenHandCursor if self.canvas.space else Qt.CursorShape.ArrowCursor
        )


class Nudge:
    """Arrow keys move the selection by a pixel (Shift: a grid step). Nudges of one selection
    share a gesture number, so a run of them is one undo step."""

    ARROWS = {Key.Key_Left: (-1, 0), Key.Key_Right: (1, 0), Key.Key_Up: (0, -1), Key.Key_Down: (0, 1)}

    def __init__(self, canvas: Interactions):
        self.canvas = canvas
        self.gesture = next(_gestures)
        canvas.scene.selectionChanged.connect(self.restart)

    def restart(self) -> None:
        self.gesture = next(_gestures)

    def key(self, key: int, modifiers) -> bool:
        ids = self.canvas.scene.selected_node_ids()
        if key not in self.ARROWS or not ids:
            return False
        step = GRID if modifiers & Qt.KeyboardModifier.ShiftModifier else 1
        dx, dy = self.ARROWS[key]
        nodes = self.canvas.doc.graph.nodes
        positions = {n: (nodes[n].pos[0] + dx * step, nodes[n].pos[1] + dy * step) for n in ids}
        self.canvas.push(commands.MoveNodes(self.canvas.doc, positions, gesture=self.gesture))
        return True


class Interactions(QObject):
    """Routes the view's mouse and key events to gestures. A press starts the gesture it asks
    for; moves and the release go to that gesture until it ends. Right-clicks and
    double-clicks go on to the scene, which reports them (context menu, activation)."""

    message = Signal(str)  # for the status bar, while a gesture goes on
    refused = Signal(str, QPointF)  # why a connection was refused, and where it was dropped
    connected = Signal(object)  # the Edge a drag made
    dropped_from_output = Signal(str, QPointF)  # a connection dragged into empty canvas

    def __init__(self, doc: GraphDocument, scene: GraphScene, view: GraphView, parent: QObject | None = None):
        super().__init__(parent)
        self.doc, self.scene, self.view = doc, scene, view
        self.gesture: Gesture | None = None
        self.space = False
        self.nudge = Nudge(self)
        scene.rebuilding.connect(self.cancel)
        view.viewport().installEventFilter(self)
        view.installEventFilter(self)

    def push(self, command) -> None:
        """The one way gestures edit: a command on the document's undo stack."""
        self.doc.push(command)

    def cancel(self) -> None:
        if self.gesture is not None:
            gesture, self.gesture = self.gesture, None
            gesture.cancel()

    # ------------------------------------------------------------ routing

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if obj is self.view.viewport():
            if kind == QEvent.Type.MouseButtonPress:
                return self._press(event)
            if kind == QEvent.Type.MouseMove and self.gesture is not None:
                self.gesture.move(self._scene_pos(event), event)
                return True
            if kind == QEvent.Type.MouseButtonRelease and self.gesture is not None:
                if event.button() == self.gesture.button:
                    gesture, self.gesture = self.gesture, None
                    gesture.release(self._scene_pos(event), event)
                return True
        elif obj is self.view:
            if kind == QEvent.Type.KeyPress:
                return self._key_press(event)
            if kind == QEvent.Type.KeyRelease and event.key() == Key.Key_Space and not event.isAutoRepeat():
                self.space = False
                if self.gesture is None:
                    self.view.viewport().setCursor(Qt.CursorShape.ArrowCursor)
                return True
        return False

    def _scene_pos(self, event) -> QPointF:
        return self.view.mapToScene(event.position().toPoint())

    def _press(self, event) -> bool:
        if self.gesture is not None:
            return True  # a second button during a gesture does nothing
        button, pos = event.button(), self._scene_pos(event)
        if button == Button.MiddleButton or (button == Button.LeftButton and self.space):
            self.gesture = Pan(self, button, event.position())
            return True
        if button != Button.LeftButton:
            return False  # the right button: the scene's context menu
        port = self.scene.port_at(pos)
        if port is not None:
            self.gesture = NewEdge(self, port)
            return True
        item = self.scene.selectable_at(pos)
        if isinstance(item, NodeItem | EdgeItem):
            self.gesture = DragMove(self, item, pos, event.modifiers())
        else:
            self.gesture = RubberBand(self, pos, event.modifiers())
        return True

    def _key_press(self, event) -> bool:
        key = event.key()
        if key == Key.Key_Space and not event.isAutoRepeat():
            self.space = True
            if self.gesture is None:
                self.view.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return True
        if key == Key.Key_Escape:
            self.cancel()
            self.scene.clearSelection()
            return True
        return self.nudge.key(key, event.modifiers())
