"""The model graph as plain data: nodes (op + params + position) joined by edges into ports.

This is the designer's document and the spec's `model` section. Edits go through the methods
here, which refuse impossible structure at once (an unknown op, an occupied port, a cycle);
everything that depends on shapes is reported by `shapes.analyze` instead, so a user can
hold a half-built graph. Nothing here imports torch or Qt.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import GraphError
from engine.graph.ops import OPS

FORMAT = "trainbench.graph"
VERSION = 1
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass
class Node:
    id: str
    op: str
    params: dict = field(default_factory=dict)
    pos: tuple[float, float] = (0.0, 0.0)

    def to_dict(self) -> dict:
        return {"id": self.id, "op": self.op, "params": self.params, "pos": list(self.pos)}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    port: int = 0

    def to_dict(self) -> dict:
        return {"from": self.src, "to": self.dst, "port": self.port}


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    output: str | None = None
    name: str = "model"

    # ------------------------------------------------------------ queries

    def inputs_of(self, node_id: str) -> dict[int, str]:
        """Port → source node id."""
        return {e.port: e.src for e in self.edges if e.dst == node_id}

    def ordered_inputs(self, node_id: str) -> list[str]:
        ins = self.inputs_of(node_id)
        return [ins[p] for p in sorted(ins)]

    def consumers_of(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.src == node_id]

    def input_nodes(self) -> list[str]:
        return [n.id for n in self.nodes.values() if n.op == "Input"]

    def reaches(self, src: str, dst: str) -> bool:
        """Is there a directed path src → … → dst?"""
        stack, seen = [src], set()
        while stack:
            cur = stack.pop()
            if cur == dst:
                return True
            if cur in seen:
                continue
            seen.add(cur)
            stack.extend(e.dst for e in self.edges if e.src == cur)
        return False

    def topo_order(self) -> tuple[list[str], list[str]]:
        """(nodes in topological order, nodes on or behind a cycle)."""
        indeg = {n: 0 for n in self.nodes}
        for e in self.edges:
            indeg[e.dst] += 1
        ready = [n for n, d in indeg.items() if d == 0]
        order = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for e in self.edges:
                if e.src == n:
                    indeg[e.dst] -= 1
                    if indeg[e.dst] == 0:
                        ready.append(e.dst)
        return order, [n for n in self.nodes if n not in order]

    def new_id(self, op: str) -> str:
        base = re.sub(r"[^a-z0-9]", "", op.lower()) or "node"
        i = 1
        while f"{base}{i}" in self.nodes:
            i += 1
        return f"{base}{i}"

    # ------------------------------------------------------------ edits

    def add_node(
        self, op: str, params: dict | None = None, pos=(0.0, 0.0), node_id: str | None = None
    ) -> Node:
        if op not in OPS:
            raise GraphError([(node_id or "", f"unknown op {op!r}")])
        node_id = node_id or self.new_id(op)
        if not _ID.match(node_id):
            raise GraphError([(node_id, "ids are letters, digits and _ (not starting with a digit)")])
        if node_id in self.nodes:
            raise GraphError([(node_id, "a node with this id already exists")])
        node = Node(node_id, op, dict(params or {}), (float(pos[0]), float(pos[1])))
        self.nodes[node_id] = node
        return node

    def remove_node(self, node_id: str) -> tuple[Node, list[Edge]]:
        """Remove a node and its edges; returns both so an undo can put them back."""
        node = self.nodes.pop(node_id)
        removed = [e for e in self.edges if node_id in (e.src, e.dst)]
        self.edges = [e for e in self.edges if e not in removed]
        if self.output == node_id:
            self.output = None
        return node, removed

    def can_connect(self, src: str, dst: str, port: int) -> str | None:
        """None when src → dst:port is allowed, else the reason it is refused."""
        if src not in self.nodes or dst not in self.nodes:
            return "both ends must be nodes of this graph"
        if src == dst:
            return "a node cannot feed itself"
        op = OPS[self.nodes[dst].op]
        if op.max_inputs == 0:
            return f"{dst} ({op.name}) takes no inputs"
        if port < 0 or (op.max_inputs is not None and port >= op.max_inputs):
            return f"{dst} ({op.name}) has {op.max_inputs} input port(s); port {port} does not exist"
        if port in self.inputs_of(dst):
            return f"input {port} of {dst} is already connected (to {self.inputs_of(dst)[port]})"
        if self.reaches(dst, src):
            return f"connecting {src} → {dst} would make a cycle"
        return None

    def connect(self, src: str, dst: str, port: int = 0) -> Edge:
        reason = self.can_connect(src, dst, port)
        if reason:
            raise GraphError([(dst, reason)])
        edge = Edge(src, dst, port)
        self.edges.append(edge)
        return edge

    def disconnect(self, edge: Edge) -> None:
        self.edges.remove(edge)

    def next_free_port(self, node_id: str) -> int:
        used = self.inputs_of(node_id)
        port = 0
        while port in used:
            port += 1
        return port

    # ------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "nodes": [n.to_dict() for n in self.nodes.values()],
            "edges": [e.to_dict() for e in self.edges],
            "output": self.output,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Graph:
        """Parse a graph document; structural problems are collected and raised together."""
        if not isinstance(data, dict):
            raise GraphError([("", f"a graph must be a JSON object, got {type(data).__name__}")])
        problems: list[tuple[str, str]] = []
        g = cls(name=str(data.get("name", "model")))
        unknown = set(data) - {"format", "version", "name", "nodes", "edges", "output"}
        if unknown:
            problems.append(("", f"unknown graph field(s): {', '.join(sorted(unknown))}"))
        if data.get("version", VERSION) > VERSION:
            problems.append(
                ("", f"graph version {data['version']} is newer than this Trainbench reads ({VERSION})")
            )
        for i, nd in enumerate(data.get("nodes", [])):
            try:
                if not isinstance(nd, dict) or "id" not in nd or "op" not in nd:
                    raise GraphError([("", f"nodes[{i}] needs an id and an op")])
                params = nd.get("params", {})
                if not isinstance(params, dict):
                    raise GraphError([(str(nd["id"]), "params must be an object")])
                g.add_node(nd["op"], params, tuple(nd.get("pos", (0, 0))), str(nd["id"]))
            except GraphError as err:
                problems.extend(err.problems)
        for i, ed in enumerate(data.get("edges", [])):
            try:
                if not isinstance(ed, dict) or "from" not in ed or "to" not in ed:
                    raise GraphError([("", f"edges[{i}] needs from and to")])
                g.connect(str(ed["from"]), str(ed["to"]), int(ed.get("port", 0)))
            except GraphError as err:
                problems.extend(err.problems)
        out = data.get("output")
        if out is not None and out not in g.nodes:
            problems.append(("", f"output {out!r} is not a node of the graph"))
        else:
            g.output = out
        if problems:
            raise GraphError(problems)
        return g

    def copy(self) -> Graph:
        return Graph(copy.deepcopy(self.nodes), list(self.edges), self.output, self.name)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Graph:
        from engine.jsonfile import read_json

        return cls.from_dict(read_json(path))
