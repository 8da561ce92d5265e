"""An imported graph made readable: identical consecutive blocks collapsed into one Repeat
node, and every node placed (left to right by depth).

A block is what one entry of a `ModuleList` or `Sequential` contributed (`h.0`, `h.1`, … of a
GPT; `layer1.0`, `layer1.1` of a ResNet): its nodes have one value coming in and one going
out. Consecutive blocks collapse when they chain into each other, keep their input's shape
and are the same ops with the same params wired the same way; their weights stay each
copy's own (`h.blocks.3.attn.qkv.weight`), so the weights always allow it unless one of them
is tied to something.
"""

from __future__ import annotations

import json
import re

from engine.graph.importers.report import Imported
from engine.graph.model import Edge, Graph, id_problem
from engine.graph.shapes import analyze

COLUMN, ROW = 200.0, 110.0
_INDEXED = re.compile(r"^(?P<parent>.+)\.(?P<index>\d+)(\.|$)")


def collapse_repeats(imported: Imported) -> None:
    graph, infos = imported.graph, analyze(imported.graph).nodes
    order = graph.topo_order()[0]
    groups: dict[tuple[str, int], list[str]] = {}
    for nid in order:
        m = _INDEXED.match(imported.scopes.get(nid, ""))
        if m:
            groups.setdefault((m["parent"], int(m["index"])), []).append(nid)
    tied = {name.split(".", 1)[0] for pair in graph.tie.items() for name in pair}
    blocks = {}
    for (parent, index), nodes in groups.items():
        block = _block(graph, infos, nodes, tied)
        if block is not None:
            blocks[(parent, index)] = block | {"index": index}
    parents = list(dict.fromkeys(parent for parent, _ in blocks))  # in the order they run
    for parent in parents:
        run: list[dict] = []
        for index in sorted(i for p, i in blocks if p == parent):
            block = blocks[(parent, index)]
            if run and _continues(run, block, index):
                run.append(block)
                continue
            _collapse(imported, parent, run)
            run = [block]
        _collapse(imported, parent, run)


def _block(graph: Graph, infos: dict, nodes: list[str], tied: set[str]) -> dict | None:
    """A group of nodes as a block (entry, exit, signature), or None when it is not one."""
    inside = set(nodes)
    if inside & tied or any(graph.nodes[n].op == "Input" for n in nodes):
        return None
    entries = {e.src for e in graph.edges if e.dst in inside and e.src not in inside}
    exits = {e.src for e in graph.edges if e.src in inside and e.dst not in inside}
    if graph.output in inside:
        exits.add(graph.output)
    if len(entries) != 1 or len(exits) != 1:
        return None
    entry, exit_ = entries.pop(), exits.pop()
    if infos[entry].out is None or infos[entry].out != infos[exit_].out:
        return None
    place = {n: i for i, n in enumerate(nodes)}
    signature = []
    for n in nodes:
        srcs = [("in" if s == entry else place.get(s, "?")) for s in graph.ordered_inputs(n)]
        signature.append((graph.nodes[n].op, json.dumps(graph.nodes[n].params, sort_keys=True), tuple(srcs)))
    if any("?" in s[2] for s in signature):
        return None
    return {"nodes": nodes, "entry": entry, "exit": exit_, "signature": signature}


def _continues(run: list[dict], block: dict, index: int) -> bool:
    """Whether `block` (number `index`) extends `run`: the next index, fed by the run's last
    block, and the same as the run's first."""
    return (
        index == run[0]["index"] + len(run)
        and block["entry"] == run[-1]["exit"]
        and block["signature"] == run[0]["signature"]
    )


def _collapse(imported: Imported, parent: str, run: list[dict]) -> None:
    if len(run) < 2:
        return
    graph, state = imported.graph, imported.state
    first = run[0]
    names = _body_ids(first["nodes"])
    body = Graph(name=f"{parent} block")
    body.add_node("Input", {}, (0.0, 0.0), "x")
    for n in first["nodes"]:
        node = graph.nodes[n]
        body.add_node(node.op, node.params, (0.0, 0.0), names[n])
    for n in first["nodes"]:
        for port, src in sorted(graph.inputs_of(n).items()):
            body.connect("x" if src == first["entry"] else names[src], names[n], port)
    body.output = names[first["exit"]]
    lay_out(body)

    parts = [p for i, p in enumerate(parent.split(".")) if i == 0 or p != parent.split(".")[i - 1]]
    rid = graph.free_id(re.sub(r"\W", "_", "_".join(parts)))  # blocks.blocks → blocks
    graph.add_node("Repeat", {"times": len(run), "body": body.to_dict()}, (0.0, 0.0), rid)
    for copy, block in enumerate(run):
        for n, b in zip(first["nodes"], block["nodes"], strict=True):
            for key in [k for k in state if k.startswith(b + ".")]:
                state[f"{rid}.blocks.{copy}.{names[n]}.{key[len(b) + 1 :]}"] = state.pop(key)
    last = run[-1]
    consumers = [e for e in graph.edges if e.src == last["exit"]]
    was_output = graph.output == last["exit"]
    for block in run:
        for n in block["nodes"]:
            graph.remove_node(n)
            imported.scopes.pop(n, None)
    graph.connect(first["entry"], rid, 0)
    graph.edges.extend(Edge(rid, e.dst, e.port) for e in consumers)
    if was_output:
        graph.output = rid
    imported.scopes[rid] = parent
    imported.repeats.append({"node": rid, "copies": len(run)})


def _body_ids(nodes: list[str]) -> dict[str, str]:
    """Body ids without the block's common prefix (`h_0_attn` → `attn`) where that leaves
    valid, distinct ids."""
    prefix = nodes[0]
    for n in nodes[1:]:
        while not n.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix[: prefix.rfind("_") + 1] if "_" in prefix else ""
    names = {n: n[len(prefix) :] or n for n in nodes}
    if len(set(names.values())) != len(names) or any(id_problem(v) or v == "x" for v in names.values()):
        return {n: n for n in nodes} if "x" not in nodes else {n: f"{n}_" if n == "x" else n for n in nodes}
    return names


def lay_out(graph: Graph) -> None:
    """Columns by longest path from the inputs, nodes in a column in the graph's order."""
    order = graph.topo_order()[0]
    depth: dict[str, int] = {}
    for n in order:
        depth[n] = max((depth[s] + 1 for s in graph.inputs_of(n).values() if s in depth), default=0)
    rows: dict[int, int] = {}
    for n in order:
        d = depth[n]
        graph.nodes[n].pos = (d * COLUMN, rows.get(d, 0) * ROW)
        rows[d] = rows.get(d, 0) + 1
