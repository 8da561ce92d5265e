"""The model graph: every error kind, counts against torch, save/load/build and export round trips."""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from engine.errors import GraphError
from engine.graph import Edge, Graph, analyze, validate
from tests.conftest import ROOT, TEMPLATES

TEMPLATE_NAMES = ["mlp", "cnn", "resnet_cnn", "gpt"]


def chain(*specs, shape=(1, 8, 8)):
    g = Graph()
    g.add_node("Input", {"shape": list(shape)}, node_id="x")
    prev = "x"
    for node_id, op, params in specs:
        g.add_node(op, params, node_id=node_id)
        g.connect(prev, node_id)
        prev = node_id
    return g


def problems(g):
    return analyze(g).problems


def test_channel_mismatch_names_node_and_counts():
    g = chain(
        ("conv1", "Conv2d", {"out_channels": 16}), ("conv2", "Conv2d", {"in_channels": 3, "out_channels": 8})
    )
    assert ("conv2", "expects 3 input channels, got 16") in problems(g)


def test_every_problem_is_reported_at_once():
    g = chain(
        ("conv1", "Conv2d", {"out_channels": 16, "kernel_size": 0}), ("fc", "Linear", {"out_features": 4})
    )
    g.add_node("Add", node_id="add")
    g.connect("x", "add")
    found = problems(g)
    nodes = {n for n, _ in found}
    assert "conv1" in nodes and "add" in nodes and "" in nodes  # bad param, dangling input, no single output
    assert any("kernel_size: must be >= 1 and <= 1024, got 0" in m for _, m in found)
    assert any("needs 2 connected inputs, has 1" in m for _, m in found)


def test_missing_output_when_two_paths_end():
    g = chain(("fc", "Linear", {"out_features": 4}))
    g.add_node("ReLU", node_id="dead_end")
    g.connect("x", "dead_end")
    assert any(n == "" and "no output" in m and "fc" in m and "dead_end" in m for n, m in problems(g))
    g.output = "fc"
    assert ("dead_end", "does not lead to the output; connect it or delete it") in problems(g)


def test_graph_without_input_or_layers():
    g = Graph()
    g.add_node("ReLU", node_id="r")
    found = problems(g)
    assert ("", "the graph has no Input node") in found
    assert ("r", "needs 1 connected input, has 0") in found


def test_cycle_is_refused_on_connect_and_reported_when_present():
    g = chain(("a", "Add", {}), ("b", "ReLU", {}), shape=(4,))
    with pytest.raises(GraphError, match="connecting b → a would make a cycle"):
        g.connect("b", "a", 1)
    g.edges.append(Edge("b", "a", 1))  # a file edited by hand can still hold one
    assert any(n == "a" and "cycle" in m for n, m in problems(g))


def test_connection_refusals_give_reasons():
    g = chain(("fc", "Linear", {}))
    assert "already connected" in g.can_connect("x", "fc", 0)
    assert "port 1 does not exist" in g.can_connect("x", "fc", 1)
    assert "takes no inputs" in g.can_connect("fc", "x", 0)
    assert "cannot feed itself" in g.can_connect("fc", "fc", 0)


def test_shape_rules_name_the_mismatch():
    g = chain(("flat", "Flatten", {}), ("fc", "Linear", {"out_features": 8}), ("emb", "Embedding", {}))
    assert any(n == "emb" and "expects token ids" in m for n, m in problems(g))
    g = chain(("conv", "Conv2d", {"kernel_size": 9}))
    assert any(n == "conv" and "does not fit input 1×8×8" in m for n, m in problems(g))
    g = chain(("attn", "MultiheadSelfAttention", {"n_heads": 3}), shape=(10, 16))
    assert ("attn", "model width 16 is not divisible by n_heads=3") in problems(g)


def test_add_requires_equal_shapes():
    g = chain(("a", "Linear", {"out_features": 4}), shape=(8,))
    g.add_node("Linear", {"out_features": 5}, node_id="b")
    g.connect("x", "b")
    g.add_node("Add", node_id="sum")
    g.connect("a", "sum", 0)
    g.connect("b", "sum", 1)
    assert any(n == "sum" and "input 0 is 4, input 1 is 5" in m for n, m in problems(g))


def test_repeat_body_errors_are_attributed_and_shape_must_be_preserved():
    body = Graph()
    body.add_node("Input", node_id="i")
    body.add_node("Linear", {"out_features": 7}, node_id="fc")
    body.connect("i", "fc")
    g = chain(("blocks", "Repeat", {"times": 3, "body": body.to_dict()}), shape=(8,))
    assert any(n == "blocks" and "to stack it, output must equal input" in m for n, m in problems(g))
    g.nodes["blocks"].params["times"] = 1
    assert analyze(g).ok and analyze(g).output_type.shape == (7,)


def test_unknown_op_and_fields_in_a_file():
    with pytest.raises(GraphError) as err:
        Graph.from_dict({"nodes": [{"id": "x", "op": "Conv3d"}], "edges": [], "colour": "red"})
    msgs = [m for _, m in err.value.problems]
    assert "unknown op 'Conv3d'" in msgs and any("colour" in m for m in msgs)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_counts_match_torch_and_round_trip(name, tmp_path):
    from engine.graph.build import build, example_input

    g = Graph.load(TEMPLATES / f"{name}.json")
    analysis = validate(g)
    model = build(g).eval()
    assert analysis.total_params == sum(p.numel() for p in model.parameters())
    assert analysis.total_flops > 0

    g.save(tmp_path / "g.json")
    again = Graph.load(tmp_path / "g.json")
    assert again.to_dict() == g.to_dict()
    rebuilt = build(again).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = example_input(analysis, batch=3)
    assert torch.equal(model(x), rebuilt(x))


@pytest.mark.parametrize("name", ["resnet_cnn", "gpt"])
def test_pytorch_export_rebuilds_equal_outputs(name, tmp_path):
    from engine.graph.build import build, example_input
    from engine.graph.export import export

    g = Graph.load(TEMPLATES / f"{name}.json")
    model = build(g).eval()
    code, weights = export(g, "pytorch", tmp_path / "model.py", model.state_dict())
    spec = importlib.util.spec_from_file_location("exported_model", code)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    exported = mod.Model().eval()
    exported.load_state_dict(torch.load(weights, weights_only=True))
    x = example_input(analyze(g), batch=4)
    assert torch.equal(model(x), exported(x))
    assert "trainbench" not in code.read_text().split('"""', 2)[2]  # standalone: no import of ours


def test_torchscript_export_and_onnx_message(tmp_path):
    from engine.graph.build import build, example_input
    from engine.graph.export import ExportError, export

    g = Graph.load(TEMPLATES / "cnn.json")
    model = build(g).eval()
    export(g, "torchscript", tmp_path / "m.pt", model.state_dict())
    x = example_input(analyze(g))
    assert torch.allclose(torch.jit.load(str(tmp_path / "m.pt"))(x), model(x), atol=1e-6)
    if importlib.util.find_spec("onnx") is None:
        with pytest.raises(ExportError, match="pip install"):
            export(g, "onnx", tmp_path / "m.onnx")
    else:
        export(g, "onnx", tmp_path / "m.onnx")
        assert (tmp_path / "m.onnx").stat().st_size > 0


def test_analysis_needs_no_torch():
    code = (
        "import sys, json; from engine.graph import Graph, analyze;"
        f"a = analyze(Graph.load({str(TEMPLATES / 'gpt.json')!r}));"
        "print(json.dumps([a.ok, a.total_params, 'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    ok, params, torch_loaded = json.loads(out.stdout)
    assert ok and params > 800_000 and not torch_loaded
