"""Shape inference, parameter and FLOP counts for a whole graph, in plain Python.

`analyze` never raises: it returns every node's output type and counts together with every
problem found (cycles, unconnected inputs, a missing output, unreachable nodes, bad params,
shape mismatches), each naming its node, so the designer can badge all of them after each
edit without touching torch or data.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from engine.errors import GraphError
from engine.fields import check_fields
from engine.graph.model import Graph
from engine.graph.ops import OPS, ShapeError, TensorType

__all__ = ["Analysis", "NodeInfo", "TensorType", "analyze", "validate"]


@dataclass
class NodeInfo:
    id: str
    op: str
    params: dict  # validated, defaults filled in
    inputs: list[TensorType] = field(default_factory=list)
    out: TensorType | None = None
    n_params: int = 0
    flops: int = 0
    error: str | None = None


@dataclass
class Analysis:
    graph: Graph
    nodes: dict[str, NodeInfo]
    order: list[str]
    output: str | None
    problems: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total_params(self) -> int:
        return sum(n.n_params for n in self.nodes.values())

    @property
    def total_flops(self) -> int:
        return sum(n.flops for n in self.nodes.values())

    @property
    def input_type(self) -> TensorType | None:
        ins = self.graph.input_nodes()
        return self.nodes[ins[0]].out if len(ins) == 1 and ins[0] in self.nodes else None

    @property
    def output_type(self) -> TensorType | None:
        return self.nodes[self.output].out if self.output in self.nodes else None

    def problems_of(self, node_id: str) -> list[str]:
        return [m for n, m in self.problems if n == node_id or n.startswith(node_id + "/")]

    def table(self) -> list[dict]:
        """One row per node in execution order, for `trainbench validate` and the summary panel."""
        return [
            {
                "node": i.id,
                "op": i.op,
                "output": str(i.out) if i.out else "?",
                "params": i.n_params,
                "flops": i.flops,
                "error": i.error or "",
            }
            for i in (self.nodes[n] for n in self.order)
        ]


def analyze(graph: Graph, input_type: TensorType | None = None) -> Analysis:
    """Infer every node. `input_type` feeds a shape-less Input (the body of a Repeat)."""
    problems: list[tuple[str, str]] = []
    incoming: dict[str, dict[int, str]] = {n: {} for n in graph.nodes}
    outgoing: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for e in graph.edges:
        incoming[e.dst][e.port] = e.src
        outgoing[e.src].append(e.dst)

    order, cyclic = _topo(graph, incoming, outgoing)
    for n in cyclic:
        problems.append((n, "is part of a cycle (or fed by one)"))

    inputs = graph.input_nodes()
    if not inputs:
        problems.append(("", "the graph has no Input node"))
    output = _find_output(graph, outgoing, problems)

    infos: dict[str, NodeInfo] = {}
    for nid in order:
        node = graph.nodes[nid]
        op = OPS[node.op]
        param_problems: list[tuple[str, str]] = []
        params = check_fields(op.params, node.params, "", param_problems)
        info = infos[nid] = NodeInfo(nid, node.op, params)
        errors = [f"{path}: {msg}" for path, msg in param_problems]

        ports = incoming[nid]
        missing = _missing_ports(op, ports)
        if missing:
            errors.append(missing)
        upstream = [infos.get(ports[p]) for p in sorted(ports)]
        if not errors and all(u is not None and u.out is not None for u in upstream):
            info.inputs = [u.out for u in upstream]
            try:
                _infer(info, op, input_type, problems)
            except ShapeError as err:
                errors.append(str(err))
        if errors:
            info.error = "; ".join(errors)
            problems.extend((nid, e) for e in errors)

    if output is not None:
        feeds_output = _ancestors(output, incoming) | {output}
        for nid in graph.nodes:
            if nid not in feeds_output and nid not in cyclic:
                problems.append((nid, "does not lead to the output; connect it or delete it"))
    return Analysis(graph, infos, order, output, problems)


def validate(graph: Graph, input_type: TensorType | None = None) -> Analysis:
    """`analyze`, raising `GraphError` with every problem when there is any."""
    result = analyze(graph, input_type)
    if result.problems:
        raise GraphError(result.problems)
    return result


def _infer(info: NodeInfo, op, input_type: TensorType | None, problems: list) -> None:
    if op.name == "Input" and input_type is not None:
        info.out = input_type
        return
    if op.name == "Repeat":
        _infer_repeat(info, problems)
        return
    info.out = op.shape(info.params, info.inputs)
    info.n_params = op.n_params(info.params, info.inputs, info.out)
    info.flops = op.flops(info.params, info.inputs, info.out)


def _infer_repeat(info: NodeInfo, problems: list) -> None:
    body_doc = info.params["body"]
    if body_doc is None:
        raise ShapeError("has no body; open it and add the block to repeat")
    try:
        body = Graph.from_dict(body_doc)
    except GraphError as err:
        problems.extend((f"{info.id}/{n}" if n else info.id, f"body: {m}") for n, m in err.problems)
        raise ShapeError("its body is not a valid graph") from None
    if len(body.input_nodes()) != 1:
        raise ShapeError("the body needs exactly one Input")
    inner = analyze(body, info.inputs[0])
    if inner.problems:
        problems.extend((f"{info.id}/{n}" if n else info.id, f"body: {m}") for n, m in inner.problems)
        raise ShapeError("its body has errors")
    out = inner.output_type
    if info.params["times"] > 1 and out != info.inputs[0]:
        raise ShapeError(f"the body maps {info.inputs[0]} to {out}; to stack it, output must equal input")
    info.out = out
    info.n_params = info.params["times"] * inner.total_params
    info.flops = info.params["times"] * inner.total_flops


def _topo(graph, incoming, outgoing) -> tuple[list[str], list[str]]:
    # Kahn's algorithm; ties broken by insertion order so tables read like the file.
    rank = {n: i for i, n in enumerate(graph.nodes)}
    indeg = {n: len(incoming[n]) for n in graph.nodes}
    ready = [(rank[n], n) for n in graph.nodes if indeg[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for m in outgoing[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                heapq.heappush(ready, (rank[m], m))
    cyclic = [n for n in graph.nodes if n not in set(order)]
    return order, cyclic


def _find_output(graph: Graph, outgoing, problems) -> str | None:
    """The declared output, or the one sink when there is exactly one."""
    if graph.output is not None:
        return graph.output if graph.output in graph.nodes else None
    sinks = [n for n, node in graph.nodes.items() if not outgoing[n] and node.op != "Input"]
    if len(sinks) == 1:
        return sinks[0]
    if not sinks:
        problems.append(("", "the graph has no output: add a layer after the Input"))
    else:
        problems.append(
            (
                "",
                f"the graph has no output: {len(sinks)} nodes end a path ({', '.join(sinks)}); mark one as output",
            )
        )
    return None


def _missing_ports(op, ports: dict[int, str]) -> str | None:
    need = op.min_inputs
    have = len(ports)
    if have < need:
        return f"needs {need} connected input{'s' if need > 1 else ''}, has {have}"
    if ports and max(ports) != have - 1:
        gaps = [p for p in range(max(ports)) if p not in ports]
        return f"input port(s) {gaps} not connected"
    return None


def _ancestors(node: str, incoming) -> set[str]:
    seen, stack = set(), [node]
    while stack:
        for src in incoming[stack.pop()].values():
            if src not in seen:
                seen.add(src)
                stack.append(src)
    return seen
