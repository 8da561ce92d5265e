"""Per-node training health: the stored series against norms computed by hand, histograms with
fixed edges, exploding gradients flagged (naming the node) before the loss turns non-finite,
and the detector's thresholds on numbers."""

import math
import re

import pytest
import torch

from engine.health import DEAD_PATIENCE, VANISH_PATIENCE, Detector, key
from engine.runner import execute
from engine.spec import validate_spec
from engine.store import RunStore

TINY = {
    "format": "trainbench.graph",
    "version": 1,
    "name": "tiny",
    "nodes": [
        {"id": "x", "op": "Input", "params": {"shape": [4]}},
        {"id": "fc1", "op": "Linear", "params": {"out_features": 6}},
        {"id": "act", "op": "ReLU", "params": {}},
        {"id": "head", "op": "Linear", "params": {"out_features": 2}},
    ],
    "edges": [{"from": "x", "to": "fc1"}, {"from": "fc1", "to": "act"}, {"from": "act", "to": "head"}],
}


def tiny_spec(**sections) -> dict:
    doc = {
        "model": TINY,
        "data": {"source": "synthetic_classification", "samples": 80, "features": 4, "classes": 2},
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.0},
        "train": {"max_steps": 4, "batch_size": 16, "seed": 3},
        "health": {"every": 1, "histograms": True, "histogram_every": 2},
    }
    for name, values in sections.items():
        doc[name] = {**doc.get(name, {}), **values}
    return validate_spec(doc)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def by_hand(spec: dict) -> dict:
    """The first step of the run, redone here: the same seeds, data, model and batch."""
    from engine.data import load_dataset
    from engine.graph.build import GraphModule
    from engine.graph.model import Graph
    from engine.graph.shapes import validate
    from engine.seed import seed_everything
    from engine.tasks.batches import BatchPlan

    seed_everything(spec["train"]["seed"], False)
    data = load_dataset(spec["data"], "auto")
    model = GraphModule(validate(Graph.from_dict(spec["model"])))
    (idx,) = BatchPlan(len(data.x_train), 16, 1, spec["train"]["seed"]).micro_batches(0)
    x, y = torch.as_tensor(data.x_train)[idx], torch.as_tensor(data.y_train)[idx]
    hidden = model.act(model.fc1(x))
    torch.nn.functional.cross_entropy(model.head(hidden), y).backward()
    out = {}
    for node in ("fc1", "head"):
        params = list(getattr(model, node).parameters())
        grad = torch.cat([p.grad.reshape(-1) for p in params]).norm().item()
        weight = torch.cat([p.detach().reshape(-1) for p in params]).norm().item()
        # plain SGD's first step moves the weights by lr × gradient
        out[node] = {"grad_norm": grad, "weight_norm": weight, "update_ratio": 0.1 * grad / weight}
    alive = (hidden != 0).any(dim=0).float().mean().item()
    out["act"] = {
        "act_mean": hidden.mean().item(),
        "act_std": hidden.std().item(),
        "dead_fraction": 1 - alive,
    }
    return out


def test_stored_health_series_match_norms_computed_by_hand(db_path, one_thread):
    spec = tiny_spec()
    rid, status = execute(db_path, spec)
    store = RunStore(db_path, readonly=True)
    assert status == "completed", store.get_run(rid)["error"]
    expected = by_hand(spec)
    for node, stats in expected.items():
        for stat, value in stats.items():
            steps, values, _ = store.series(rid, key(node, stat))
            assert list(steps) == [1, 2, 3, 4]  # every step, as health.every says
            assert values[0] == pytest.approx(value, rel=1e-5, abs=1e-7), (node, stat)
    # weight and gradient histograms every 2 steps, with the edges of the first one
    edges, steps, counts = store.histograms(rid, key("fc1", "weight_hist"))
    assert list(steps) == [2, 4] and len(edges) == counts.shape[1] + 1
    assert counts.sum(axis=1).tolist() == [4 * 6 + 6] * 2  # every weight and bias of fc1, each step
    assert -edges[0] == edges[-1] > 0
    assert set(store.histogram_keys(rid)) == {
        key(n, k) for n in ("fc1", "head") for k in ("weight_hist", "grad_hist")
    }


def test_chosen_nodes_only_and_health_off(db_path, one_thread):
    rid, _ = execute(db_path, tiny_spec(health={"nodes": ["head"], "histograms": False}))
    keys = [k for k in RunStore(db_path).series_summaries(rid) if k.startswith("health/")]
    assert keys and all(k.startswith("health/head/") for k in keys)
    rid, _ = execute(db_path, tiny_spec(health={"enabled": False}))
    assert not [k for k in RunStore(db_path).series_summaries(rid) if k.startswith("health/")]


