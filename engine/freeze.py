"""Fine-tuning controls by node id: `train.freeze` and `optim.lr_mult`.

`train.freeze` lists nodes whose parameters get no gradient: a node id (`conv1`), or a
Repeat's first k copies (`h[:6]`, the usual "freeze the lower layers"). Frozen norm layers
also keep their running statistics, so a frozen backbone computes exactly what it did.
`optim.lr_mult` scales the learning rate of some nodes' parameters ({"backbone": 0.1}).

The selection is read here without torch (the run form counts trainable and frozen
parameters from the graph's analysis); `apply` marks a built model.
"""

from __future__ import annotations

import re

from engine.graph.model import Graph
from engine.graph.shapes import Analysis

_ENTRY = re.compile(r"(?P<node>[A-Za-z][A-Za-z0-9_]*)(\[:(?P<copies>\d+)\])?")
MAX_LR_MULT = 1000.0


def parse(entry) -> tuple[str, int | None] | None:
    """("h", 3) for "h[:3]", ("conv1", None) for "conv1"; None when it is neither."""
    m = _ENTRY.fullmatch(entry) if isinstance(entry, str) else None
    return (m["node"], int(m["copies"]) if m["copies"] else None) if m else None


def problems(graph_doc: dict | None, freeze, lr_mult) -> list[tuple[str, str]]:
    """What is wrong with train.freeze and optim.lr_mult for this model, by spec path."""
    out: list[tuple[str, str]] = []
    if not isinstance(freeze, list):
        out.append(("train.freeze", f"must be a list of node ids (or repeat[:k]), got {freeze!r}"[:200]))
        freeze = []
    if not isinstance(lr_mult, dict):
        out.append(("optim.lr_mult", "must map node ids to learning-rate factors"))
        lr_mult = {}
    graph = Graph.from_dict(graph_doc) if graph_doc is not None else None
    for i, entry in enumerate(freeze):
        where, parsed = f"train.freeze[{i}]", parse(entry)
        if parsed is None:
            out.append((where, f"{entry!r} is not a node id or repeat[:k]"[:200]))
            continue
        if graph is None:
            continue
        node, copies = parsed
        if node not in graph.nodes:
            out.append((where, f"the model has no node {node!r}"))
        elif copies is not None:
            n = graph.nodes[node]
            if n.op != "Repeat":
                out.append((where, f"{node} is a {n.op}; [:k] selects the first copies of a Repeat"))
            elif not 1 <= copies <= n.params.get("times", 2):
                out.append((where, f"{node} has {n.params.get('times', 2)} copies; k must be 1 to that"))
    for node, factor in lr_mult.items():
        where = f"optim.lr_mult.{node}"
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= MAX_LR_MULT:
            out.append((where, f"must be a factor > 0 and <= {MAX_LR_MULT:g}, got {factor!r}"[:200]))
        elif graph is not None and node not in graph.nodes:
            out.append((where, f"the model has no node {node!r}"))
    return out


def prefixes(freeze: list[str]) -> list[str]:
    """State-dict name prefixes of the frozen parameters (`conv1.`, `h.blocks.0.`)."""
    out = []
    for entry in freeze:
        node, copies = parse(entry)
        out += [f"{node}.blocks.{i}." for i in range(copies)] if copies is not None else [f"{node}."]
    return out


def counts(analysis: Analysis, freeze: list[str]) -> tuple[int, int]:
    """(trainable, frozen) parameters of an analysed model under `freeze`."""
    frozen = 0
    for entry in freeze:
        parsed = parse(entry)
        info = analysis.nodes.get(parsed[0]) if parsed else None
        if info is None:
            continue
        if parsed[1] is None:
            frozen += info.n_params
        elif info.body is not None:
            frozen += min(parsed[1], info.params.get("times", 1)) * info.body.total_params
    return analysis.total_params - frozen, frozen


def apply(model, freeze: list[str]) -> tuple[int, int]:
    """Take the frozen parameters out of training (no gradient, so no optimizer step moves
    them) and keep frozen norm layers' statistics; returns (trainable, frozen) counts."""
    from torch.nn.modules.batchnorm import _BatchNorm

    marks = prefixes(freeze)
    for name, p in model.named_parameters():
        if name.startswith(tuple(marks)):
            p.requires_grad_(False)
    for name, m in model.named_modules():
        if isinstance(m, _BatchNorm) and f"{name}.".startswith(tuple(marks)):
            m.register_forward_pre_hook(_keep_statistics)
    params = {id(p): p for p in model.parameters()}.values()
    frozen = sum(p.numel() for p in params if not p.requires_grad)
    return sum(p.numel() for p in params) - frozen, frozen


def _keep_statistics(module, inputs) -> None:
    module.training = False  # a frozen norm normalises with, and keeps, its running statistics


def lr_factor(name: str, lr_mult: dict[str, float]) -> float:
    """The learning-rate factor of parameter `name` (its node is the name's first part)."""
    return float(lr_mult.get(name.split(".", 1)[0], 1.0))
