"""Comparing runs and the run-table queries, headless: what `trainbench compare` and the
Experiments area both build on."""

from __future__ import annotations

import numpy as np
import pytest

from engine import run_table
from engine.compare import compare_table, metric_goal, pareto_front, winners


@pytest.mark.parametrize(
    "key, goal",
    [
        ("val/accuracy", "max"),
        ("val_accuracy", "max"),
        ("perf/samples_per_s", "max"),
        ("perf/tokens_per_s", "max"),
        ("train/loss", "min"),
        ("val/perplexity", "min"),
        ("val/rmse", "min"),
        ("sys/rss_mb", "min"),
        ("compression.after.latency_ms", "min"),
        ("params", "min"),
        ("train/lr", None),
        ("train/epoch", None),
        ("steps", None),
    ],
)
def test_metric_goal_by_name(key, goal):
    assert metric_goal(key) == goal


def test_winners_ties_and_nothing_to_compare():
    assert winners([0.5, 0.9, 0.9, None], "max") == [1, 2]
    assert winners([0.5, 0.2, float("nan")], "min") == [1]
    assert winners([0.5, 0.5], "max") == []  # all equal: nobody stands out
    assert winners([0.5, None], "max") == []  # one value: nothing to compare
    assert winners([1, 2], None) == []


def test_pareto_front_fewer_params_higher_accuracy():
    params = [100, 200, 300, 150, 400, None, 100]
    acc = [0.70, 0.80, 0.90, 0.60, 0.85, 0.99, 0.70]
    # 3 (150, 0.60) is beaten by 0; 4 (400, 0.85) by 2; 5 has no params; 6 equals 0
    assert pareto_front(params, acc, "min", "max") == [0, 6, 1, 2]
    assert pareto_front([1, 2], [3, 1], "min", "min") == [0, 1]


def _run(store, name, lr, losses, acc, summary=None):
    rid = store.create_run({"name": name, "optim": {"lr": lr, "name": "adam"}, "train": {"epochs": 2}})
    store.start_run(rid)
    steps = np.arange(1, len(losses) + 1)
    store.add_metrics(
        rid,
        {
            "train/loss": (steps, np.array(losses, float), steps * 1.0),
            "val/accuracy": (steps, np.array(acc, float), steps * 1.0),
        },
    )
    store.finish_run(rid, "completed", {"params": 1000, **(summary or {})})
    return rid


def test_compare_table_diffs_hyperparameters_and_marks_final_and_best(store):
    a = _run(store, "a", 0.01, [1.0, 0.2, 0.4], [0.5, 0.9, 0.8])
    b = _run(
        store, "b", 0.001, [1.0, 0.5, 0.3], [0.5, 0.6, 0.85], {"compression": {"after": {"latency_ms": 0.5}}}
    )
    t = compare_table(store, [a, b])
    assert t["differing"] == ["optim.lr"] and list(t["params"]) == [
        "optim.lr"
    ]  # names are not hyperparameters
    assert t["final_metrics"]["train/loss"] == [0.4, 0.3]
    assert t["best_metrics"]["train/loss"] == [0.2, 0.3] and t["best_metrics"]["val/accuracy"] == [0.9, 0.85]
    assert t["winners"]["final_metrics"] == {"train/loss": [1], "val/accuracy": [1]}
    assert t["winners"]["best_metrics"] == {"train/loss": [0], "val/accuracy": [0]}
    assert t["goals"] == {"train/loss": "min", "val/accuracy": "max"}
    assert t["tradeoff"]["rows"]["latency_ms"] == [None, 0.5]  # the engine's trade-off table
    assert "train.epochs" in compare_table(store, [a, b], show_all=True)["params"]


def test_run_table_reads_columns_without_parsing_specs(store):
    a = _run(store, "a", 0.01, [1.0, 0.2], [0.5, 0.9])
    b = _run(store, "b", 0.001, [1.0, 0.5], [0.5, 0.6])
    store.set_fields(b, tags=["x"], starred=1)
    rows = run_table.run_rows(store)
    assert rows["id"] == [b, a] and rows["name"] == ["b", "a"] and rows["starred"] == [1, 0]
    cols = run_table.column_values(
        store,
        [
            "spec:optim.lr",
            "spec:optim.name",
            "summary:params",
            "metric:train/loss",
            "best:train/loss",
            "best:val/accuracy",
        ],
    )
    assert cols["spec:optim.lr"] == {a: 0.01, b: 0.001} and cols["spec:optim.name"] == {a: "adam", b: "adam"}
    assert cols["summary:params"] == {a: 1000, b: 1000}
    assert cols["metric:train/loss"] == {a: 0.2, b: 0.5} and cols["best:train/loss"] == {a: 0.2, b: 0.5}
    assert cols["best:val/accuracy"] == {a: 0.9, b: 0.6}
    assert run_table.column_values(store, ["spec:optim.lr"], [a]) == {"spec:optim.lr": {a: 0.01}}
    assert run_table.metric_keys(store) == ["train/loss", "val/accuracy"]
    spec_keys, summary_keys = run_table.field_keys(store)
    assert "optim.lr" in spec_keys and summary_keys == ["params"]


def test_change_token_moves_when_runs_change(store, db_path):
    from engine.store import RunStore

    rid = _run(store, "a", 0.01, [1.0], [0.5])
    token, version = run_table.change_token(store), run_table.data_version(store)
    other = RunStore(db_path)
    assert run_table.change_token(store) == token and run_table.data_version(store) == version
    other.set_fields(rid, name="renamed")
    assert run_table.data_version(store) != version and run_table.change_token(store) != token
    token = run_table.change_token(store)
    other.create_run({"name": "new"})
    assert run_table.change_token(store) != token
