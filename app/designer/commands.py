"""One small QUndoCommand per kind of edit. They are the only code that changes a document's graph.

Each command records what it needs to undo itself exactly (node and edge positions in the file
included), so undoing a session restores the file byte for byte.
"""

from __future__ import annotations

import re

from PySide6.QtGui import QUndoCommand

from app.designer.document import MISSING, GraphDocument
from engine.graph import Edge, Graph, Node

_MOVE_ID = 1
_PARAM_ID = 2


class AddNode(QUndoCommand):
    def __init__(self, doc: GraphDocument, op: str, pos=(0.0, 0.0), params: dict | None = None):
        super().__init__(f"Add {op}")
        self.doc = doc
        self.node = Node(doc.graph.new_id(op), op, dict(params or {}), (float(pos[0]), float(pos[1])))

    def redo(self) -> None:
        self.doc.insert_node(self.node)

    def undo(self) -> None:
        self.doc.take_node(self.node.id)


class RemoveNodes(QUndoCommand):
    """Removes nodes together with every edge that touches them."""

    def __init__(self, doc: GraphDocument, node_ids, text: str = "Delete"):
        ids = set(node_ids)
        super().__init__(f"{text} {_count(len(ids), 'node')}")
        self.doc = doc
        self.ids = [n for n in doc.graph.nodes if n in ids]
        self.taken: list = []

    def redo(self) -> None:
        self.taken = [self.doc.take_node(n) for n in self.ids]

    def undo(self) -> None:
        for node, index, edges, was_output in reversed(self.taken):
            self.doc.insert_node(node, index)
            for edge_index, edge in edges:
                self.doc.insert_edge(edge, edge_index)
            if was_output:
                self.doc.set_output(node.id)


class Connect(QUndoCommand):
    def __init__(self, doc: GraphDocument, src: str, dst: str, port: int):
        super().__init__(f"Connect {src} → {dst}")
        self.doc = doc
        self.edge = Edge(src, dst, port)

    def redo(self) -> None:
        self.doc.insert_edge(self.edge)

    def undo(self) -> None:
        self.doc.take_edge(self.edge)


class Disconnect(QUndoCommand):
    def __init__(self, doc: GraphDocument, edge: Edge):
        super().__init__(f"Disconnect {edge.src} → {edge.dst}")
        self.doc = doc
        self.edge = edge
        self.index = 0

    def redo(self) -> None:
        self.index = self.doc.take_edge(self.edge)

    def undo(self) -> None:
        self.doc.insert_edge(self.edge, self.index)


class MoveNodes(QUndoCommand):
    """Moves nodes to new positions. Moves of one gesture (a drag, a run of arrow-key nudges)
    share a `gesture` number and merge into one undo step."""

    def __init__(
        self,
        doc: GraphDocument,
        positions: dict[str, tuple[float, float]],
        text: str = "Move",
        gesture: int | None = None,
    ):
        super().__init__(f"{text} {_count(len(positions), 'node')}" if text == "Move" else text)
        self.doc = doc
        self.old = {n: doc.graph.nodes[n].pos for n in positions}
        self.new = {n: (float(x), float(y)) for n, (x, y) in positions.items()}
        self.gesture = gesture

    def id(self) -> int:
        return _MOVE_ID if self.gesture is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, MoveNodes) or other.gesture != self.gesture:
            return False
        for n, pos in other.new.items():
            self.old.setdefault(n, other.old[n])
            self.new[n] = pos
        return True

    def redo(self) -> None:
        for n, pos in self.new.items():
            self.doc.move_node(n, pos)

    def undo(self) -> None:
        for n, pos in self.old.items():
            self.doc.move_node(n, pos)


class SetParam(QUndoCommand):
    """Sets one param (MISSING: back to the op's default). Edits from one editing session of one
    field (typing digits, stepping a spin box) share a `merge_key` and merge into one step."""

    def __init__(self, doc: GraphDocument, node_id: str, name: str, value, merge_key=None):
        super().__init__(f"Set {node_id}.{name}")
        self.doc = doc
        self.node_id, self.name, self.value, self.merge_key = node_id, name, value, merge_key
        self.old = doc.graph.nodes[node_id].params.get(name, MISSING)

    def id(self) -> int:
        return _PARAM_ID if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not (
            isinstance(other, SetParam)
            and (other.node_id, other.name, other.merge_key) == (self.node_id, self.name, self.merge_key)
        ):
            return False
        self.value = other.value
        self.setObsolete(self.value == self.old)
        return True

    def redo(self) -> None:
        self.doc.set_param(self.node_id, self.name, self.value)

    def undo(self) -> None:
        self.doc.set_param(self.node_id, self.name, self.old)


class SetOutput(QUndoCommand):
    def __init__(self, doc: GraphDocument, node_id: str | None):
        super().__init__(f"Set output to {node_id}" if node_id else "Clear output")
        self.doc = doc
        self.new, self.old = node_id, doc.graph.output

    def redo(self) -> None:
        self.doc.set_output(self.new)

    def undo(self) -> None:
        self.doc.set_output(self.old)


class Paste(QUndoCommand):
    """Adds a fragment (a graph of copied nodes and the edges among them), shifted by `delta`;
    ids already taken get the next free number (conv1 → conv3)."""

    def __init__(self, doc: GraphDocument, fragment: Graph, delta=(40.0, 40.0), text: str = "Paste"):
        super().__init__(f"{text} {_count(len(fragment.nodes), 'node')}")
        self.doc = doc
        taken = set(doc.graph.nodes)
        rename: dict[str, str] = {}
        for old in fragment.nodes:
            new = _free_id(old, taken)
            taken.add(new)
            rename[old] = new
        dx, dy = delta
        self.nodes = [
            Node(rename[n.id], n.op, dict(n.params), (n.pos[0] + dx, n.pos[1] + dy))
            for n in fragment.nodes.values()
        ]
        self.edges = [Edge(rename[e.src], rename[e.dst], e.port) for e in fragment.edges]

    @property
    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def redo(self) -> None:
        for node in self.nodes:
            self.doc.insert_node(node)
        for edge in self.edges:
            self.doc.insert_edge(edge)

    def undo(self) -> None:
        for node in reversed(self.nodes):
            self.doc.take_node(node.id)


def _free_id(wanted: str, taken: set[str]) -> str:
    if wanted not in taken:
        return wanted
    base = re.sub(r"\d+$", "", wanted) or wanted
    i = 2
    while f"{base}{i}" in taken:
        i += 1
    return f"{base}{i}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
