"""Prune runs on real data: structured and unstructured pruning of a trained digits CNN, the
pruned model rebuilt from its saved graph, budgets, bad input refused before any work, and
the command line's show/compare of parent and child."""

from __future__ import annotations

import copy
import json
from contextlib import nullcontext

import pytest
import torch

from engine import checkpoint
from engine.data import load_dataset
from engine.errors import SpecError
from engine.graph.build import build
from engine.graph.model import Graph
from engine.graph.shapes import validate
from engine.lineage import load_parent
from engine.runner import execute
from engine.spec import validate_spec
from engine.tasks.objectives import Objective
from tests.conftest import EXAMPLES, example, trainbench
from tests.engine.trained_parent import one_thread, parent_fixture  # noqa: F401 - fixtures

parent = parent_fixture("parent")


def prune_spec(store, parent_id: int, **prune) -> dict:
    doc = {
        "name": "pruned",
        "task": {"kind": "prune"},
        "prune": {"parent": parent_id, **prune},
        "optim": {"lr": 0.001, "weight_decay": 0.01},
        "schedule": {"name": "cosine"},
        "train": {"batch_size": 32},
    }
    return validate_spec(doc, store=store)


def run_prune(store, parent_id: int, **prune) -> dict:
    run_id, status = execute(store.path, prune_spec(store, parent_id, **prune))
    run = store.get_run(run_id)
    assert status == "completed", run["error"]
    return run


def test_structured_half_channels_keeps_accuracy_and_rebuilds_from_its_graph(parent):
    store, parent_id = parent
    before = store.get_run(parent_id)["summary"]
    run = run_prune(store, parent_id, method="l1", ratio=0.5, finetune_epochs=3)
    s, c = run["summary"], run["summary"]["compression"]

    assert run["parent_id"] == parent_id and run["kind"] == "prune"
    assert s["params"] <= 0.55 * before["params"]  # parameters down >= 45%
    assert s["flops"] < before["flops"]
    assert s["val/accuracy"] >= before["val/accuracy"] - 0.02
    assert c["widths"] == {"conv1": [32, 16], "conv2": [64, 32], "fc": [128, 64]}  # the head is kept
    assert c["before"]["params"] == before["params"] and c["after"]["params"] == s["params"]
    assert c["after"]["bytes"] < c["before"]["bytes"] and c["after"]["latency_ms"] > 0

    # The saved checkpoint is graph + state dict: it rebuilds, with no pickled module, into
    # the fine-tuned model (same validation accuracy as the run reported).
    state = checkpoint.load(store.last_checkpoint(run["id"])["path"])
    graph = Graph.from_dict(state["graph"])
    assert graph.nodes["conv2"].params["out_channels"] == 32
    rebuilt = build(graph)
    rebuilt.load_state_dict(state["model"])  # strict: every tensor fits
    data = load_dataset(example("digits_cnn")["data"])
    x, y = torch.as_tensor(data.x_val), torch.as_tensor(data.y_val)
    metrics = Objective("classification").evaluate(rebuilt, x, y, 512, nullcontext)
    assert metrics["val/accuracy"] == pytest.approx(s["val/accuracy"])
    # ... and it exports like any run's model
    from engine.graph.export import export

    traced = export(graph, "torchscript", store.path.parent / "pruned.ts.pt", state["model"])[0]
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(traced))(x[:8]), rebuilt.eval()(x[:8]), atol=1e-5)


def test_pruned_module_and_model_rebuilt_from_its_graph_agree(parent):
    """The pruner's own module (channels cut out by torch-pruning) and a fresh build of the
    graph it reports, loaded with its weights, compute the same thing."""
    from engine.graph.build import example_input
    from engine.tasks.pruners import StructuredPruner

    store, parent_id = parent
    p = load_parent(store, parent_id, "prune.parent")
    model = p.build().eval()
    graph = StructuredPruner(
        model, p.graph, example_input(p.analysis), "l2", "global", 0.5, 1, ["head"]
    ).step()
    rebuilt = build(graph).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    assert validate(graph).total_params < 0.55 * p.analysis.total_params


