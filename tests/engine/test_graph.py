"""The model graph: every error kind, counts against torch, save/load/build and export round trips."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

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


# ------------------------------------------------------------------ hostile input


def test_from_dict_checks_every_value_before_using_it():
    bad = {
        "name": ["x"],
        "version": "1",
        "nodes": [
            {"id": ["x"], "op": "Input"},
            {"id": "a", "op": ["Linear"]},
            {"id": "b", "op": "ReLU"},
            {"id": "p", "op": "ReLU", "pos": ["x", 1]},
            {"id": "c", "op": "Linear", "params": "wide"},
            {"id": "d", "op": "ReLU"},
            "node",
        ],
        "edges": [
            {"from": "b", "to": "b"},
            {"from": ["b"], "to": "d"},
            {"from": "b", "to": "d", "port": "0"},
        ],
        "output": {"id": "c"},
    }
    with pytest.raises(GraphError) as err:
        Graph.from_dict(bad)
    text = str(err.value)
    for expected in (
        "the graph's name must be a string",
        "version must be a whole number >= 1, got '1'",
        "nodes[0]: id ['x']",
        "unknown op ['Linear']",
        "pos must be [x, y], two numbers",
        "params must be an object, got 'wide'",
        "nodes[6] must be an object with an id and an op",
        "a node cannot feed itself",
        "from ['b'] is not a node of the graph",
        "port must be a whole number, got '0'",
        "output {'id': 'c'} is not a node of the graph",
    ):
        assert expected in text, (expected, text)


def test_a_port_of_a_billion_is_a_short_problem_not_an_8_gb_list():
    """Kept by the parser (the designer opens such a file and shows it), refused by the analysis."""
    doc = {
        "nodes": [{"id": "x", "op": "Input", "params": {"shape": [4]}}, {"id": "s", "op": "Add"}],
        "edges": [{"from": "x", "to": "s", "port": 0}, {"from": "x", "to": "s", "port": 10**9}],
    }
    found = problems(Graph.from_dict(doc))
    assert ("s", "has 64 input port(s); port 1e+09 does not exist") in found
    assert sum(len(m) for _, m in found) < 500


def test_a_model_that_unrolls_to_a_billion_layers_is_refused_before_building():
    body = {
        "nodes": [{"id": "i", "op": "Input"}, {"id": "r", "op": "ReLU"}],
        "edges": [{"from": "i", "to": "r"}],
    }
    for _ in range(2):
        body = {
            "nodes": [
                {"id": "i", "op": "Input"},
                {"id": "r", "op": "Repeat", "params": {"times": 1024, "body": body}},
            ],
            "edges": [{"from": "i", "to": "r"}],
        }
    g = chain(("rep", "Repeat", {"times": 1024, "body": body}), shape=(4,))
    assert ("", "the model unrolls to 1,073,741,824 layers; at most 100,000 are built") in problems(g)


@pytest.mark.parametrize(
    "node_id",
    ["forward", "training", "train", "to", "state_dict", "class", "None", "_x", "__init__", "a.b", ""],
)
def test_ids_that_would_shadow_torch_or_python_names_are_refused_by_name(node_id):
    doc = chain(("fc", "Linear", {"out_features": 2}), shape=(4,)).to_dict()
    doc["nodes"][1]["id"] = node_id
    doc["edges"][0]["to"] = node_id
    with pytest.raises(GraphError) as err:
        Graph.from_dict(doc)
    assert "nodes[1]: id" in str(err.value) and (
        "rename the node" in str(err.value) or "start with a letter" in str(err.value)
    )


def test_the_reserved_names_cover_the_installed_torch():
    from engine.graph.model import TORCH_MODULE_NAMES

    public = {n for n in dir(torch.nn.Module()) if not n.startswith("_")}
    assert public <= TORCH_MODULE_NAMES, sorted(public - TORCH_MODULE_NAMES)


def test_ids_that_name_the_builders_own_bookkeeping_train_and_export(tmp_path):
    """`output`, `inputs`, `steps`, `frees` once broke every run; `self`, `torch` or `Model` are
    names the exported code uses itself. They build, train a step, export and reload with equal
    outputs."""
    from engine.graph.build import build, example_input
    from engine.graph.export import export

    ids = [
        "output",
        "inputs",
        "steps",
        "frees",
        "node",
        "self",
        "self_",
        "torch",
        "nn",
        "Model",
        "Repeat",
        "match",
    ]
    g = chain(*[(i, "Linear", {"out_features": 4}) for i in ids], shape=(4,))
    body = Graph()
    body.add_node("Input", node_id="self")
    body.add_node("Linear", {"out_features": 4}, node_id="output")
    body.connect("self", "output")
    g.add_node("Repeat", {"times": 2, "body": body.to_dict()}, node_id="blocks")
    g.connect(ids[-1], "blocks")
    model = build(g)
    x = example_input(analyze(g), batch=3)
    model(x).sum().backward()
    assert {"output.weight", "blocks.blocks.0.output.weight"} <= set(model.state_dict())
    model.eval()
    code, weights = export(g, "pytorch", tmp_path / "odd.py", model.state_dict())
    spec = importlib.util.spec_from_file_location("odd_model", code)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    exported = mod.Model().eval()
    exported.load_state_dict(torch.load(weights, weights_only=True))
    assert torch.equal(exported(x), model(x))


HOSTILE = '"""\nimport pathlib; pathlib.Path("PWNED").write_text("x")\n"""\' + __import__("os").getcwd() + \''


def _statements(path) -> list[tuple]:
    import ast

    tree = ast.parse(path.read_text())
    return [
        (type(n).__name__, getattr(n, "name", None), *(ast.dump(t) for t in getattr(n, "targets", [])))
        for n in ast.walk(tree)
        if isinstance(n, ast.stmt)
    ]


def test_an_export_of_a_graph_full_of_hostile_strings_runs_no_injected_code(tmp_path):
    """Every free-text field of a graph holds code that would run if pasted unquoted: the
    export's AST has exactly the statements of a clean twin's, and running it writes nothing."""
    from engine.graph.export import export
    from engine.graph.ops import OPS

    def graph(text: str) -> Graph:
        g = Graph.load(TEMPLATES / "cnn.json")
        g.name = text
        for node in g.nodes.values():  # params a user types freely, should an op declare one
            for f in OPS[node.op].params:
                if f.kind in ("str", "any"):
                    node.params[f.name] = text
        return g

    with pytest.raises(GraphError, match="start with a letter"):
        graph("x").add_node("ReLU", node_id=HOSTILE)
    clean_dir, hostile_dir = tmp_path / "clean", tmp_path / "hostile"
    (clean,) = export(graph("clean"), "pytorch", clean_dir / "model.py")
    (hostile,) = export(graph(HOSTILE), "pytorch", hostile_dir / 'm"""x\'.py')
    assert _statements(hostile) == _statements(clean)
    out = subprocess.run(
        [sys.executable, str(hostile)], capture_output=True, text=True, cwd=hostile_dir, timeout=120
    )
    assert out.returncode == 0 and out.stdout.startswith("Model("), out.stderr
    assert not (hostile_dir / "PWNED").exists()
    spec = importlib.util.spec_from_file_location("hostile_model", hostile)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NAME == HOSTILE and not Path("PWNED").exists()  # kept as the name, run as nothing


