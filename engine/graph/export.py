"""Export a graph (and optionally trained weights) as a standalone PyTorch file, TorchScript
or ONNX.

The PyTorch export writes readable code: one class per graph (the model and each Repeat
body), a constructor line per node taken from the op registry's `ctor`, a forward line per
node, and a copy of `layers.py` so the file runs without Trainbench. Weights go in a
`.pt` state dict beside it, loaded with `weights_only=True`.
"""

from __future__ import annotations

import inspect
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from engine.errors import TrainbenchError
from engine.graph import layers
from engine.graph.build import build, example_input
from engine.graph.model import Graph
from engine.graph.ops import OPS
from engine.graph.shapes import Analysis, validate

FORMATS = ("pytorch", "torchscript", "onnx")
ONNX_FUNCTIONS = {layers.TransformerBlock, layers.MultiheadSelfAttention, layers.PositionalEmbedding}


class ExportError(TrainbenchError):
    pass


def export(graph: Graph, fmt: str, path: str | Path, state_dict: dict | None = None) -> list[Path]:
    """Write the export; returns the files written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    analysis = validate(graph)
    if fmt == "pytorch":
        return export_pytorch(graph, analysis, path, state_dict)
    model = build(graph)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    model.eval()
    x = example_input(analysis)
    if fmt == "torchscript":
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, x)
        except Exception as err:  # noqa: BLE001 - the tracer's failures come in many types
            raise ExportError(f"TorchScript export failed: {str(err).splitlines()[0][:300]}") from None
        traced.save(str(path))
        return [path]
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise ExportError(
                "ONNX export needs the onnx package: pip install 'trainbench[onnx]' (or pip install onnx)"
            ) from None
        try:
            with _quiet_stdout():
                torch.onnx.export(
                    model,
                    (x,),
                    str(path),
                    input_names=["input"],
                    output_names=["output"],
                    dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                    dynamo=False,
                    # Trainbench's transformer layers as ONNX functions: runtimes inline them, and
                    # `trainbench import model` reads them back as the same ops
                    export_modules_as_functions={type(m) for m in model.modules()} & ONNX_FUNCTIONS,
                )
        except Exception as err:  # noqa: BLE001 - exporter failures come in many types
            raise ExportError(f"ONNX export failed: {err}") from None
        return [path]
    raise ExportError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")


@contextmanager
def _quiet_stdout():
    """torch's exporter prints a note per unset annotated attribute (nn.Embedding's `freeze`)
    on the process's stdout, where `trainbench export` prints the files it wrote."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def export_pytorch(graph: Graph, analysis: Analysis, path: Path, state_dict: dict | None) -> list[Path]:
    """Write the model as readable PyTorch code. No user text is pasted into the code: the
    graph's name and the weights' file name go through repr() into constants, node ids are
    identifiers checked by the graph model, and every constructor argument is the repr() of a
    validated value."""
    classes: list[str] = []
    _emit_class(analysis, "Model", classes, set())
    layer_src = inspect.getsource(layers).split("\n", 6)[-1]  # drop the module docstring
    weights = path.with_suffix(".pt")
    code = f'''"""A model exported by Trainbench (its name is NAME below). Runs with torch alone.

Parameters: {analysis.total_params:,}; input: batch × {analysis.input_type}; output: batch × {analysis.output_type}.
Usage, with the weights saved beside this file (same name, .pt):
    model = Model()
    model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
"""

{layer_src.strip()}

NAME = {graph.name!r}
WEIGHTS = {weights.name!r}


{chr(10).join(classes)}

if __name__ == "__main__":
    import pathlib
    model = Model()
    weights = pathlib.Path(__file__).with_suffix(".pt")
    if weights.exists():
        model.load_state_dict(torch.load(weights, weights_only=True))
    print(model)
'''
    path.write_text(code)
    written = [path]
    if state_dict is not None:
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, weights)
        written.append(weights)
    return written


def _locals(analysis: Analysis) -> dict[str, str]:
    """A local variable name per node: its id (an identifier, no keyword: see the graph
    model), except that `self` gets underscores appended until the name is free."""
    names = {nid: nid for nid in analysis.graph.nodes}
    if "self" in names:
        name = "self_"
        while name in names:
            name += "_"
        names["self"] = name
    return names


def _emit_class(analysis: Analysis, name: str, classes: list[str], used: set[str]) -> None:
    used.add(name)
    graph, init, fwd = analysis.graph, [], []
    local = _locals(analysis)
    for nid in analysis.order:
        info = analysis.nodes[nid]
        if info.op == "Input":
            continue
        op = OPS[info.op]
        qualname, kwargs = op.ctor(info.params, info.inputs)
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        cls = qualname.replace("layers.", "")
        if op.body is not None:
            body_name = _class_name(f"{name}_{nid}", used)
            _emit_class(info.body, body_name, classes, used)
            copies = info.params[op.copies] if op.copies else 1
            args = f"[{body_name}() for _ in range({copies})]" + (f", {args}" if args else "")
        init.append(f"        self.{nid} = {cls}({args})")
        srcs = ", ".join(local[s] for s in info.sources)
        fwd.append(f"        {local[nid]} = self.{nid}({srcs})")
    # shared weights: the tied parameter becomes its source's tensor (paths checked by the graph model)
    init.extend(f"        self.{target} = self.{source}" for target, source in graph.tie.items())
    inputs = ", ".join(local[n] for n in graph.input_nodes())
    classes.append(
        f"class {name}(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        + "\n".join(init or ["        pass"])
        + f"\n\n    def forward(self, {inputs}):\n"
        + "\n".join(fwd)
        + f"\n        return {local[analysis.output]}\n\n"
    )


def _class_name(base: str, used: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, …: body classes of different blocks must not share a name
    (Model_a_b is both body b of block a and block a_b)."""
    name, i = base, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    return name