@pytest.mark.parametrize("scope, epochs", [("per_layer", 2), ("global", 0)])
def test_unstructured_80_percent_sparsity_is_exact_and_survives_fine_tuning(parent, scope, epochs):
    store, parent_id = parent
    run = run_prune(store, parent_id, method="unstructured", scope=scope, ratio=0.8, finetune_epochs=epochs)
    c = run["summary"]["compression"]
    assert abs(c["sparsity"] - 0.8) <= 0.005
    # Counted again in the saved checkpoint: the zeros stayed zero through fine-tuning.
    state = checkpoint.load(store.last_checkpoint(run["id"])["path"])["model"]
    pruned = [state[f"{n}.weight"] for n in ("conv1", "conv2", "fc")]
    zeros = sum(int((w == 0).sum()) for w in pruned) / sum(w.numel() for w in pruned)
    assert abs(zeros - 0.8) <= 0.005
    assert int((state["head.weight"] == 0).sum()) == 0  # the output head is kept by default
    assert c["after"]["params"] == c["before"]["params"]  # same dense size...
    assert c["after"]["nonzero_params"] < 0.3 * c["before"]["params"]  # ...mostly zeros
    if epochs:
        assert run["summary"]["val/accuracy"] >= 0.9


def test_param_budget_in_two_steps_is_met(parent):
    store, parent_id = parent
    run = run_prune(
        store, parent_id, method="l2", scope="global", target="params", max_params=40_000, steps=2, finetune_epochs=1
    )  # fmt: skip
    s = run["summary"]
    assert s["params"] <= 40_000 and s["params"] > 30_000  # met, not overshot far
    assert len(s["compression"]["step_ratios"]) == 2
    series = store.series_summaries(run["id"])
    assert series["prune/params"]["count"] == 2  # one point per pruning step
    # the second phase's steps continue the first's
    assert series["train/loss"]["last_step"] == s["steps"] == series["train/loss"]["count"]
    tags = [cp["tag"] for cp in store.checkpoints(run["id"])]
    assert tags.count("final") == 1 and "phase" in tags


def test_taylor_one_shot_without_fine_tuning_and_int8(parent):
    store, parent_id = parent
    run = run_prune(store, parent_id, method="taylor", ratio=0.3, finetune_epochs=0, quantize=True)
    c = run["summary"]["compression"]
    assert c["after"]["params"] < c["before"]["params"]
    assert c["int8"]["bytes"] < c["after"]["bytes"]  # int8 weights: smaller again
    assert c["int8"]["val/accuracy"] > 0.5
    assert [cp["tag"] for cp in store.checkpoints(run["id"])] == ["final"]


def test_resumed_prune_run_starts_over_from_its_parent(parent):
    store, parent_id = parent
    run = run_prune(store, parent_id, ratio=0.25, finetune_epochs=0)
    store.finish_run(run["id"], "stopped")  # as if it had been interrupted
    run_id, status = execute(store.path, resume_run=run["id"])
    assert status == "completed", store.get_run(run_id)["error"]
    assert [cp["tag"] for cp in store.checkpoints(run_id)] == ["final"]
    assert store.series_summaries(run_id)["prune/params"]["count"] == 1
    assert store.get_run(run_id)["summary"]["compression"]["widths"]["conv1"] == [32, 24]


# ------------------------------------------------------------------ bad input, before any work


def _count_runs(store) -> int:
    return len(store.list_runs())


def test_parent_that_is_not_completed_is_refused_before_the_run_exists(parent):
    store, parent_id = parent
    queued = store.create_run(example("digits_cnn"), kind="train")
    runs = _count_runs(store)
    with pytest.raises(SpecError, match=rf"prune.parent: run {queued} is queued; only a completed run"):
        prune_spec(store, queued)
    spec = prune_spec(store, parent_id)  # valid now ...
    spec["prune"]["parent"] = queued  # ... pointed at the queued run afterwards
    with pytest.raises(SpecError, match="only a completed run can be pruned"):
        execute(store.path, spec)
    assert _count_runs(store) == runs


def test_checkpoint_that_does_not_match_its_graph_is_refused(parent, tmp_path):
    store, parent_id = parent
    state = checkpoint.load(store.last_checkpoint(parent_id)["path"])
    graph = copy.deepcopy(state["graph"])
    next(n for n in graph["nodes"] if n["id"] == "conv1")["params"]["out_channels"] = 16
    bad = store.create_run(example("digits_cnn"), kind="train")
    path = checkpoint.save_atomic({**state, "graph": graph}, tmp_path / "bad.pt")
    store.add_checkpoint(bad, state["step"], path, "final")
    store.finish_run(bad, "completed")
    runs = _count_runs(store)
    with pytest.raises(SpecError) as err:
        prune_spec(store, bad)
    assert err.value.problems[0][0] == "prune.parent"
    assert "does not match its graph: conv1.weight is 32×1×3×3 in the checkpoint but 16×1×3×3" in str(
        err.value
    )
    assert _count_runs(store) == runs


