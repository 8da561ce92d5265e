"""The model graph as plain data: nodes (op + params + position) joined by edges into ports.

This is the designer's document and the spec's `model` section. Edits go through the methods
here, which refuse impossible structure at once (an unknown op, an occupied port, a cycle);
everything that depends on shapes is reported by `shapes.analyze` instead, so a user can
hold a half-built graph. Nothing here imports torch or Qt.

A node id names a layer of the built model (`conv1.weight` in its state dict) and a variable
of the exported code, so it is an identifier that starts with a letter and is neither a
Python keyword nor a name torch.nn.Module uses itself (`forward`, `training`, `to`, …):
those are refused here, with the reason, rather than failing every run later.
"""

from __future__ import annotations

import copy
import json
import keyword
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import GraphError
from engine.fields import cap_problems, listed, shown
from engine.graph.ops import OPS

FORMAT = "trainbench.graph"
VERSION = 1
_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_ID_RULE = "ids start with a letter, then letters, digits and _, at most 64 characters"
# The public names of a torch.nn.Module (torch 2.13): a layer registered under one of them
# would shadow the module's own member. tests/engine/test_graph.py checks the list against
# the installed torch, so a new method is noticed; private names are excluded by the first
# letter. `smart_apply` is what transformers adds to torch.nn.Module once it builds a model
# (an imported Hugging Face model, or its tracking callback, in the same process).
TORCH_MODULE_NAMES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda
    double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule half ipu load_state_dict modules mtia named_buffers named_children
    named_modules named_parameters parameters register_backward_hook register_buffer
    register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
    set_submodule share_memory smart_apply state_dict to to_empty train training type xpu zero_grad""".split()
)
_DOC_FIELDS = ("format", "version", "name", "nodes", "edges", "output", "tie", "init_from", "strict")
# A tied parameter names its node and the parameter's path inside the node's module.
_PARAM = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]*)+")
_NODE_FIELDS = ("id", "op", "params", "pos")
_EDGE_FIELDS = ("from", "to", "port")


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
    # Shared weights: {tied parameter: the parameter it is}, e.g. {"lm_head.weight": "embed.weight"};
    # checked for shape by the analysis, counted once, one tensor in the built model.
    tie: dict[str, str] = field(default_factory=dict)
    # Where the model's first weights come from (see engine.weights): a run id, a .safetensors
    # file, or a run resolved to its checkpoint ({"run": id, "checkpoint": path}); `strict`
    # False lets tensors of new or resized layers keep their fresh initialisation.
    init_from: int | str | dict | None = None
    strict: bool = True

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
        """Is there a directed path src → … → dst? (One pass over the edges, then a search.)"""
        outgoing: dict[str, list[str]] = {}
        for e in self.edges:
            outgoing.setdefault(e.src, []).append(e.dst)
        stack, seen = [src], set()
        while stack:
            cur = stack.pop()
            if cur == dst:
                return True
            if cur in seen:
                continue
            seen.add(cur)
            stack.extend(outgoing.get(cur, ()))
        return False

    def topo_order(self) -> tuple[list[str], list[str]]:
        """(nodes in topological order, nodes on or behind a cycle); linear in nodes + edges."""
        indeg = dict.fromkeys(self.nodes, 0)
        outgoing: dict[str, list[str]] = {n: [] for n in self.nodes}
        for e in self.edges:
            indeg[e.dst] += 1
            outgoing[e.src].append(e.dst)
        ready = deque(n for n, d in indeg.items() if d == 0)
        order = []
        while ready:
            n = ready.popleft()
            order.append(n)
            for m in outgoing[n]:
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
        placed = set(order)
        return order, [n for n in self.nodes if n not in placed]

    def new_id(self, op: str) -> str:
        base = re.sub(r"[^a-z0-9]", "", op.lower()) or "node"
        i = 1
        while f"{base}{i}" in self.nodes:
            i += 1
        return f"{base}{i}"

    def free_id(self, base: str) -> str:
        """`base`, else `base_2`, `base_3`, …: the first valid node id not yet taken (a leading
        non-letter gets an `n` in front)."""
        base = base if base[:1].isalpha() else f"n{base}"
        nid, i = base, 1
        while nid in self.nodes or id_problem(nid) is not None:
            i += 1
            nid = f"{base}_{i}"
        return nid

    # ------------------------------------------------------------ edits

    def add_node(
        self, op: str, params: dict | None = None, pos=(0.0, 0.0), node_id: str | None = None
    ) -> Node:
        where = node_id if id_problem(node_id) is None else ""
        if not isinstance(op, str) or op not in OPS:
            raise GraphError([(where, f"unknown op {shown(op)}")])
        node_id = node_id or self.new_id(op)
        problem = id_problem(node_id)
        if problem:
            raise GraphError([("", problem)])
        if node_id in self.nodes:
            raise GraphError([(node_id, "a node with this id already exists")])
        if params is not None and not isinstance(params, dict):
            raise GraphError([(node_id, f"params must be an object, got {shown(params)}")])
        node = Node(node_id, op, dict(params or {}), _position(pos, node_id))
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
        if port < 0 or port >= op.port_limit:
            return f"{dst} ({op.name}) has {op.port_limit} input port(s); port {port} does not exist"
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
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "nodes": [n.to_dict() for n in self.nodes.values()],
            "edges": [e.to_dict() for e in self.edges],
            "output": self.output,
        }
        # written only when set, so a graph without them keeps the file it always had
        if self.tie:
            doc["tie"] = dict(self.tie)
        if self.init_from is not None:
            doc["init_from"] = copy.deepcopy(self.init_from)
        if not self.strict:
            doc["strict"] = False
        return doc

    @classmethod
    def from_dict(cls, data: dict) -> Graph:
        """Parse a graph document; every problem is collected and raised together.

        Each value is type-checked before it is used, and the whole parse is linear in the
        size of the document (a port is checked in a dict, the cycle check runs once)."""
        if not isinstance(data, dict):
            raise GraphError([("", f"a graph must be a JSON object, got {type(data).__name__}")])
        problems: list[tuple[str, str]] = []
        unknown = [k for k in data if k not in _DOC_FIELDS]
        if unknown:
            problems.append(("", f"unknown graph field(s): {listed(sorted(map(str, unknown)))}"))
        name = data.get("name", "model")
        if not isinstance(name, str):
            problems.append(("", f"the graph's name must be a string, got {shown(name)}"))
            name = "model"
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            problems.append(("", f"format must be {FORMAT!r}, got {shown(fmt)}"))
        version = data.get("version", VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            problems.append(("", f"version must be a whole number >= 1, got {shown(version)}"))
        elif version > VERSION:
            problems.append(("", f"graph version {version} is newer than this Trainbench reads ({VERSION})"))
        g = cls(name=name)
        for i, nd in enumerate(_list(data, "nodes", problems)):
            g._parse_node(i, nd, problems)
        incoming: dict[str, set[int]] = {}
        for i, ed in enumerate(_list(data, "edges", problems)):
            g._parse_edge(i, ed, incoming, problems)
        cyclic = g.topo_order()[1]
        if cyclic:
            problems.append(("", f"the edges make a cycle through {listed(cyclic)}"))
        out = data.get("output")
        if out is None or (isinstance(out, str) and out in g.nodes):
            g.output = out
        else:
            problems.append(("", f"output {shown(out)} is not a node of the graph"))
        g.tie = _parse_tie(data.get("tie", {}), problems)
        g.init_from = _parse_init_from(data.get("init_from"), problems)
        g.strict = data.get("strict", True)
        if not isinstance(g.strict, bool):
            problems.append(("", f"strict must be true or false, got {shown(g.strict)}"))
            g.strict = True
        if problems:
            raise GraphError(cap_problems(problems))
        return g

    def _parse_node(self, i: int, nd, problems: list) -> None:
        if not isinstance(nd, dict) or "id" not in nd or "op" not in nd:
            problems.append(("", f"nodes[{i}] must be an object with an id and an op, got {shown(nd)}"))
            return
        nid = nd["id"]
        problem = id_problem(nid)
        if problem:
            problems.append(("", f"nodes[{i}]: {problem}"))
            return
        extra = [k for k in nd if k not in _NODE_FIELDS]
        if extra:
            problems.append((nid, f"unknown node field(s): {listed(sorted(map(str, extra)))}"))
        try:
            self.add_node(nd["op"], nd.get("params", {}), nd.get("pos", (0.0, 0.0)), nid)
        except GraphError as err:
            problems.extend(err.problems)

    def _parse_edge(self, i: int, ed, incoming: dict[str, set[int]], problems: list) -> None:
        if not isinstance(ed, dict) or "from" not in ed or "to" not in ed:
            problems.append(("", f"edges[{i}] must be an object with from and to, got {shown(ed)}"))
            return
        extra = [k for k in ed if k not in _EDGE_FIELDS]
        src, dst, port = ed["from"], ed["to"], ed.get("port", 0)
        for end, nid in (("from", src), ("to", dst)):
            if not isinstance(nid, str) or nid not in self.nodes:
                problems.append(("", f"edges[{i}]: {end} {shown(nid)} is not a node of the graph"))
                return
        if extra:
            problems.append((dst, f"edges[{i}]: unknown edge field(s): {listed(sorted(map(str, extra)))}"))
        op = OPS[self.nodes[dst].op]
        used = incoming.setdefault(dst, set())
        if isinstance(port, bool) or not isinstance(port, int):
            reason = f"port must be a whole number, got {shown(port)}"
        elif src == dst:
            reason = "a node cannot feed itself"
        elif op.max_inputs == 0:
            reason = f"{dst} ({op.name}) takes no inputs"
        elif port < 0 or (op.max_inputs is not None and port >= op.max_inputs):
            # a variadic op's port past MAX_INPUTS is kept and reported by the analysis, so the
            # designer can open the file and show where it is wrong
            reason = f"{dst} ({op.name}) has {op.port_limit} input port(s); port {shown(port)} does not exist"
        elif port in used:
            reason = f"input {port} of {dst} is connected twice"
        else:
            used.add(port)
            self.edges.append(Edge(src, dst, port))
            return
        problems.append((dst, f"edges[{i}]: {reason}"))

    def copy(self) -> Graph:
        return Graph(
            copy.deepcopy(self.nodes),
            list(self.edges),
            self.output,
            self.name,
            dict(self.tie),
            copy.deepcopy(self.init_from),
            self.strict,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Graph:
        from engine.jsonfile import read_json

        return cls.from_dict(read_json(path))


def id_problem(node_id) -> str | None:
    """Why `node_id` cannot name a node, or None."""
    if not isinstance(node_id, str) or _ID.fullmatch(node_id) is None:
        return f"id {shown(node_id)}: {_ID_RULE}"
    if keyword.iskeyword(node_id):
        return f"id {node_id!r} is a Python keyword; rename the node (e.g. {node_id}_1)"
    if node_id in TORCH_MODULE_NAMES:
        return f"id {node_id!r} is a name torch.nn.Module uses itself; rename the node (e.g. {node_id}_1)"
    return None


def _parse_tie(tie, problems: list) -> dict[str, str]:
    """{tied parameter: source parameter}, both `node.param`; what they name is checked by
    the analysis (it knows the nodes' parameter shapes)."""
    if not isinstance(tie, dict):
        problems.append(("", f"tie must map a parameter to the one it shares, got {shown(tie)}"))
        return {}
    out = {}
    for target, source in tie.items():
        for name in (target, source):
            if not isinstance(name, str) or _PARAM.fullmatch(name) is None:
                problems.append(("", f"tie: {shown(name)} must name a node's parameter, like lm_head.weight"))
                break
        else:
            out[target] = source
    return out


def _parse_init_from(value, problems: list):
    """A run id, a weights file's path, or a run resolved to its checkpoint file."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**63:
        return value
    if isinstance(value, str) and value and "\0" not in value:
        return value
    if (
        isinstance(value, dict)
        and set(value) == {"run", "checkpoint"}
        and isinstance(value["run"], int)
        and isinstance(value["checkpoint"], str)
    ):
        return dict(value)
    problems.append(
        ("", f"init_from must be a run id or the path of a .safetensors file, got {shown(value)}")
    )
    return None


def _position(pos, node_id: str) -> tuple[float, float]:
    """A node's place on the canvas: two numbers. Any number is kept, NaN and 1e308 included:
    a position changes nothing the engine does, and the designer lays such nodes out afresh."""
    if (
        isinstance(pos, list | tuple)
        and len(pos) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos)
        and all(not isinstance(v, int) or abs(v) < 2**1000 for v in pos)  # float() of a huge int overflows
    ):
        return float(pos[0]), float(pos[1])
    raise GraphError([(node_id, f"pos must be [x, y], two numbers, got {shown(pos)}")])


def _list(data: dict, key: str, problems: list) -> list:
    value = data.get(key, [])
    if isinstance(value, list):
        return value
    problems.append(("", f"{key} must be a list, got {shown(value)}"))
    return []
