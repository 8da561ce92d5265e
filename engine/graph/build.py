"""Graph → torch.nn.Module, by instantiating each op's declared constructor (no generated code).

Node ids become submodule names, so a printed model reads like the designer's canvas and the
state dict keys (`conv1.weight`) match the exported PyTorch file.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import GraphError
from engine.graph import layers
from engine.graph.model import Graph
from engine.graph.ops import OPS
from engine.graph.shapes import Analysis, TensorType, validate

_RESERVED = set(dir(nn.Module))


class GraphModule(nn.Module):
    """Runs the nodes in topological order, freeing each value after its last use."""

    def __init__(self, analysis: Analysis):
        super().__init__()
        graph = analysis.graph
        bad = [n for n in graph.nodes if n in _RESERVED]
        if bad:
            raise GraphError([(n, "this id is reserved by torch.nn.Module; rename the node") for n in bad])
        self.inputs = graph.input_nodes()
        self.output = analysis.output
        self.steps: list[tuple[str, list[str]]] = []
        for nid in analysis.order:
            info = analysis.nodes[nid]
            if info.op == "Input":
                continue
            self.add_module(nid, make_module(info.op, info.params, info.inputs))
            self.steps.append((nid, graph.ordered_inputs(nid)))
        last_use: dict[str, int] = {}
        for i, (_, srcs) in enumerate(self.steps):
            for s in srcs:
                last_use[s] = i
        self.frees = [
            [s for s in srcs if last_use[s] == i and s != self.output]
            for i, (_, srcs) in enumerate(self.steps)
        ]

    def forward(self, *xs):
        values = dict(zip(self.inputs, xs, strict=True))
        for (nid, srcs), free in zip(self.steps, self.frees, strict=True):
            values[nid] = getattr(self, nid)(*(values[s] for s in srcs))
            for s in free:
                del values[s]
        return values[self.output]


def make_module(op_name: str, params: dict, inputs: list[TensorType]) -> nn.Module:
    if op_name == "Repeat":
        body = Graph.from_dict(params["body"])
        return layers.Repeat([build(body, inputs[0]) for _ in range(params["times"])])
    qualname, kwargs = OPS[op_name].ctor(params, inputs)
    namespace, cls = qualname.split(".")
    return getattr(nn if namespace == "nn" else layers, cls)(**kwargs)


def build(graph: Graph, input_type: TensorType | None = None) -> GraphModule:
    """A fresh, randomly initialised module; raises GraphError listing every problem."""
    return GraphModule(validate(graph, input_type))


def example_input(analysis: Analysis, batch: int = 2) -> torch.Tensor:
    t = analysis.input_type
    if t.dtype == "long":
        return torch.randint(0, 2, (batch, *t.shape))
    return torch.randn(batch, *t.shape)