def test_a_new_op_is_one_registry_entry(monkeypatch, tmp_path):
    """Shapes, counts, the builder, the exporter and the memory estimate read an op from its
    entry alone: one declaration makes it work everywhere."""
    from engine.graph.build import build, example_input
    from engine.graph.export import export
    from engine.graph.ops import OPS, ActivationUse, OpDef
    from engine.memory import _Walk

    op = OpDef(
        name="Hardtanh",
        category="Activation",
        help="clamp to [-1, 1]",
        flops=lambda p, ins, out: 2 * math.prod(out.shape),
        memory=lambda p, ins, out: ActivationUse(7, 7, 7),  # a rule of its own, to see it used
        ctor=lambda p, ins: ("nn.Hardtanh", {}),
    )
    monkeypatch.setitem(OPS, "Hardtanh", op)
    g = chain(("fc", "Linear", {"out_features": 4}), ("clamp", "Hardtanh", {}), shape=(6,))
    analysis = validate(g)
    assert analysis.nodes["clamp"].flops == 8
    model = build(g)
    assert isinstance(model.clamp, torch.nn.Hardtanh)
    x = example_input(analysis)
    assert model(x).abs().max() <= 1
    walk = _Walk(low=None, cuda=False, checkpointing=False)
    walk.graph(analysis, None, None)
    # the Linear's output is not kept (the new op keeps its own result, 4 values) + the rule's 7
    assert [layer.kept for layer in walk.finish()] == [0, 4 * (4 + 7)]
    (code,) = export(g, "pytorch", tmp_path / "m.py")
    assert "self.clamp = nn.Hardtanh()" in code.read_text()
