"""Importing ONNX: Trainbench's own export of the CNN and GPT examples comes back as a graph of
the same ops whose outputs equal the original module's; ops that map to none are refused by name."""

from __future__ import annotations

import re

import pytest
import torch

from engine import weights
from engine.graph.build import build, example_input
from engine.graph.export import export
from engine.graph.importers import ModelImportError, run
from engine.graph.model import Graph
from engine.graph.shapes import analyze
from tests.conftest import TEMPLATES

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


pytestmark = pytest.mark.usefixtures("one_thread")


def _round_trip(name: str, tmp_path):
    g = Graph.load(TEMPLATES / f"{name}.json")
    torch.manual_seed(0)
    original = build(g)
    for m in original.modules():  # trained-looking norms: statistics and gains away from 0 and 1
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
        if isinstance(m, torch.nn.LayerNorm | torch.nn.modules.batchnorm._BatchNorm):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.2, 0.2)
    original.eval()
    (path,) = export(g, "onnx", tmp_path / f"{name}.onnx", original.state_dict())
    report = run(str(path), tmp_path / f"{name}_back.json")
    back = Graph.load(tmp_path / f"{name}_back.json")
    with torch.random.fork_rng():
        model = build(back)
    weights.init(model, back.to_dict())
    x = example_input(analyze(g), batch=3)
    with torch.no_grad():
        return report, back, model.eval()(x), original(x)


def test_the_cnn_example_round_trips_through_onnx(tmp_path):
    report, back, got, want = _round_trip("cnn", tmp_path)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    # eval-mode ONNX folds each BatchNorm into its convolution: the same function, fewer tensors
    assert report["mapped"] == {"ReLU": 3, "Conv2d": 2, "Linear": 2, "Flatten": 1, "MaxPool2d": 1}
    assert report["opaque"] == [] and report["params_before"] == report["params_after"]
    assert {n.op for n in back.nodes.values()} >= {"Conv2d", "MaxPool2d", "Flatten", "Linear"}


def test_the_gpt_example_round_trips_through_onnx(tmp_path):
    report, back, got, want = _round_trip("gpt", tmp_path)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)  # logits of ~100: float32 rounding
    assert report["mapped"]["TransformerBlock"] == 4 and report["repeats"] == [
        {"node": "blocks", "copies": 4}
    ]
    body = Graph.from_dict(back.nodes["blocks"].params["body"])
    (block,) = [n for n in body.nodes.values() if n.op == "TransformerBlock"]
    assert block.params["n_heads"] == 4 and block.params["causal"] is True and block.params["mlp_ratio"] == 4
    assert back.tie == {"lm_head.weight": "embed.weight"}  # the file's transposed copy, tied again
    assert analyze(back).total_params == analyze(Graph.load(TEMPLATES / "gpt.json")).total_params
    assert any("tied again" in w for w in report["warnings"])


def test_onnx_ops_that_map_to_none_are_refused_by_name(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("Cos", ["x"], ["c"]), helper.make_node("Cos", ["c"], ["d"])]
    nodes.append(helper.make_node("Erf", ["d"], ["y"]))
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]))
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    with pytest.raises(
        ModelImportError, match=r"odd.onnx: these ONNX ops map to no registry op: Cos ×2, Erf"
    ):
        run(str(path), tmp_path / "odd.json")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not onnx")
    with pytest.raises(ModelImportError, match="junk.onnx: not a readable ONNX model"):
        run(str(tmp_path / "junk.onnx"), tmp_path / "junk.json")
    assert not (tmp_path / "odd.json").exists() and not (tmp_path / "junk.json").exists()


def _hostile_onnx(case: str):
    """Small ONNX files that lie: about their data's place, their shapes, their graph."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])]
    y = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])]
    nodes, inits = [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], []
    if case == "escaping external data":
        w = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for key, value in {"location": "../../../etc/passwd", "offset": "0", "length": "48"}.items():
            entry = w.external_data.add()
            entry.key, entry.value = key, value
        inits = [w]
    elif case == "weight of the wrong shape":
        inits = [numpy_helper.from_array(np.ones((3, 5), np.float32), "w")]
    elif case == "a sample of 10¹² values":
        x = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 10**12])]
        nodes = [helper.make_node("Relu", ["x"], ["y"])]
    elif case == "a cycle":
        nodes = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])]
        nodes.append(helper.make_node("Relu", ["a"], ["y"]))
    elif case == "an input of unknown width":
        x = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])]
        nodes = [helper.make_node("Relu", ["x"], ["y"])]
    return helper.make_model(helper.make_graph(nodes, "g", x, y, inits))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("escaping external data", "points outside the directory"),
        ("weight of the wrong shape", "onnxruntime cannot run the model"),
        ("a sample of 10¹² values", "input x: one sample of 1000000000000 is 1,000,000,000,000 values"),
        ("a cycle", "the graph is not acyclic"),
        ("an input of unknown width", "input x needs a fixed shape after its batch dimension"),
        ("truncated", "not a readable ONNX model"),
    ],
)
def test_hostile_onnx_files_get_one_line_naming_the_file(tmp_path, case, message):
    path = tmp_path / "hostile.onnx"
    if case == "truncated":
        onnx.save(_hostile_onnx("weight of the wrong shape"), str(path))
        path.write_bytes(path.read_bytes()[:30])
    else:
        onnx.save(_hostile_onnx(case), str(path))
    with pytest.raises(ModelImportError, match=re.escape(message)) as err:
        run(str(path), tmp_path / "hostile.json")
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    assert not (tmp_path / "hostile.json").exists()