@pytest.mark.parametrize("ratio", [1.5, 1.0, 0.0, -0.2])
def test_ratio_outside_zero_one_is_refused(ratio):
    doc = {"task": {"kind": "prune"}, "prune": {"parent": 1, "ratio": ratio}}
    with pytest.raises(SpecError) as err:
        validate_spec(doc)
    assert err.value.problems == [("prune.ratio", f"must be > 0 and < 1, got {ratio:g}")]


@pytest.mark.parametrize(
    "prune, where, message",
    [
        ({"target": "params"}, "prune.max_params", "is required when prune.target is 'params'"),
        (
            {"method": "unstructured", "target": "flops", "max_flops": 10},
            "prune.target",
            "budgets need structured",
        ),
        ({"keep": "head"}, "prune.keep", "must be a list of node ids"),
    ],
)
def test_spec_only_mistakes_are_located(prune, where, message):
    with pytest.raises(SpecError) as err:
        validate_spec({"task": {"kind": "prune"}, "prune": {"parent": 1, **prune}})
    assert [p for p in err.value.problems if p[0] == where and message in p[1]], err.value.problems


@pytest.mark.parametrize(
    "prune, where, message",
    [
        ({"keep": ["nope"]}, "prune.keep[0]", "has no node 'nope'"),
        ({"target": "params", "max_params": 10**9}, "prune.max_params", "removes nothing"),
    ],
)
def test_mistakes_found_against_the_parent_are_located(parent, prune, where, message):
    store, parent_id = parent
    with pytest.raises(SpecError) as err:
        prune_spec(store, parent_id, **prune)
    assert err.value.problems[0][0] == where and message in err.value.problems[0][1]


def test_missing_parent_and_partial_data_are_reported():
    with pytest.raises(SpecError) as err:
        validate_spec({"task": {"kind": "prune"}, "data": {"val_fraction": 0.3}})
    paths = [p for p, _ in err.value.problems]
    assert "prune.parent" in paths and "data.source" in paths and "model" not in paths


def test_unreachable_budget_fails_before_fine_tuning(parent):
    store, parent_id = parent
    run_id, status = execute(store.path, prune_spec(store, parent_id, target="params", max_params=100))
    run = store.get_run(run_id)
    assert status == "failed"
    assert "prune.max_params: 100 is out of reach" in run["error"]
    assert "train/loss" not in store.series_summaries(run_id)


# ------------------------------------------------------------------ the command line


def test_cli_prune_then_show_and_compare(parent, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as `one_thread`, for the subprocesses
    store, parent_id = parent
    out = trainbench(
        "run", EXAMPLES / "digits_cnn_prune.json", "--set", f"prune.parent={parent_id}",
        "--set", "prune.finetune_epochs=1", "--quiet", db=store.path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    child = store.list_runs(kind="prune", limit=1)[0]["id"]
    assert store.get_run(child)["parent_id"] == parent_id

    shown = trainbench("show", child, db=store.path)
    assert f"lineage: {parent_id} train → [{child} prune]" in shown.stdout
    assert str(child) in trainbench("show", parent_id, db=store.path).stdout.split("children:")[1]

    compared = trainbench("compare", parent_id, child, db=store.path)
    assert compared.returncode == 0, compared.stderr
    table = compared.stdout.split("size, speed and accuracy")[1]
    for row in (
        "parameters",
        "FLOPs per sample",
        "checkpoint size (weights)",
        "CPU latency (ms)",
        "val accuracy",
    ):
        assert row in table
    assert "(0.25×)" in table  # half the channels: a quarter of the parameters
    as_json = json.loads(trainbench("compare", parent_id, child, "--json", db=store.path).stdout)
    assert as_json["tradeoff"]["columns"] == [f"run {parent_id}", f"run {child}"]

    # a bad parent through the CLI: one line, exit 2, no run
    runs = _count_runs(store)
    bad = trainbench("run", EXAMPLES / "digits_cnn_prune.json", "--set", "prune.parent=9999", db=store.path)
    assert bad.returncode == 2 and "prune.parent: there is no run 9999" in bad.stderr
    assert _count_runs(store) == runs
