"""The designer's document: one graph, the file it came from, its undo stack and its analysis.

Views never edit `graph` themselves. They push commands (app/designer/commands.py); a command
calls the primitives below, which edit the engine graph and emit one signal per change, so the
canvas, the inspector and the summary follow along whether the edit is a redo, an undo or a
first push. Structural changes schedule a re-analysis; moves do not, since positions do not
change shapes.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from app.designer.validation import Validator
from engine.graph import Analysis, Edge, Graph, Node, TensorType

#: a param that was not set (so the op's default applies); distinct from None
MISSING = object()


class GraphDocument(QObject):
    node_added = Signal(str)
    node_removed = Signal(str)
    node_moved = Signal(str)
    node_changed = Signal(str)  # its params
    edge_added = Signal(object)  # Edge
    edge_removed = Signal(object)  # Edge
    output_changed = Signal()
    reset = Signal()  # the whole graph was replaced
    analyzed = Signal(object)  # Analysis
    path_changed = Signal()
    dirty_changed = Signal(bool)
    edited = Signal()  # after any change to the graph, for autosave

    def __init__(
        self,
        graph: Graph | None = None,
        path: Path | None = None,
        input_type: TensorType | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.graph = graph or Graph()
        self.path = path
        self.analysis: Analysis | None = None
        self.undo_stack = QUndoStack(self)
        self._recovered = False  # replaced from a recovery file: dirty with an empty stack
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self.undo_stack.indexChanged.connect(self._index_changed)
        self._validator = Validator(lambda: self.graph, input_type, self)
        self._validator.analyzed.connect(self._on_analyzed)
        self._validator.run_now()

    # ------------------------------------------------------------ document state

    @property
    def dirty(self) -> bool:
        return self._recovered or not self.undo_stack.isClean()

    @property
    def title(self) -> str:
        return self.path.name if self.path else f"Untitled ({self.graph.name})"

    def push(self, command: QUndoCommand) -> None:
        self.undo_stack.push(command)

    def replace(self, graph: Graph, path: Path | None = None, recovered: bool = False) -> None:
        """Show another graph (new, open, template, recovery); the undo history starts over."""
        was_dirty = self.dirty
        self.graph = graph
        self.path = Path(path) if path else None
        self._recovered = recovered
        self.undo_stack.clear()
        self.reset.emit()
        self.path_changed.emit()
        if was_dirty != self.dirty:
            self.dirty_changed.emit(self.dirty)
        self._validator.run_now()

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path else self.path
        if path is None:
            raise ValueError("an untitled document needs a path to save to")
        self.graph.save(path)
        was_dirty = self.dirty
        self._recovered = False
        self.undo_stack.setClean()
        if path != self.path:
            self.path = path
            self.path_changed.emit()
        if was_dirty:
            self.dirty_changed.emit(False)
        return path

    # ------------------------------------------------------------ analysis

    def revalidate(self, now: bool = False) -> None:
        if now:
            self._validator.run_now(force_sync=True)
        else:
            self._validator.schedule()

    def wait_for_analysis(self) -> None:
        self._validator.wait()

    def close(self) -> None:
        """Stop analysing (the window is closing); no thread outlives the document."""
        self._validator.stop()

    @property
    def input_type(self) -> TensorType | None:
        return self._validator.input_type

    def _clean_changed(self, _clean: bool) -> None:
        self.dirty_changed.emit(self.dirty)

    def _index_changed(self, _index: int) -> None:
        self.edited.emit()

    def _on_analyzed(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.analyzed.emit(analysis)

    # ------------------------------------------------------------ primitives (commands only)

    def insert_node(self, node: Node, index: int | None = None) -> None:
        self.graph.add_node(node.op, node.params, node.pos, node.id)
        if index is not None and index < len(self.graph.nodes) - 1:
            # Put it back where it was, so undo restores the file byte for byte.
            items = list(self.graph.nodes.items())
            items.insert(index, items.pop())
            self.graph.nodes = dict(items)
        self.node_added.emit(node.id)
        self._changed()

    def take_node(self, node_id: str) -> tuple[Node, int, list[tuple[int, Edge]], bool]:
        """Remove a node and its edges; returns what `insert_node`/`insert_edge` need to undo it."""
        index = list(self.graph.nodes).index(node_id)
        edges = [(i, e) for i, e in enumerate(self.graph.edges) if node_id in (e.src, e.dst)]
        for _, edge in reversed(edges):
            self.take_edge(edge)
        was_output = self.graph.output == node_id
        node, _ = self.graph.remove_node(node_id)
        self.node_removed.emit(node_id)
        if was_output:
            self.output_changed.emit()
        self._changed()
        return node, index, edges, was_output

    def insert_edge(self, edge: Edge, index: int | None = None) -> None:
        self.graph.connect(edge.src, edge.dst, edge.port)
        if index is not None and index < len(self.graph.edges) - 1:
            self.graph.edges.insert(index, self.graph.edges.pop())
        self.edge_added.emit(edge)
        self._changed()

    def take_edge(self, edge: Edge) -> int:
        index = self.graph.edges.index(edge)
        self.graph.disconnect(edge)
        self.edge_removed.emit(edge)
        self._changed()
        return index

    def move_node(self, node_id: str, pos: tuple[float, float]) -> None:
        self.graph.nodes[node_id].pos = (float(pos[0]), float(pos[1]))
        self.node_moved.emit(node_id)

    def set_param(self, node_id: str, name: str, value) -> None:
        """Set one param; MISSING removes it so the op's default applies again."""
        params = dict(self.graph.nodes[node_id].params)
        if value is MISSING:
            params.pop(name, None)
        else:
            params[name] = value
        self.graph.nodes[node_id].params = params
        self.node_changed.emit(node_id)
        self._changed()

    def set_output(self, node_id: str | None) -> None:
        self.graph.output = node_id
        self.output_changed.emit()
        self._changed()

    def _changed(self) -> None:
        self._validator.schedule()
