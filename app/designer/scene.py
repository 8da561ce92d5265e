"""The canvas: `GraphScene` mirrors a `GraphDocument` with items and turns gestures into commands;
`GraphView` adds zoom, pan, fit, keyboard nudges and drops from the palette.

The scene follows the document's signals, never the other way round: a drag pushes a MoveNodes
command and the item moves when the document says the node moved. That keeps undo, redo and
every other view consistent for free.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

from PySide6.QtCore import QLineF, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QTransform
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QToolTip

from app import theme
from app.designer import commands
from app.designer.document import GraphDocument
from app.designer.items import EdgeItem, NodeItem, PendingEdgeItem, PortItem
from app.designer.palette import OP_MIME
from engine.graph import OPS, Analysis, Edge

GRID = 20.0
_gestures = itertools.count(1)


def port_count(op, connected: set[int]) -> int:
    """Fixed-arity ops show all their ports; variadic ones (Add, Concat) one spare port."""
    if op.max_inputs is not None:
        return op.max_inputs
    return max(op.min_inputs, max(connected) + 2 if connected else 0)


@dataclass
class _Connecting:
    node: str  # the end that stays put
    port: int  # its input port when dragging backwards from an input
    from_output: bool
    lifted: Edge | None  # an existing edge picked up by its input end
    item: PendingEdgeItem
    target: Edge | None = None
    reason: str | None = None
    hovered: object = None


@dataclass
class _Dragging:
    start: dict[str, tuple[float, float]]
    press: QPointF
    gesture: int


class GraphScene(QGraphicsScene):
    message = Signal(str)  # for the status bar
    node_activated = Signal(str)  # double-click on a node
    background_activated = Signal(QPointF)  # double-click on empty canvas
    dropped_from_output = Signal(str, QPointF)  # a connection dragged into empty canvas
    context_requested = Signal(object, QPoint)  # node id or None, screen position

    def __init__(self, doc: GraphDocument, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[Edge, EdgeItem] = {}
        self._connecting: _Connecting | None = None
        self._dragging: _Dragging | None = None
        self.setSceneRect(-50_000, -50_000, 100_000, 100_000)
        doc.node_added.connect(self._add_node)
        doc.node_removed.connect(self._remove_node)
        doc.node_moved.connect(self._move_node)
        doc.node_changed.connect(self._params_changed)
        doc.edge_added.connect(self._add_edge)
        doc.edge_removed.connect(self._remove_edge)
        doc.output_changed.connect(self._output_changed)
        doc.reset.connect(self.rebuild)
        doc.analyzed.connect(self._analyzed)
        theme.changed().connect(self._restyle)  # a bound method: dropped when the scene goes
        self.rebuild()

    # ------------------------------------------------------------ queries

    def selected_node_ids(self) -> list[str]:
        chosen = {i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)}
        return [n for n in self.doc.graph.nodes if n in chosen]

    def selected_edges(self) -> list[Edge]:
        return [i.edge for i in self.selectedItems() if isinstance(i, EdgeItem)]

    def select_nodes(self, ids) -> None:
        self.clearSelection()
        for nid in ids:
            if nid in self.nodes:
                self.nodes[nid].setSelected(True)

    def nodes_rect(self) -> QRectF:
        rect = QRectF()
        for item in self.nodes.values():
            rect = rect.united(item.sceneBoundingRect())
        return rect

    # ------------------------------------------------------------ mirroring the document

    def rebuild(self) -> None:
        self.cancel_gestures()
        self.clear()
        self.nodes.clear()
        self.edges.clear()
        for nid in self.doc.graph.nodes:
            self._add_node(nid)
        for edge in self.doc.graph.edges:
            self._add_edge(edge)
        self._output_changed()
        if self.doc.analysis is not None:
            self._analyzed(self.doc.analysis)

    def _add_node(self, node_id: str) -> None:
        node = self.doc.graph.nodes[node_id]
        item = NodeItem(node_id, OPS[node.op])
        item.set_params(node.params)
        item.setPos(*node.pos)
        item.set_port_count(port_count(item.op, set()), set())
        item.set_output_flag(self.doc.graph.output == node_id)
        self.nodes[node_id] = item
        self.addItem(item)

    def _remove_node(self, node_id: str) -> None:
        item = self.nodes.pop(node_id)
        self.removeItem(item)

    def _move_node(self, node_id: str) -> None:
        item = self.nodes[node_id]
        item.setPos(*self.doc.graph.nodes[node_id].pos)
        item.update_edges()

    def _params_changed(self, node_id: str) -> None:
        self.nodes[node_id].set_params(self.doc.graph.nodes[node_id].params)

    def _add_edge(self, edge: Edge) -> None:
        src, dst = self.nodes[edge.src], self.nodes[edge.dst]
        item = EdgeItem(edge, src, dst)
        src.edges.append(item)
        dst.edges.append(item)
        self._refresh_ports(dst)
        self._refresh_ports(src)
        item.update_path()
        self.edges[edge] = item
        self.addItem(item)
        self._label(item)

    def _remove_edge(self, edge: Edge) -> None:
        item = self.edges.pop(edge)
        item.src.edges.remove(item)
        item.dst.edges.remove(item)
        self.removeItem(item)
        self._refresh_ports(item.dst)
        self._refresh_ports(item.src)

    def _refresh_ports(self, item: NodeItem) -> None:
        connected = {e.edge.port for e in item.edges if e.dst is item}
        before = len(item.inputs)
        item.set_port_count(port_count(item.op, connected), connected)
        if len(item.inputs) != before:
            item.update_edges()
        feeds = any(e.src is item for e in item.edges)
        if item.output.connected != feeds:
            item.output.connected = feeds
            item.output.update()

    def _output_changed(self) -> None:
        out = self.doc.graph.output
        for nid, item in self.nodes.items():
            item.set_output_flag(nid == out)

    def _analyzed(self, analysis: Analysis) -> None:
        problems: dict[str, list[str]] = defaultdict(list)
        for nid, msg in analysis.problems:
            problems[nid.split("/", 1)[0]].append(msg)
        output = analysis.output
        for nid, item in self.nodes.items():
            info = analysis.nodes.get(nid)
            out = str(info.out) if info and info.out else ""
            changed = item.set_info(out, info.n_params if info else None, problems.get(nid, []))
            item.set_output_flag(nid == output)
            if changed:
                for edge in item.edges:
                    if edge.src is item:
                        self._label(edge)

    def _label(self, edge: EdgeItem) -> None:
        edge.set_label(edge.src.out_text, broken=not edge.src.out_text)

    def _restyle(self, _theme=None) -> None:
        for item in self.items():
            item.update()
        self.update()

    # ------------------------------------------------------------ gestures

    def _port_at(self, pos: QPointF) -> PortItem | None:
        area = QRectF(pos.x() - 8, pos.y() - 8, 16, 16)
        hits = [
            i
            for i in self.items(area, Qt.ItemSelectionMode.IntersectsItemBoundingRect)
            if isinstance(i, PortItem)
        ]
        if not hits:
            return None
        return min(hits, key=lambda p: QLineF(p.scenePos(), pos).length())

    def _node_at(self, pos: QPointF) -> NodeItem | None:
        for item in self.items(pos, Qt.ItemSelectionMode.IntersectsItemBoundingRect):
            if isinstance(item, NodeItem) and item.shape().contains(item.mapFromScene(pos)):
                return item
        return None

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            port = self._port_at(event.scenePos())
            if port is not None:
                self._start_connecting(port)
                event.accept()
                return
        super().mousePressEvent(event)
        if event.button() == Qt.MouseButton.LeftButton and isinstance(self.mouseGrabberItem(), NodeItem):
            start = {n: self.doc.graph.nodes[n].pos for n in self.selected_node_ids()}
            if start:
                self._dragging = _Dragging(start, event.scenePos(), next(_gestures))

    def mouseMoveEvent(self, event) -> None:
        if self._connecting:
            self._update_connecting(event.scenePos())
            return
        if self._dragging and event.buttons() & Qt.MouseButton.LeftButton:
            d = event.scenePos() - self._dragging.press
            positions = {
                n: (round(x + d.x()), round(y + d.y())) for n, (x, y) in self._dragging.start.items()
            }
            if any(positions[n] != self.doc.graph.nodes[n].pos for n in positions):
                self.doc.push(commands.MoveNodes(self.doc, positions, gesture=self._dragging.gesture))
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._connecting and event.button() == Qt.MouseButton.LeftButton:
            self._finish_connecting(event.scenePos(), event.screenPos())
            return
        self._dragging = None
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mouseDoubleClickEvent(event)
        node = self._node_at(event.scenePos())
        if node is not None:
            self.node_activated.emit(node.node_id)
        elif self._port_at(event.scenePos()) is None:
            self.background_activated.emit(event.scenePos())

    def contextMenuEvent(self, event) -> None:
        node = self._node_at(event.scenePos())
        if node is not None and not node.isSelected():
            self.select_nodes([node.node_id])
        self.context_requested.emit(node.node_id if node else None, event.screenPos())

    def _start_connecting(self, port: PortItem) -> None:
        node = port.node.node_id
        lifted = None
        if port.is_input:
            src = self.doc.graph.inputs_of(node).get(port.index)
            if src is not None:
                # Pick the edge up by its input end: drop it elsewhere to move it, on empty canvas to delete it.
                lifted = Edge(src, node, port.index)
                self.edges[lifted].hide()
                port = self.nodes[src].output
        from_output = not port.is_input
        anchor = port.scenePos()
        pending = PendingEdgeItem(anchor, from_output)
        self.addItem(pending)
        owner = port.node.node_id
        self._connecting = _Connecting(owner, port.index, from_output, lifted, pending)

    def _candidate(self, pos: QPointF) -> tuple[Edge | None, object]:
        """The connection that a release at `pos` would make, and the item to highlight."""
        c = self._connecting
        graph = self.doc.graph
        port = self._port_at(pos)
        if port is not None and port.is_input == c.from_output:
            if c.from_output:
                return Edge(c.node, port.node.node_id, port.index), port
            return Edge(port.node.node_id, c.node, c.port), port
        node = self._node_at(pos)
        if node is None or node.node_id == c.node:
            return None, None  # empty canvas, or back over the node the drag started from
        if c.from_output:
            op = node.op
            free = graph.next_free_port(node.node_id)
            fits = op.max_inputs is None or free < op.max_inputs
            return Edge(c.node, node.node_id, free if fits else 0), node
        return Edge(node.node_id, c.node, c.port), node

    def _update_connecting(self, pos: QPointF) -> None:
        c = self._connecting
        target, hovered = self._candidate(pos)
        reason = None
        if target is not None and target != c.lifted:
            reason = self.doc.graph.can_connect(target.src, target.dst, target.port)
        if isinstance(c.hovered, PortItem) and c.hovered is not hovered:
            c.hovered.set_highlight(None)
        state = None if target is None else ("error" if reason else "ok")
        if isinstance(hovered, PortItem):
            hovered.set_highlight(state)
        if reason and reason != c.reason:
            self.message.emit(f"Cannot connect: {reason}")
        c.target, c.reason, c.hovered = target, reason, hovered
        c.item.set_end(pos, state)

    def _finish_connecting(self, pos: QPointF, screen: QPoint) -> None:
        self._update_connecting(pos)
        c = self._connecting
        self._end_connecting()
        doc = self.doc
        if c.target is not None and c.reason:
            if c.lifted:
                self.edges[c.lifted].show()
            self.refuse(c.reason, screen)
        elif c.target is not None:
            if c.target == c.lifted:
                self.edges[c.lifted].show()
            elif c.lifted:
                doc.undo_stack.beginMacro(f"Reconnect {c.target.src} → {c.target.dst}")
                doc.push(commands.Disconnect(doc, c.lifted))
                doc.push(commands.Connect(doc, c.target.src, c.target.dst, c.target.port))
                doc.undo_stack.endMacro()
            else:
                doc.push(commands.Connect(doc, c.target.src, c.target.dst, c.target.port))
        elif c.lifted:
            doc.push(commands.Disconnect(doc, c.lifted))
        elif c.from_output:
            self.dropped_from_output.emit(c.node, pos)

    def refuse(self, reason: str, screen: QPoint | None = None) -> None:
        """Tell the user why a connection was refused: status bar and a tooltip at the cursor."""
        self.message.emit(f"Cannot connect: {reason}")
        if screen is not None and self.views():
            QToolTip.showText(screen, f"Cannot connect: {reason}", self.views()[0])

    def _end_connecting(self) -> None:
        c = self._connecting
        if c is None:
            return
        if isinstance(c.hovered, PortItem):
            c.hovered.set_highlight(None)
        self.removeItem(c.item)
        self._connecting = None

    def cancel_gestures(self) -> None:
        if self._connecting and self._connecting.lifted in self.edges:
            self.edges[self._connecting.lifted].show()
        self._end_connecting()
        self._dragging = None

    def nudge(self, dx: float, dy: float, gesture: int) -> None:
        ids = self.selected_node_ids()
        if ids:
            positions = {
                n: (self.doc.graph.nodes[n].pos[0] + dx, self.doc.graph.nodes[n].pos[1] + dy) for n in ids
            }
            self.doc.push(commands.MoveNodes(self.doc, positions, gesture=gesture))

    # ------------------------------------------------------------ background

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        t = theme.current()
        painter.fillRect(rect, QColor(t.canvas))
        scale = painter.worldTransform().m11()
        for step, color, min_scale in ((GRID, t.grid_minor, 0.55), (GRID * 5, t.grid_major, 0.12)):
            if scale < min_scale:
                continue
            painter.setPen(QPen(QColor(color), 0))
            left = int(rect.left() // step) * step
            top = int(rect.top() // step) * step
            xs = [left + i * step for i in range(int((rect.right() - left) // step) + 1)]
            ys = [top + i * step for i in range(int((rect.bottom() - top) // step) + 1)]
            painter.drawLines([QLineF(x, rect.top(), x, rect.bottom()) for x in xs])
            painter.drawLines([QLineF(rect.left(), y, rect.right(), y) for y in ys])


class GraphView(QGraphicsView):
    """Zoom with the wheel, pan with the middle button or space+drag, rubber-band select with
    the left button, nudge the selection with the arrow keys; accepts ops dropped from the palette."""

    op_dropped = Signal(str, QPointF)
    zoom_changed = Signal(float)

    MIN_ZOOM, MAX_ZOOM = 0.1, 3.0

    def __init__(self, scene: GraphScene, parent=None):
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.ItemSelectionMode.IntersectsItemShape)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAcceptDrops(True)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self._pan_from: QPoint | None = None
        self._space = False
        self._fitted_once = False
        self._nudge_gesture = next(_gestures)
        scene.selectionChanged.connect(self._new_nudge_gesture)

    @property
    def graph_scene(self) -> GraphScene:
        return self.scene()

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, z: float, anchor_under_mouse: bool = False) -> None:
        z = max(self.MIN_ZOOM, min(self.MAX_ZOOM, z))
        anchor = self.transformationAnchor()
        if not anchor_under_mouse:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setTransform(QTransform.fromScale(z, z))
        self.setTransformationAnchor(anchor)
        self.zoom_changed.emit(z)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom() * 1.25)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom() / 1.25)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._fitted_once:
            # Fit once the window has its real size: a fit at creation used the default size and
            # left the opening model off-centre and cut off on a real screen.
            self._fitted_once = True
            QTimer.singleShot(0, self.fit)

    def fit(self) -> None:
        rect = self.graph_scene.nodes_rect()
        if rect.isNull():
            self.set_zoom(1.0)
            self.centerOn(0, 0)
            return
        rect = rect.adjusted(-40, -40, 40, 40)
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > 1.0:
            self.set_zoom(1.0)
        elif self.zoom() < self.MIN_ZOOM:
            self.set_zoom(self.MIN_ZOOM)
        self.centerOn(rect.center())
        self.zoom_changed.emit(self.zoom())

    def center_on_node(self, node_id: str) -> None:
        item = self.graph_scene.nodes.get(node_id)
        if item is not None:
            self.ensureVisible(item.sceneBoundingRect(), 80, 80)

    def visible_center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    # ------------------------------------------------------------ zoom and pan

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.set_zoom(self.zoom() * 1.15**steps, anchor_under_mouse=True)
        event.accept()

    def mousePressEvent(self, event) -> None:
        panning = event.button() == Qt.MouseButton.MiddleButton or (
            self._space and event.button() == Qt.MouseButton.LeftButton
        )
        if panning:
            self._pan_from = event.position().toPoint()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._pan_from is not None:
            pos = event.position().toPoint()
            delta = pos - self._pan_from
            self._pan_from = pos
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().setCursor(
                Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.ArrowCursor
            )
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        arrows = {
            Qt.Key.Key_Left: (-1, 0),
            Qt.Key.Key_Right: (1, 0),
            Qt.Key.Key_Up: (0, -1),
            Qt.Key.Key_Down: (0, 1),
        }
        if key in arrows and self.graph_scene.selected_node_ids():
            step = GRID if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
            dx, dy = arrows[key]
            self.graph_scene.nudge(dx * step, dy * step, self._nudge_gesture)
            return
        if key == Qt.Key.Key_Escape:
            self.graph_scene.cancel_gestures()
            self.graph_scene.clearSelection()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().setCursor(Qt.CursorShape.ArrowCursor)
            return
        super().keyReleaseEvent(event)

    def _new_nudge_gesture(self) -> None:
        self._nudge_gesture = next(_gestures)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        if self.graph_scene.nodes:
            return
        # An empty canvas says how to start, in view coordinates so it stays put while panning.
        t = theme.current()
        painter.save()
        painter.resetTransform()
        area = QRectF(self.viewport().rect())
        painter.setPen(QColor(t.subtext))
        font = painter.font()
        font.setPointSizeF(12)
        painter.setFont(font)
        painter.drawText(
            area.adjusted(0, -20, 0, -20),
            Qt.AlignmentFlag.AlignCenter,
            "Drag a layer here from the palette,\nor double-click to add one",
        )
        painter.restore()

    # ------------------------------------------------------------ drops from the palette

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(OP_MIME):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasFormat(OP_MIME):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:
        if event.mimeData().hasFormat(OP_MIME):
            op = bytes(event.mimeData().data(OP_MIME)).decode()
            self.op_dropped.emit(op, self.mapToScene(event.position().toPoint()))
            event.acceptProposedAction()
        else:
            super().dropEvent(event)
