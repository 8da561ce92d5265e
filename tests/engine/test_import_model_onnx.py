"""Importing ONNX: Trainbench's own export of the CNN and GPT examples comes back as a graph of
the same ops whose outputs equal the original module's; ops that map to none are refused by name."""

from __future__ import annotations

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


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
