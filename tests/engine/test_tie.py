"""Tied weights: a graph-level `tie` checked for shape, counted once, and one tensor in the built
model, its checkpoints and weights files, its exports (PyTorch code, TorchScript, ONNX) and
pruning."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from engine import weights
from engine.graph.build import build, example_input
from engine.graph.export import export
from engine.graph.model import Graph
from engine.graph.shapes import analyze
from tests.conftest import TEMPLATES

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gpt2_small_counts_its_tied_head_once():
    g = Graph.load(TEMPLATES / "gpt2_small.json")
    a = analyze(g)
    assert a.problems == [] and a.total_params == 124_439_808  # GPT-2 small
    assert a.nodes["lm_head"].n_params == 0 and a.nodes["lm_head"].tied == {"weight": "wte.weight"}
    with torch.device("meta"):
        model = build(g)
    assert model.lm_head.weight is model.wte.weight
    assert sum(p.numel() for p in model.parameters()) == 124_439_808
    g.tie = {}
    assert analyze(g).total_params == 163_037_184  # what it was without the tie


def test_a_tie_is_checked_for_shape_and_names():
    g = Graph.load(TEMPLATES / "gpt.json")
    assert g.tie == {"lm_head.weight": "embed.weight"}  # the GPT template ties by default
    cases = {
        "lm_head.weight=pos.weight": "shapes differ (256×128 vs 64×128)",
        "lm_head.bias=embed.weight": "Linear has no parameter 'bias' (its parameters are weight)",
        "lm_head.weight=ghost.weight": "there is no node 'ghost'",
        "lm_head.weight=lm_head.weight": "cannot be tied to itself",
        "blocks.weight=embed.weight": "Repeat has no parameter 'weight' (it declares none)",
    }
    for pair, message in cases.items():
        target, source = pair.split("=")
        g.tie = {target: source}
        problems = analyze(g).problems
        assert any(message in m for _, m in problems), (pair, problems)
    g.tie = {"lm_head.weight": "embed.weight", "embed.weight": "lm_head.weight"}
    assert any("is itself tied" in m for _, m in analyze(g).problems)
    with pytest.raises(Exception, match="must name a node's parameter"):
        Graph.from_dict({**Graph.load(TEMPLATES / "gpt.json").to_dict(), "tie": {"lm_head": "embed.weight"}})


def test_tied_gpt_trains_one_tensor_and_saves_it_once(tmp_path):
    g = Graph.load(TEMPLATES / "gpt.json")
    torch.manual_seed(0)
    model = build(g)
    x = example_input(analyze(g), batch=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).sum().backward()
    opt.step()
    assert model.lm_head.weight is model.embed.weight  # still one tensor after a step
    path = weights.save(model.state_dict(), tmp_path / "gpt.safetensors", g.tie)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        assert "lm_head.weight" not in fh.keys()  # stored once, under its source
    assert weights.describe(path)["lm_head.weight"] == weights.describe(path)["embed.weight"]
    loaded = weights.load(path, g.tie)
    fresh = build(g)
    fresh.load_state_dict(loaded)
    assert fresh.lm_head.weight is fresh.embed.weight and torch.equal(fresh.embed.weight, model.embed.weight)
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")  # a checkpoint keeps the sharing too
    again = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert again["lm_head.weight"].data_ptr() == again["embed.weight"].data_ptr()


def test_tied_gpt_exports_equal_the_engine_module(tmp_path):
    g = Graph.load(TEMPLATES / "gpt.json")
    torch.manual_seed(1)
    model = build(g).eval()
    x = example_input(analyze(g), batch=3)
    with torch.no_grad():
        want = model(x)

    code, pt = export(g, "pytorch", tmp_path / "gpt.py", model.state_dict())
    spec = importlib.util.spec_from_file_location("tied_gpt", code)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    exported = mod.Model().eval()
    assert exported.lm_head.weight is exported.embed.weight
    assert sum(p.numel() for p in exported.parameters()) == analyze(g).total_params
    exported.load_state_dict(torch.load(pt, weights_only=True))
    with torch.no_grad():
        assert torch.equal(exported(x), want)

    (ts,) = export(g, "torchscript", tmp_path / "gpt.ts.pt", model.state_dict())
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(ts))(x), want, atol=1e-6)

    ort = pytest.importorskip("onnxruntime")
    (onnx_path,) = export(g, "onnx", tmp_path / "gpt.onnx", model.state_dict())
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    # float32 rounding of a different kernel order: the logits reach ~100, so relative
    assert torch.allclose(torch.from_numpy(got), want, rtol=1e-5, atol=1e-5)


def test_unstructured_pruning_prunes_a_tied_weight_once_and_keeps_the_tie():
    from engine.tasks.pruners import StructuredPruner, UnstructuredPruner, tied_nodes

    g = Graph.load(TEMPLATES / "gpt.json")
    model = build(g)
    pruner = UnstructuredPruner(model, g, "per_layer", 0.5, 1, keep=[])
    pruner.step()
    assert model.lm_head.weight is model.embed.weight
    zeros = int((model.embed.weight == 0).sum())
    assert zeros == model.embed.weight.numel() // 2  # pruned once, for both names
    assert tied_nodes(g) == {"lm_head", "embed"}
    structured = StructuredPruner(model, g, example_input(analyze(g)), "l1", "per_layer", 0.5, 1, keep=[])
    ignored = structured.pruner.ignored_layers
    assert any(m is model.embed for m in ignored) and any(m is model.lm_head for m in ignored)
