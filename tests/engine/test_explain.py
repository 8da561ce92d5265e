"""Evaluation and explanations of trained runs: the confusion matrix against a hand count,
Grad-CAM / saliency maps with the input's spatial shape, attention maps with the sequence's,
regression scatter and residuals, language-model samples per checkpoint, and the CLI."""

import json

import numpy as np
import pytest
import torch

from engine.evaluation import load_trained, predict
from engine.runner import execute
from engine.store import RunStore
from tests.conftest import example, trainbench


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_classification_evaluation_and_image_attributions(db_path, one_thread):
    rid, status = execute(db_path, example("digits_cnn", train={"epochs": 1}))
    assert status == "completed"
    out = trainbench("explain", rid, "--samples", "0,3,5", "--json", db=db_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    evaluation, explained = doc["evaluation"], doc["explain"]
    # the confusion matrix is a count of (true, predicted) over the validation split, by hand
    store = RunStore(db_path)
    trained = load_trained(store, rid)
    pred = predict(trained).argmax(-1).numpy()
    true = trained.data.y_val
    counts = np.asarray(evaluation["confusion"])
    for t in range(10):
        for p in range(10):
            assert counts[t, p] == int(((true == t) & (pred == p)).sum())
    assert counts.sum() == len(true) and evaluation["accuracy"] == pytest.approx((pred == true).mean())
    recall = np.asarray(evaluation["per_class"]["recall"])
    assert np.allclose(recall, np.diag(counts) / counts.sum(axis=1))
    worst = evaluation["most_confused"]
    assert all(w["true"] != w["predicted"] for w in worst)
    assert [w["confidence"] for w in worst] == sorted((w["confidence"] for w in worst), reverse=True)
    folder = store.artifacts_root / f"run-{rid}"
    assert all((folder / "evaluation" / w["thumbnail"]).is_file() for w in worst)
    # attributions: one 8 × 8 map per sample and method, PNGs beside them
    assert explained["methods"] == ["saliency", "integrated_gradients", "gradcam"]
    arrays = np.load(folder / "explain" / "attributions.npz", allow_pickle=False)
    for method in explained["methods"]:
        assert arrays[method].shape == (3, 8, 8)  # the input's height × width
        assert np.isfinite(arrays[method]).all() and arrays[method].max() > 0
    assert [s["index"] for s in explained["samples"]] == [0, 3, 5]
    assert all((folder / "explain" / f).is_file() for s in explained["samples"] for f in s["files"].values())
    bad = trainbench("explain", rid, "--samples", "99999", db=db_path)
    assert bad.returncode == 1 and "sample 99999 is not in the validation split" in bad.stderr


def test_attention_maps_and_language_model_samples(db_path, one_thread):
    spec = example(
        "char_gpt",
        data={"context": 16},
        train={"max_steps": 6, "batch_size": 8, "eval_every": 0},
        checkpoint={"every": 3},
    )
    spec["model"]["nodes"][0]["params"]["shape"] = [16]
    spec["model"]["nodes"][2]["params"]["max_len"] = 16
    spec["model"]["nodes"][3]["params"]["times"] = 2
    rid, status = execute(db_path, spec)
    assert status == "completed", RunStore(db_path).get_run(rid)["error"]
    from engine.evaluation import evaluate_run
    from engine.explain import explain_run

    store = RunStore(db_path)
    doc = explain_run(store, rid, count=2)
    assert doc["methods"] == ["attention"]
    layers = doc["attention"]
    assert [layer["layer"] for layer in layers] == ["blocks.0.block", "blocks.1.block"]
    maps = np.load(store.artifacts_root / f"run-{rid}" / "explain" / "attention.npz", allow_pickle=False)
    for layer in layers:
        m = maps[layer["key"]]
        assert m.shape == (2, 4, 16, 16)  # samples × heads × the sequence's length, twice
        assert np.allclose(m.sum(-1), 1.0, atol=1e-5) and np.allclose(np.triu(m, 1), 0)  # causal rows
    assert len(doc["tokens"][0]) == 16
    samples = evaluate_run(store, rid, prompt="The ", length=20, temperature=0.8, top_k=10)["lm_samples"]
    assert [s["step"] for s in samples["samples"]] == [3, 6]  # every checkpoint kept
    assert all(len(s["text"].encode("utf-8", "replace")) >= 1 for s in samples["samples"])
    assert samples["prompt"] == "The " and samples["top_k"] == 10


def test_regression_scatter_and_residuals(db_path, one_thread):
    from engine.evaluation import evaluate_run
    from engine.spec import validate_spec

    graph = {
        "format": "trainbench.graph",
        "version": 1,
        "name": "regression",
        "nodes": [
            {"id": "x", "op": "Input", "params": {"shape": [20]}},
            {"id": "fc1", "op": "Linear", "params": {"out_features": 16}},
            {"id": "act", "op": "Tanh", "params": {}},
            {"id": "head", "op": "Linear", "params": {"out_features": 1}},
        ],
        "edges": [{"from": "x", "to": "fc1"}, {"from": "fc1", "to": "act"}, {"from": "act", "to": "head"}],
    }
    spec = validate_spec({"model": graph, "data": {"source": "synthetic_regression"}, "train": {"epochs": 2}})
    rid, status = execute(db_path, spec)
    assert status == "completed", RunStore(db_path).get_run(rid)["error"]
    store = RunStore(db_path)
    doc = evaluate_run(store, rid)
    arrays = np.load(store.artifacts_root / f"run-{rid}" / "evaluation" / "arrays.npz", allow_pickle=False)
    n = len(arrays["true"])
    assert doc["objective"] == "regression" and n == 400
    assert arrays["predicted"].shape == arrays["true"].shape == (n, 1)
    assert np.allclose(arrays["residual"], arrays["predicted"] - arrays["true"])
    assert sum(doc["residual_histogram"]["counts"]) == n
    assert doc["rmse"] == pytest.approx(float(np.sqrt((arrays["residual"] ** 2).mean())))