def test_a_compiled_model_keeps_its_gradient_series_and_says_why_activations_are_missing(
    db_path, one_thread, monkeypatch
):
    # forward hooks added after torch.compile traced the model do not run inside compiled code
    monkeypatch.setenv("TRAINBENCH_COMPILE_BACKEND", "eager")  # dynamo without a C++ compiler
    health = {"histograms": False, "every": 2}
    plain, _ = execute(db_path, tiny_spec(health=health))
    rid, status = execute(db_path, tiny_spec(train={"compile": "default"}, health=health))
    store = RunStore(db_path, readonly=True)
    assert status == "completed", store.get_run(rid)["error"]
    steps, values, _ = store.series(rid, key("fc1", "grad_norm"))
    assert list(steps) == [2, 4]
    assert values == pytest.approx(store.series(plain, key("fc1", "grad_norm"))[1], rel=1e-5)
    assert not [k for k in store.series_summaries(rid) if k.startswith("health/act/")]
    log = (store.artifacts_root / f"run-{rid}" / "run.log").read_text()
    assert log.count("health: no activation statistics") == 1


def test_unknown_health_node_is_named(db_path):
    from engine.errors import SpecError

    with pytest.raises(SpecError, match=r"health\.nodes: no node 'conv9' in the model \(its nodes: x, fc1"):
        tiny_spec(health={"nodes": ["conv9"]})


def test_an_absurd_learning_rate_is_flagged_exploding_before_the_loss_turns_non_finite(db_path, one_thread):
    graph = {
        **TINY,
        "nodes": [
            {"id": "x", "op": "Input", "params": {"shape": [20]}},
            {"id": "fc1", "op": "Linear", "params": {"out_features": 32}},
            {"id": "act", "op": "Tanh", "params": {}},
            {"id": "head", "op": "Linear", "params": {"out_features": 1}},
        ],
    }
    every = 2
    spec = validate_spec(
        {
            "model": graph,
            "data": {"source": "synthetic_regression"},
            "optim": {"name": "sgd", "lr": 1.0, "momentum": 0.0},  # absurd for this data, no clipping
            "train": {"max_steps": 400},
            "health": {"every": every},
        }
    )
    rid, status = execute(db_path, spec)
    store = RunStore(db_path, readonly=True)
    run = store.get_run(rid)
    assert status == "failed"
    nan_step = int(re.search(r"the training loss became \w+ at step (\d+)", run["error"]).group(1))
    exploding = [e for e in store.run_events(rid, "health") if e["data"]["kind"] == "exploding"]
    assert exploding, "no exploding-gradient warning"
    first = exploding[0]
    assert first["data"]["node"] in ("fc1", "head")
    assert first["step"] <= nan_step - every  # at least one measurement before the loss went
    log = (store.artifacts_root / f"run-{rid}" / "run.log").read_text()
    assert re.search(
        rf"WARNING exploding gradients at node {first['data']['node']}, step {first['step']}", log
    )


def test_detector_thresholds_on_numbers():
    d = Detector(["a", "b", "c"], dead_nodes=["r"])
    calm = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert d.check(1, calm, {"r": 0.0}) == [] and d.check(2, calm, {"r": 0.0}) == []
    # growth by orders of magnitude: once, until it clears
    (f,) = d.check(3, {**calm, "b": 500.0}, {})
    assert (f.kind, f.node) == ("exploding", "b") and "exploding" in f.message and "node b" in f.message
    assert d.check(4, {**calm, "b": 600.0}, {}) == []
    assert d.check(5, calm, {}) == []
    (f,) = d.check(6, {**calm, "c": math.inf}, {})
    assert f.node == "c" and "inf" in f.message
    # vanishing: far below both neighbours for VANISH_PATIENCE measurements in a row
    d = Detector(["a", "b", "c"], dead_nodes=["r"])
    low = {"a": 1.0, "b": 1e-5, "c": 1.0}
    found = [d.check(s, low, {}) for s in range(1, VANISH_PATIENCE + 1)]
    assert found[:-1] == [[]] * (VANISH_PATIENCE - 1)
    assert [(f.kind, f.node) for f in found[-1]] == [("vanishing", "b")] and "vanishing" in found[-1][
        0
    ].message
    # dead units: half the units of a ReLU dead for DEAD_PATIENCE measurements
    d = Detector(["a", "b", "c"], dead_nodes=["r"])
    found = [d.check(s, calm, {"r": 0.75}) for s in range(10, 10 + DEAD_PATIENCE)]
    assert [(f.kind, f.node) for f in found[-1]] == [("dead_units", "r")]
    assert all(f == [] for f in found[:-1])
