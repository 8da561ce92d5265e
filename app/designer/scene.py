"""The canvas scene: a mirror of one `GraphDocument`, an item per node and per edge.

The scene follows the document's signals and never edits it. Gestures (interactions.py) and
the area turn what the user does into commands; the document applies them and says what
changed; the scene updates its items. That keeps undo, redo and every other view consistent
for free. Besides mirroring, the scene answers "what is here" and reports double-clicks and
context-menu requests on its items, as orange-canvas-core's scene reports item activations.
"""

from __future__ import annotations

import math
from collections import defaultdict

from PySide6.QtCore import QLineF, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene

from app import theme
from app.designer.document import GraphDocument
from app.designer.items import EdgeItem, NodeItem, PortItem
from engine.graph import OPS, Analysis, Edge

#: the canvas extends this far from the origin in every direction (scene units)
EXTENT = 50_000.0
#: a variadic op (Add, Concat) shows at most this many input ports: a file that wires port
#: 10^9 must not make the canvas build a billion items
MAX_PORTS = 64


def port_count(op, connected: set[int]) -> int:
    """Fixed-arity ops show all their ports; variadic ones (Add, Concat) one spare port."""
    if op.max_inputs is not None:
        return min(op.max_inputs, MAX_PORTS)
    return min(MAX_PORTS, max(op.min_inputs, max(connected) + 2 if connected else 0))


def on_canvas(x: float, y: float) -> bool:
    """Whether a position can be shown: finite and inside the canvas."""
    return math.isfinite(x) and math.isfinite(y) and abs(x) < EXTENT and abs(y) < EXTENT


class GraphScene(QGraphicsScene):
    node_activated = Signal(str)  # double-click on a node
    background_activated = Signal(QPointF)  # double-click on empty canvas
    context_requested = Signal(object, QPoint)  # node id or None, screen position
    rebuilding = Signal()  # every item is about to go: gestures holding items must end first

    def __init__(self, doc: GraphDocument, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[Edge, EdgeItem] = {}
        self.setSceneRect(-EXTENT, -EXTENT, 2 * EXTENT, 2 * EXTENT)
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

    def nodes_rect(self, ids=None) -> QRectF:
        """The bounding rect of the given nodes (default: all of them), in scene coordinates."""
        rect = QRectF()
        for nid in self.nodes if ids is None else ids:
            item = self.nodes.get(nid)
            if item is not None:
                rect = rect.united(item.sceneBoundingRect())
        return rect

    def port_at(self, pos: QPointF) -> PortItem | None:
        area = QRectF(pos.x() - 8, pos.y() - 8, 16, 16)
        hits = [
            i
            for i in self.items(area, Qt.ItemSelectionMode.IntersectsItemBoundingRect)
            if isinstance(i, PortItem)
        ]
        if not hits:
            return None
        return min(hits, key=lambda p: QLineF(p.scenePos(), pos).length())

    def node_at(self, pos: QPointF) -> NodeItem | None:
        for item in self.items(pos, Qt.ItemSelectionMode.IntersectsItemBoundingRect):
            if isinstance(item, NodeItem) and item.shape().contains(item.mapFromScene(pos)):
                return item
        return None

    def selectable_at(self, pos: QPointF) -> QGraphicsItem | None:
        """The node under `pos`, else the edge: edges are drawn above nodes so that one passing
        a node stays visible, but a click on a node's body means the node."""
        hits = [i for i in self.items(pos, Qt.ItemSelectionMode.IntersectsItemShape) if i.isVisible()]
        return next((i for i in hits if isinstance(i, NodeItem)), None) or next(
            (i for i in hits if isinstance(i, EdgeItem)), None
        )

    # ------------------------------------------------------------ mirroring the document

    def rebuild(self) -> None:
        self.rebuilding.emit()
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
        item.setPos(*_shown(node.pos))
        item.set_port_count(port_count(item.op, set()), set())
        item.set_output_flag(self.doc.graph.output == node_id)
        self.nodes[node_id] = item
        self.addItem(item)

    def _remove_node(self, node_id: str) -> None:
        item = self.nodes.pop(node_id)
        self.removeItem(item)

    def _move_node(self, node_id: str) -> None:
        item = self.nodes[node_id]
        item.setPos(*_shown(self.doc.graph.nodes[node_id].pos))
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
            problems[str(nid).split("/", 1)[0]].append(msg)
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

    # ------------------------------------------------------------ item events

    def mouseDoubleClickEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mouseDoubleClickEvent(event)
        node = self.node_at(event.scenePos())
        if node is not None:
            self.node_activated.emit(node.node_id)
        elif self.port_at(event.scenePos()) is None:
            self.background_activated.emit(event.scenePos())

    def contextMenuEvent(self, event) -> None:
        node = self.node_at(event.scenePos())
        if node is not None and not node.isSelected():
            self.select_nodes([node.node_id])
        self.context_requested.emit(node.node_id if node else None, event.screenPos())


def _shown(pos: tuple[float, float]) -> tuple[float, float]:
    """Where a node is drawn: its position, or the origin for one that cannot be shown (the
    document keeps the value; the designer offers a fresh layout when it opens such a file)."""
    return pos if on_canvas(*pos) else (0.0, 0.0)
