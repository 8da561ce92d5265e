"""Graph edits that make a model smaller, in plain Python (no torch).

The half-width and half-depth presets turn a teacher's graph into a distillation student;
`with_widths` writes the widths that pruning leaves behind back into a graph, so a pruned
model is again nothing but a graph and a state dict. A layer's width is the op registry's
`width` param (out_channels, out_features, hidden_size, embedding_dim); everything a layer
reads from its input (in_channels, BatchNorm widths) is inferred, so rewriting the widths is
the whole edit.
"""

from __future__ import annotations

import math

from engine.errors import GraphError
from engine.fields import cap_problems
from engine.graph.model import Graph
from engine.graph.ops import OPS
from engine.graph.shapes import analyze

# Params that merely restate the input width; dropped from edited nodes so they are inferred.
_DECLARED_INPUTS = ("in_channels", "in_features")


def output_head(graph: Graph) -> list[str]:
    """The layers that set the model's output width: the nearest width-setting nodes at or
    behind the output. Pruning keeps them by default and the half-width preset leaves them
    alone, so the output still has one score per class (or token, or target)."""
    analysis = analyze(graph)
    output = analysis.output
    head, stack, seen = [], [output] if output else [], set()
    while stack:
        nid = stack.pop()
        if nid in seen:
            continue
        seen.add(nid)
        if OPS[graph.nodes[nid].op].width:
            head.append(nid)
        elif nid in analysis.nodes:
            stack.extend(analysis.nodes[nid].sources)
    return sorted(head)


def with_widths(graph: Graph, widths: dict[str, dict]) -> Graph:
    """A copy of `graph` with new params for some nodes ({node: {param: value}}). Declared
    input widths are dropped everywhere: they restate an input that may have changed."""
    out = graph.copy()
    for nid, node in out.nodes.items():
        node.params = {k: v for k, v in node.params.items() if k not in _DECLARED_INPUTS} | widths.get(
            nid, {}
        )
    return out


def half_width(graph: Graph) -> Graph:
    """Halve every layer's width except the output head's, inside Repeat bodies too."""
    return _halve(graph, keep=set(output_head(graph)))


def _halve(graph: Graph, keep: set[str]) -> Graph:
    widths: dict[str, dict] = {}
    for nid, node in graph.nodes.items():
        op = OPS[node.op]
        if op.body is not None and node.params.get(op.body):
            body = Graph.from_dict(node.params[op.body])
            # A body's output must keep its input's width, which halves with the rest.
            widths[nid] = {op.body: _halve(body, keep=set()).to_dict()}
        elif op.width and nid not in keep:
            old = node.params.get(op.width, op.field(op.width).default)
            params = {op.width: max(1, old // 2)}
            groups = node.params.get("groups", 1)
            if groups > 1 and groups == old:  # depthwise: one group per channel, before and after
                params["groups"] = params[op.width]
            widths[nid] = params
    return with_widths(graph, widths)


def half_depth(graph: Graph) -> Graph:
    """Halve the depth: every block op stacks half as many copies (rounded up), and every other
    block of the main path whose output shape equals its input shape is dropped (the first
    one stays). Raises GraphError when there is nothing to drop."""
    out = graph.copy()
    changed = False
    for node in out.nodes.values():
        op = OPS[node.op]
        if not op.copies:
            continue
        copies = node.params.get(op.copies, op.field(op.copies).default)
        if copies > 1:
            node.params = {**node.params, op.copies: math.ceil(copies / 2)}
            changed = True
    droppable = [b for b in _blocks(out) if b["removable"]]
    for block in droppable[1::2]:
        _drop(out, block)
        changed = True
    if not changed:
        raise GraphError(
            [
                (
                    "",
                    "half_depth found nothing to drop: no Repeat, and no block of layers whose output "
                    "shape equals its input shape",
                )
            ]
        )
    return out


def _blocks(graph: Graph) -> list[dict]:
    """The main path cut into blocks. A cut point is a node whose output is the only value
    alive at that point of the topological order (everything after depends on it alone); a
    block runs from one cut point to a later one and starts with a deep layer, taking along
    the shape-keeping layers after it (activations, norms, dropout). A block is removable when
    it maps its input type to the same type and holds no block op (those are halved instead)."""
    analysis = analyze(graph)
    if analysis.problems:
        raise GraphError(cap_problems(analysis.problems))
    order = analysis.order
    pos = {n: i for i, n in enumerate(order)}
    # A value is alive from its node's place in the order up to its last consumer's: a sweep
    # over those intervals finds the places where exactly one value, the current node's, is.
    last = dict.fromkeys(order, -1)
    for e in graph.edges:
        last[e.src] = max(last[e.src], pos[e.dst])
    delta = [0] * (len(order) + 1)
    for nid, end in last.items():
        if end > pos[nid]:
            delta[pos[nid]] += 1
            delta[end] -= 1
    cuts, alive = [], 0
    for i, nid in enumerate(order[:-1]):
        alive += delta[i]
        if alive == 1 and last[nid] > i:
            cuts.append(nid)
    cuts.append(order[-1])

    def deep(nodes) -> bool:
        return any(OPS[graph.nodes[n].op].transforms_features for n in nodes)

    def has_block(nodes) -> bool:
        return any(OPS[graph.nodes[n].op].body is not None for n in nodes)

    blocks: list[dict] = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        nodes = order[pos[start] + 1 : pos[end] + 1]
        reshapes = analysis.nodes[start].out != analysis.nodes[end].out
        if deep(nodes) or reshapes or not blocks:
            blocks.append({"entry": start, "nodes": nodes})
        else:  # an activation, norm or dropout belongs to the block before it
            blocks[-1]["nodes"] = blocks[-1]["nodes"] + nodes
    for b in blocks:
        b["exit"] = b["nodes"][-1]
        b["removable"] = (
            deep(b["nodes"])
            and not has_block(b["nodes"])
            and analysis.nodes[b["entry"]].out == analysis.nodes[b["exit"]].out
            and graph.nodes[b["entry"]].op != "Input"
        )
    return blocks


def _drop(graph: Graph, block: dict) -> None:
    """Remove a block and feed what it fed from the block's entry instead."""
    consumers = graph.consumers_of(block["exit"])
    was_output = graph.output == block["exit"]
    for nid in block["nodes"]:
        graph.remove_node(nid)
    for e in consumers:
        graph.connect(block["entry"], e.dst, e.port)
    if was_output:
        graph.output = block["entry"]
