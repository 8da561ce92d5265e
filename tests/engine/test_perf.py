"""MFU: the FLOPs it counts (against torch's FlopCounterMode and PaLM's formula), the peaks it
divides by (the GPU table, a CPU's measured peak, the override), and `perf/mfu` in a real run."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from engine.graph.build import GraphModule, example_input
from engine.graph.model import Graph
from engine.graph.shapes import analyze, validate
from engine.perf import (
    SOURCE_LABELS,
    cpu_peak,
    device_peak,
    gpu_peak,
    matmul_dtype,
    palm_flops_per_token,
    peak_source,
    train_flops_per_sample,
)
from engine.runner import execute
from engine.store import RunStore
from tests.conftest import TEMPLATES, example
from tests.engine.test_memory_calibration import gpt


def _templates() -> dict[str, dict]:
    """The GPT templates; GPT-2 small from its template file once it is there, else its shape
    (12 × 768, 12 heads, context 1024, vocabulary 50,257; untied)."""
    out = {name: json.loads((TEMPLATES / f"{name}.json").read_text()) for name in ("gpt", "gpt_1b")}
    small = TEMPLATES / "gpt2_small.json"
    out["gpt2_small"] = json.loads(small.read_text()) if small.is_file() else gpt(50257, 1024, 12, 768, 12)
    return out


def _shape(analysis) -> tuple[int, int, int, int]:
    """(layers, heads, head width, context) of a GPT graph: Repeat × TransformerBlock."""
    blocks = next(i for i in analysis.nodes.values() if i.op == "Repeat")
    block = next(i for i in blocks.body.nodes.values() if i.op == "TransformerBlock")
    context, width = block.inputs[0].shape
    heads = block.params["n_heads"]
    return blocks.params["times"], heads, width // heads, context


def _matmul_params(analysis, doc: dict) -> int:
    """PaLM's N: the parameters that take part in matrix products. A lookup table does not,
    unless the head's weight is tied to it (`tie`: {"lm_head.weight": "wte.weight"}): then the
    one table is the head's matrix, counted once."""
    tied = {source.split(".")[0] for source in doc.get("tie", {}).values()}
    lookups = sum(
        i.n_params
        for nid, i in analysis.nodes.items()
        if i.op in ("Embedding", "PositionalEmbedding") and nid not in tied
    )
    return analysis.total_params - lookups


def _full_attention(doc: dict) -> dict:
    doc = copy.deepcopy(doc)
    for node in _walk_nodes(doc):
        if node["op"] in ("TransformerBlock", "MultiheadSelfAttention"):
            node["params"]["causal"] = False
    return doc


def _walk_nodes(doc: dict):
    for node in doc["nodes"]:
        yield node
        body = node["params"].get("body")
        if body:
            yield from _walk_nodes(body)


@pytest.mark.parametrize("name", ["gpt", "gpt_1b", "gpt2_small"])
def test_training_flops_per_token_are_palms_formula(name):
    """3 × the analysis's forward FLOPs equal 6·N + 12·L·H·Q·T (PaLM appendix B) within 1% with
    full attention, and the same with the attention term counted causally (T(T+1)/2 pairs)."""
    doc = _templates()[name]
    causal, full = analyze(Graph.from_dict(doc)), analyze(Graph.from_dict(_full_attention(doc)))
    assert causal.ok and full.ok
    layers, heads, head_dim, context = _shape(causal)
    n = _matmul_params(causal, doc)
    for analysis, is_causal in ((full, False), (causal, True)):
        counted = train_flops_per_sample(analysis) / context
        palm = palm_flops_per_token(n, layers, heads, head_dim, context, causal=is_causal)
        assert abs(counted / palm - 1) < 0.01, (name, is_causal, counted, palm)
    # counting causal attention as causal: how much less a GPT-2 shape's training costs
    assert train_flops_per_sample(causal) < train_flops_per_sample(full)


