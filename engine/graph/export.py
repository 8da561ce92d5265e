"""Export a graph (and optionally trained weights) as a standalone PyTorch file, TorchScript
or ONNX.

The PyTorch export writes readable code: one class per graph (the model and each Repeat
body), a constructor line per node taken from the op registry's `ctor`, a forward line per
node, and a copy of `layers.py` so the file runs without Trainbench. Weights go in a
`.pt` state dict beside it, loaded with `weights_only=True`.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch

from engine.errors import TrainbenchError
from engine.graph import layers
from engine.graph.build import build, example_input
from engine.graph.model import Graph
from engine.graph.ops import OPS
from engine.graph.shapes import Analysis, validate

FORMATS = ("pytorch", "torchscript", "onnx")


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
        with torch.no_grad():
            traced = torch.jit.trace(model, x)
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
            torch.onnx.export(
                model,
                (x,),
                str(path),
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                dynamo=False,
            )
        except Exception as err:  # noqa: BLE001 - exporter failures come in many types
            raise ExportError(f"ONNX export failed: {err}") from None
        return [path]
    raise ExportError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")


def export_pytorch(graph: Graph, analysis: Analysis, path: Path, state_dict: dict | None) -> list[Path]:
    classes: list[str] = []
    _emit_class(graph, analysis, "Model", classes)
    layer_src = inspect.getsource(layers).split("\n", 6)[-1]  # drop the module docstring
    weights = path.with_suffix(".pt")
    code = f'''"""{graph.name}: exported by Trainbench. Runs with torch alone.

Parameters: {analysis.total_params:,}; input: batch × {analysis.input_type}; output: batch × {analysis.output_type}.
Usage:
    model = Model()
    model.load_state_dict(torch.load("{weights.name}", weights_only=True))
"""

{layer_src.strip()}


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


def _emit_class(graph: Graph, analysis: Analysis, name: str, classes: list[str]) -> None:
    init, fwd = [], []
    inputs = graph.input_nodes()
    for nid in analysis.order:
        info = analysis.nodes[nid]
        if info.op == "Input":
            continue
        srcs = ", ".join(graph.ordered_inputs(nid))
        if info.op == "Repeat":
            body = Graph.from_dict(info.params["body"])
            body_name = f"{name}_{nid}"
            _emit_class(body, validate(body, info.inputs[0]), body_name, classes)
            init.append(
                f"        self.{nid} = Repeat([{body_name}() for _ in range({info.params['times']})])"
            )
        else:
            qualname, kwargs = OPS[info.op].ctor(info.params, info.inputs)
            args = ", ".join(
                f"{k}={json.dumps(v) if isinstance(v, str) else repr(v)}" for k, v in kwargs.items()
            )
            init.append(f"        self.{nid} = {qualname.replace('layers.', '')}({args})")
        fwd.append(f"        {nid} = self.{nid}({srcs})")
    classes.append(
        f"class {name}(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        + "\n".join(init or ["        pass"])
        + f"\n\n    def forward(self, {', '.join(inputs)}):\n"
        + "\n".join(fwd)
        + f"\n        return {analysis.output}\n\n"
    )
