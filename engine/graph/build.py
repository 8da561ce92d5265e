"""Graph → torch.nn.Module, by instantiating each op's declared constructor (no generated code).

Node ids become submodule names, so a printed model reads like the designer's canvas and the
state dict keys (`conv1.weight`) match the exported PyTorch file and every checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import GraphError
from engine.graph import layers
from engine.graph.model import Graph
from engine.graph.ops import OPS
from engine.graph.shapes import Analysis, NodeInfo, TensorType, validate


class GraphModule(nn.Module):
    """Runs the nodes in topological order, freeing each value after its last use.

    Layers are registered under their node ids, which the graph model keeps clear of
    nn.Module's own names; the bookkeeping has names no id can have (ids start with a
    letter), so a node may be called `output`, `inputs` or `steps`.
    """

    def __init__(self, analysis: Analysis):
        super().__init__()
        steps = [
            (nid, analysis.nodes[nid].sources) for nid in analysis.order if analysis.nodes[nid].op != "Input"
        ]
        last_use: dict[str, int] = {}
        for i, (_, srcs) in enumerate(steps):
            for s in srcs:
                last_use[s] = i
        self._graph_inputs = analysis.graph.input_nodes()
        self._graph_output = analysis.output
        self._graph_steps = steps
        self._graph_frees = [
            [s for s in srcs if last_use[s] == i and s != analysis.output]
            for i, (_, srcs) in enumerate(steps)
        ]
        for nid, _ in steps:
            self.add_module(nid, make_module(analysis.nodes[nid]))
        tie_parameters(self, analysis.graph.tie)

    def forward(self, *xs):
        values = dict(zip(self._graph_inputs, xs, strict=True))
        layer = self._modules
        for (nid, srcs), free in zip(self._graph_steps, self._graph_frees, strict=True):
            values[nid] = layer[nid](*(values[s] for s in srcs))
            for s in free:
                del values[s]
        return values[self._graph_output]


def make_module(info: NodeInfo) -> nn.Module:
    """The module of one analysed node; a block op gets one built body per copy."""
    op = OPS[info.op]
    qualname, kwargs = op.ctor(info.params, info.inputs)
    namespace, name = qualname.split(".")
    cls = getattr(nn if namespace == "nn" else layers, name)
    if op.body is not None:
        copies = info.params[op.copies] if op.copies else 1
        return cls([GraphModule(info.body) for _ in range(copies)], **kwargs)
    try:
        return cls(**kwargs)
    except Exception as err:  # noqa: BLE001 - an imported module's own code can raise anything
        what = kwargs.get("target", qualname)
        raise GraphError([(info.id, f"cannot build {what}: {type(err).__name__}: {err}")]) from None


def tie_parameters(model: nn.Module, tie: dict[str, str]) -> None:
    """Make each tied parameter the very tensor of its source (one Parameter, registered under
    both names): one gradient, one optimizer state, one copy in memory. The pair starts from
    the tied parameter's initialisation (an LM head's, scaled to its inputs): an embedding's
    N(0, 1) would make the head's logits √width times too large."""
    for target, source in tie.items():
        owner, _, name = target.rpartition(".")
        shared = model.get_parameter(source)
        with torch.no_grad():
            shared.copy_(model.get_parameter(target))
        setattr(model.get_submodule(owner), name, shared)


def build(graph: Graph, input_type: TensorType | None = None) -> GraphModule:
    """A fresh, randomly initialised module; raises GraphError listing every problem."""
    return GraphModule(validate(graph, input_type))


def example_input(analysis: Analysis, batch: int = 2) -> torch.Tensor:
    t = analysis.input_type
    if t.dtype == "long":
        return torch.randint(0, 2, (batch, *t.shape))
    return torch.randn(batch, *t.shape)