def test_forward_flops_with_full_attention_equal_flop_counter_mode():
    """Every node whose work is matrix products counts what torch's FlopCounterMode counts on
    the built module (SDPA through its math kernel, whose products the counter sees). The
    counter counts all T² query-key pairs whatever the mask, so it meets the full-attention
    count; a causal graph counts exactly the masked half of the score products less."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    doc = json.loads((TEMPLATES / "gpt.json").read_text())
    full = validate(Graph.from_dict(_full_attention(doc)))
    causal = validate(Graph.from_dict(doc))
    torch.manual_seed(0)
    model = GraphModule(causal)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(example_input(causal, 1))
    counted = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    matmul_nodes = [n for n in full.order if f"GraphModule.{n}" in counted]
    assert set(matmul_nodes) == {"blocks", "lm_head"}  # the norms and the positions are element-wise
    for nid in matmul_nodes:
        assert full.nodes[nid].flops == counted[f"GraphModule.{nid}"], nid
    layers, _, _, context = _shape(causal)
    width = causal.nodes["blocks"].inputs[0].shape[-1]
    masked_pairs = context * context - context * (context + 1) // 2
    assert full.nodes["blocks"].flops - causal.nodes["blocks"].flops == layers * 2 * 2 * masked_pairs * width


@pytest.mark.parametrize(
    "name, dtype, label, tflops",
    [
        ("NVIDIA H100 80GB HBM3", "bf16", "H100 SXM", 989.4),
        ("NVIDIA H100 PCIe", "bf16", "H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", "tf32", "H100 NVL", 417.5),
        ("NVIDIA H200", "bf16", "H200 SXM", 989.4),
        ("NVIDIA H200 NVL", "fp16", "H200 NVL", 835.5),
        ("NVIDIA GH200 480GB", "bf16", "GH200", 989.4),
        ("NVIDIA A100-SXM4-80GB", "tf32", "A100", 156.0),
        ("NVIDIA A100 80GB PCIe", "fp32", "A100", 19.5),
        ("NVIDIA A10", "bf16", "A10", 125.0),
        ("NVIDIA L4", "bf16", "L4", 121.0),
        ("NVIDIA L40S", "bf16", "L40S", 362.1),
        ("NVIDIA GeForce RTX 3090", "bf16", "RTX 3090", 71.0),
        ("NVIDIA GeForce RTX 4090", "bf16", "RTX 4090", 165.2),
        ("NVIDIA GeForce RTX 4070 Ti", "fp32", "RTX 4070 Ti", 40.1),
        ("NVIDIA GeForce RTX 5090", "bf16", "RTX 5090", 209.5),
        ("Tesla T4", "fp16", "T4", 65.0),
    ],
)
def test_the_gpu_table_names_each_card_and_its_peak(name, dtype, label, tflops):
    assert gpu_peak(name, dtype) == (label, tflops)


def test_unknown_gpus_and_precisions_have_no_peak():
    assert gpu_peak("NVIDIA GeForce RTX 4090 Laptop GPU", "bf16") is None  # laptop clocks vary
    assert gpu_peak("Tesla T4", "bf16") is None  # Turing has no bf16 tensor cores
    assert gpu_peak("AMD Instinct MI300X", "bf16") is None


def test_the_precision_the_products_run_in():
    assert matmul_dtype("bf16", "highest", True) == "bf16"
    assert matmul_dtype("fp16", "high", False) == "fp16"
    assert matmul_dtype("fp32", "high", True) == "tf32"  # TF32 only when allowed, on Ampere or newer
    assert matmul_dtype("fp32", "highest", True) == "fp32"
    assert matmul_dtype("fp32", "medium", False) == "fp32"


def test_the_cpu_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
    from engine import perf

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(perf, "_PEAKS", {})
    two = cpu_peak("fp32", 2)
    (cache,) = tmp_path.rglob("cpu_peak.json")
    per_core = json.loads(cache.read_text())
    assert len(per_core) == 1 and two == 2 * next(iter(per_core.values())) > 0  # one core's, × threads
    probes, probe = [], perf._probe
    monkeypatch.setattr(perf, "_probe", lambda dtype: probes.append(dtype) or probe(dtype))
    monkeypatch.setattr(perf, "_PEAKS", {})  # as a new process: the file answers
    assert cpu_peak("fp32", 4) == 2 * two and probes == []
    cache.write_text("{not json")
    monkeypatch.setattr(perf, "_PEAKS", {})
    assert cpu_peak("fp32", 1) > 0 and probes == ["fp32"]  # a damaged cache is measured anew
    assert json.loads(cache.read_text())


def test_the_override_and_where_a_peak_comes_from():
    spec = example("digits_mlp", hardware={"device": "cpu"})
    assert peak_source(spec) == "measured"  # told without torch: the GUI's label
    spec["hardware"]["peak_tflops"] = 2.5
    peak = device_peak(spec, torch.device("cpu"))
    assert (peak.flops, peak.source, peak.label) == (2.5e12, "spec", SOURCE_LABELS["spec"])
    assert peak_source(spec) == "spec"


def test_a_cpu_run_logs_mfu_between_zero_and_one(db_path, tmp_path, monkeypatch):
    """A real run: `perf/mfu` in every throughput window, in (0, 1], labelled against the
    measured peak in the summary."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = example("digits_cnn", train={"max_steps": 12})
    rid, status = execute(db_path, spec)
    assert status == "completed"
    store = RunStore(db_path)
    _, mfu, _ = store.series(rid, "perf/mfu")
    _, rate, _ = store.series(rid, "perf/samples_per_s")
    assert len(mfu) == len(rate) >= 1
    assert ((mfu > 0) & (mfu <= 1)).all(), mfu
    summary = store.get_run(rid)["summary"]
    assert summary["mfu_peak"] == "vs measured peak" and summary["mfu_peak_tflops"] > 0
    log = (store.artifacts_dir(rid) / "run.log").read_text()
    assert "perf/mfu: 3 × " in log and "measured on this CPU" in log
