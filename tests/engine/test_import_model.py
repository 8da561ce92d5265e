"""Importing PyTorch models: ResNet-18 with every node mapped, a module with a Python-side op
kept opaque, identical blocks collapsed, and the line between opening a graph and running it.
Each import runs the model's own code in the importing process, as `trainbench import model`
does (one test runs the command itself, in a subprocess)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from engine import weights
from engine.graph.build import build
from engine.graph.export import export
from engine.graph.importers import ModelImportError, run
from engine.graph.model import Graph
from engine.runner import execute
from engine.spec import validate_spec
from engine.store import RunStore
from tests.conftest import ROOT, TEMPLATES
from tests.engine.models_for_import import seeded

ZOO = ROOT / "tests" / "engine" / "models_for_import.py"


pytestmark = pytest.mark.usefixtures("one_thread")


def _built(graph_path):
    """The imported graph as a run builds it: from its file, with the weights its init_from names."""
    doc = Graph.load(graph_path).to_dict()
    with torch.random.fork_rng():
        model = build(Graph.from_dict(doc))
    weights.init(model, doc)
    return model.eval(), doc


def test_resnet18_imports_with_every_node_mapped_and_equal_outputs(tmp_path):
    out = tmp_path / "resnet18.json"
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "import", "model", f"{ZOO}:seeded", "--arg", "seed=7"]
        + ["--input", "3,32,32", "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["opaque"] == [] and report["params_before"] == report["params_after"] == 11_689_512
    assert report["mapped"]["Conv2d"] == 20 and report["mapped"]["BatchNorm2d"] == 20  # 17 + 3 shortcuts
    assert report["repeats"] == [{"node": "layer1", "copies": 2}]  # the only two identical blocks
    assert report["max_abs_diff"] <= 1e-5
    assert json.loads(out.with_suffix(".import.json").read_text()) == report

    model, doc = _built(out)
    assert Graph.from_dict(doc).init_from == str(out.with_suffix(".safetensors"))
    original = seeded("resnet18", seed=7).eval()  # the same weights, built again here
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - original(x)).abs().max().item() <= 1e-5

    code, pt = export(Graph.from_dict(doc), "pytorch", tmp_path / "exported.py", model.state_dict())
    spec = importlib.util.spec_from_file_location("exported_resnet", code)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    exported = mod.Model().eval()
    exported.load_state_dict(torch.load(pt, weights_only=True))
    with torch.no_grad():
        assert (exported(x) - original(x)).abs().max().item() <= 1e-5


def _image_classes(folder, classes=4, per_class=6, size=32):
    rng = np.random.default_rng(0)
    for c in range(classes):
        (folder / str(c)).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / str(c) / f"{i}.png")
    return folder


def test_imported_resnet18_trains_a_step_from_its_weights(tmp_path):
    graph = tmp_path / "r18.json"
    run(f"{ZOO}:seeded", graph, {"num_classes": 4}, (3, 32, 32))
    spec = validate_spec(
        {
            "model": str(graph),
            "data": {
                "source": "images",
                "path": str(_image_classes(tmp_path / "img")),
                "image_size": [32, 32],
            },
            "train": {"max_steps": 1, "batch_size": 4},
        }
    )
    store = RunStore(tmp_path / "runs.db")
    run_id, status = execute(store, spec)
    assert status == "completed", store.get_run(run_id)["error"]
    log = (store.artifacts_dir(run_id) / "run.log").read_text()
    assert f"weights from {graph.with_suffix('.safetensors')}: 122 of 122 tensors loaded" in log
    assert store.get_run(run_id)["summary"]["steps"] == 1


def test_a_python_side_op_becomes_an_opaque_module_that_trains_and_exports(tmp_path):
    graph_path = tmp_path / "gated.json"
    report = run(f"{ZOO}:seeded", graph_path, {"name": "gated", "seed": 3}, (8,))
    assert [o["node"] for o in report["opaque"]] == ["gate"]
    assert report["opaque"][0]["target"] == "models_for_import:SortGate"
    assert "sort" in report["opaque"][0]["why"]
    assert report["mapped"] == {"Linear": 2, "ReLU": 1}
    assert report["params_before"] == report["params_after"] and report["max_abs_diff"] == 0
    node = Graph.load(graph_path).nodes["gate"]
    assert node.params["file"] == str(ZOO) and node.params["kwargs"] == {"features": 16, "temperature": 2.0}
    assert node.params["parameters"] == {"scale.weight": [16, 16], "scale.bias": [16]}
    assert node.params["flops"] > 0 and "SortGate(" in node.params["inside"]

    spec = validate_spec(
        {
            "model": str(graph_path),
            "data": {"source": "synthetic_classification", "features": 8, "classes": 3, "samples": 200},
            "train": {"epochs": 2, "batch_size": 32},
        }
    )
    store = RunStore(tmp_path / "runs.db")
    run_id, status = execute(store, spec)
    assert status == "completed", store.get_run(run_id)["error"]
    final = torch.load(store.last_checkpoint(run_id)["path"], weights_only=True)["model"]
    start = weights.load(graph_path.with_suffix(".safetensors"))
    assert not torch.equal(
        final["gate.scale.weight"], start["gate.scale.weight"]
    )  # the opaque module trained

    g = Graph.load(graph_path)
    model = build(g)
    model.load_state_dict(final)
    model.eval()
    code, pt = export(g, "pytorch", tmp_path / "gated_export.py", final)
    assert "imported_module(target='models_for_import:SortGate'" in code.read_text()
    spec_ = importlib.util.spec_from_file_location("gated_export", code)
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    exported = mod.Model().eval()
    exported.load_state_dict(torch.load(pt, weights_only=True))
    x = torch.randn(5, 8)
    with torch.no_grad():
        assert torch.equal(exported(x), model(x))


def test_opening_a_graph_with_an_opaque_node_runs_none_of_its_code(tmp_path):
    """Reading, analysing and validating the graph (what the designer and `validate` do) import
    neither the user's file nor torch: the code runs only when a run or an export builds it."""
    marker = tmp_path / "ran.txt"
    user = tmp_path / "user_model.py"
    user.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n" + ZOO.read_text()
    )
    graph_path = tmp_path / "user.json"
    run(f"{user}:seeded", graph_path, {"name": "gated"}, (8,))
    marker.unlink()
    probe = (
        "import sys\n"
        "from engine.graph.model import Graph\n"
        "from engine.graph.shapes import analyze\n"
        "from engine.spec import validate_spec\n"
        f"g = Graph.load({str(graph_path)!r})\n"
        "a = analyze(g)\n"
        "validate_spec({'model': g.to_dict(), 'data': {'source': 'synthetic_classification', 'features': 8}})\n"
        "print(a.total_params, g.nodes['gate'].params['file'], 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    params, file, torch_loaded = done.stdout.split()
    assert file == str(user) and torch_loaded == "False" and int(params) > 0
    assert not marker.exists()  # the user's file was not imported
    build_it = f"from engine.graph.build import build\nfrom engine.graph.model import Graph\nbuild(Graph.load({str(graph_path)!r}))"
    done = subprocess.run([sys.executable, "-c", build_it], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert marker.exists()  # building the model (a run, an export) is what imports it


def test_an_exported_gpt_imports_back_as_transformer_blocks_in_a_repeat(tmp_path):
    g = Graph.load(TEMPLATES / "gpt.json")
    torch.manual_seed(0)
    original = build(g).eval()
    code, _ = export(g, "pytorch", tmp_path / "gpt_model.py", original.state_dict())
    report = run(f"{code}:Model", tmp_path / "gpt_back.json", {}, (64,), "long")
    assert report["opaque"] == [] and report["mapped"]["TransformerBlock"] == 4
    assert report["repeats"] == [{"node": "blocks", "copies": 4}]
    back = Graph.load(tmp_path / "gpt_back.json")
    assert back.tie == {"lm_head.weight": "embed.weight"}  # the shared tensor is found again
    assert report["params_before"] == report["params_after"] == 834_304 and report["max_abs_diff"] <= 1e-5


@pytest.mark.parametrize(
    ("source", "kwargs", "shape", "message"),
    [
        ("no_such_package_xyz:make", {}, (4,), "cannot import no_such_package_xyz"),
        (f"{ZOO}:nothing", {}, (4,), "has no 'nothing'"),
        ("missing_file.py:make", {}, (4,), "missing_file.py: no such Python file"),
        (f"{ZOO}:conv3x3", {"cin": 1, "cout": 2}, None, "needs --input"),
        (f"{ZOO}:seeded", {"name": "nope"}, (4,), "failed: KeyError"),
        (f"{ZOO}:seeded", {"name": "gated"}, (5,), "does not run on an input of 2×5 float"),
        ("math:floor", {}, (4,), "math:floor() failed: TypeError"),
        ("builtins:dict", {}, (4,), "returned a dict, not a torch.nn.Module"),
        (f"{ZOO}:conv3x3", {"cin": 1, "cout": 2}, (10**6, 10**6), "is 1,000,000,000,000 values, more than"),
    ],
)
def test_bad_sources_get_one_line(tmp_path, source, kwargs, shape, message):
    with pytest.raises(ModelImportError, match=re.escape(message)) as err:
        run(source, tmp_path / "g.json", kwargs, shape)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "g.json").exists()


def test_control_flow_torch_fx_cannot_trace_is_captured_with_torch_export(tmp_path):
    report = run(f"{ZOO}:ShapeBranch", tmp_path / "branch.json", {}, (3, 8, 8))
    assert report["method"] == "torch.export" and report["opaque"] == []
    assert report["mapped"] == {
        "BatchNorm2d": 1,
        "Conv2d": 1,
        "Flatten": 1,
        "Linear": 1,
        "MaxPool2d": 1,
        "ReLU": 1,
    }
    assert report["params_before"] == report["params_after"] and report["max_abs_diff"] <= 1e-6
    assert "torch.fx cannot trace its forward" in report["warnings"][0]
    model, _ = _built(tmp_path / "branch.json")
    assert [n for n, _ in model.named_children()] == ["conv", "bn", "relu", "max_pool2d", "flatten", "fc"]


def test_torch_export_maps_resnet18_op_for_op():
    from engine.graph.importers.aten import import_exported
    from engine.graph.importers.report import check

    original = seeded("resnet18", seed=2).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = original(x)
    imported = import_exported(original, (x,), "resnet18", 11_689_512, want)
    params, diff = check(imported)
    assert params == 11_689_512 and diff <= 1e-5
    ops = [n.op for n in imported.graph.nodes.values()]
    assert ops.count("Conv2d") == 20 and ops.count("BatchNorm2d") == 20 and ops.count("Add") == 8


def test_a_python_side_op_in_the_model_itself_keeps_the_whole_model_as_one_node(tmp_path):
    report = run(f"{ZOO}:ScaledOutput", tmp_path / "scaled.json", {}, (4,))
    (opaque,) = report["opaque"]
    assert opaque["node"] == "model" and opaque["target"] == "models_for_import:ScaledOutput"
    assert "mul maps to no registry op" in opaque["why"] and "torch.export captured ATen ops" in opaque["why"]
    model, _ = _built(tmp_path / "scaled.json")
    x = torch.randn(3, 4)
    with torch.no_grad():
        want = 0.5 * (x @ model.model.fc.weight.T + model.model.fc.bias)
        assert torch.allclose(model(x), want)


def test_torch_nn_self_attention_maps_to_the_registry_op(tmp_path):
    report = run(f"{ZOO}:AttentionClassifier", tmp_path / "attn.json", {}, (6, 16))
    assert report["opaque"] == [] and report["mapped"]["MultiheadSelfAttention"] == 1
    assert report["params_before"] == report["params_after"] and report["max_abs_diff"] <= 1e-5
    (node,) = [
        n for n in Graph.load(tmp_path / "attn.json").nodes.values() if n.op == "MultiheadSelfAttention"
    ]
    assert node.params == {"n_heads": 4, "causal": False, "dropout": 0.0}


def test_a_transformers_model_from_its_config_trains_and_exports_as_one_opaque_node(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = {"n_layer": 2, "n_embd": 32, "n_head": 4, "vocab_size": 64, "n_positions": 16}
    config |= {"bos_token_id": 0, "eos_token_id": 0}
    graph_path = tmp_path / "gpt2.json"
    report = run("transformers:GPT2LMHeadModel", graph_path, config, (12,), "long")
    (opaque,) = report["opaque"]
    assert opaque["target"] == "engine.graph.layers:HuggingFace"
    assert report["params_before"] == report["params_after"] and report["max_abs_diff"] == 0
    node = Graph.load(graph_path).nodes["model"]
    assert node.params["kwargs"]["config"] == config and node.params["output"]["shape"] == [12, 64]

    model, _ = _built(graph_path)
    reference = transformers.GPT2LMHeadModel(transformers.GPT2Config(**config)).eval()
    start = weights.load(graph_path.with_suffix(".safetensors"))
    reference.load_state_dict({k.removeprefix("model.model."): v for k, v in start.items()})
    ids = torch.randint(0, 64, (3, 12))
    with torch.no_grad():
        assert torch.allclose(model(ids), reference(ids).logits, atol=1e-6)

    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
    optim.step()
    trained = model.state_dict()
    assert not torch.equal(trained["model.model.lm_head.weight"], start["model.model.lm_head.weight"])
    code, pt = export(Graph.load(graph_path), "pytorch", tmp_path / "gpt2_export.py", trained)
    spec_ = importlib.util.spec_from_file_location("gpt2_export", code)
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    exported = mod.Model().eval()
    exported.load_state_dict(torch.load(pt, weights_only=True))
    with torch.no_grad():
        assert torch.equal(exported(ids), model.eval()(ids))
