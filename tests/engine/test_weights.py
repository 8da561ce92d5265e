"""First weights and fine-tuning: init_from (a run, a safetensors file), strict, train.freeze and
optim.lr_mult, on real runs in a real store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine import weights
from engine.errors import SpecError
from engine.graph.build import build
from engine.graph.model import Graph
from engine.preflight import preflight
from engine.runner import execute
from engine.spec import load_spec, validate_spec
from engine.store import RunStore
from tests.conftest import TEMPLATES
from tests.engine.trained_parent import digits_cnn, one_thread  # noqa: F401 - the fixture


def _digit_images(folder, classes=5):
    """Digits 0..classes-1 of scikit-learn's set as 8×8 grey PNGs, one folder per class, so
    the images source reads the same [0, 1] pixels the built-in set gives."""
    spec = validate_spec({"model": str(TEMPLATES / "cnn.json"), "data": {"source": "digits"}})
    from engine.data import load_dataset

    data = load_dataset(spec["data"], "auto")
    x = np.concatenate([data.x_train, data.x_val])[:, 0]
    y = np.concatenate([data.y_train, data.y_val])
    for c in range(classes):
        (folder / str(c)).mkdir(parents=True)
        for i, img in enumerate(x[y == c][:60]):
            Image.fromarray(np.round(img * 255).astype(np.uint8), "L").save(folder / str(c) / f"{i}.png")
    return folder


def _five_class_graph(parent_graph: dict) -> dict:
    """The parent's CNN with its head replaced: a new node (new id) for 5 classes."""
    g = Graph.from_dict(parent_graph)
    g.remove_node("head")
    g.add_node("Linear", {"out_features": 5}, (0.0, 0.0), "head5")
    g.connect("drop", "head5")
    g.output = "head5"
    return g.to_dict()


def test_fine_tune_from_a_run_with_a_new_head_and_frozen_convolutions(tmp_path_factory, tmp_path):
    db, parent = digits_cnn(tmp_path_factory)
    store = RunStore(db)
    parent_graph = store.get_run(parent)["spec"]["model"]
    images = _digit_images(tmp_path / "digits5")
    doc = {
        "name": "digits5-finetune",
        "model": {**_five_class_graph(parent_graph), "init_from": parent, "strict": False},
        "data": {"source": "images", "path": str(images), "grayscale": True, "image_size": [8, 8]},
        "optim": {"lr": 0.003, "lr_mult": {"fc": 0.5}},
        "train": {"epochs": 2, "batch_size": 32, "freeze": ["conv1", "bn1", "conv2", "bn2"]},
    }
    spec = preflight(validate_spec(doc), store).spec
    assert spec["model"]["init_from"]["run"] == parent  # resolved to the run's checkpoint file
    before = torch.load(spec["model"]["init_from"]["checkpoint"], weights_only=True)["model"]

    run_id, status = execute(store, spec, resolved=True)
    assert status == "completed", store.get_run(run_id)["error"]
    final = torch.load(store.last_checkpoint(run_id)["path"], weights_only=True)["model"]
    for name in (
        "conv1.weight",
        "conv1.bias",
        "bn1.weight",
        "bn1.running_mean",
        "conv2.weight",
        "bn2.running_var",
    ):
        assert torch.equal(final[name], before[name]), name  # bit for bit: frozen, statistics kept
    assert not torch.equal(final["fc.weight"], before["fc.weight"])  # the rest trained
    summary = store.get_run(run_id)["summary"]
    frozen = sum(before[k].numel() for k in ("conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"))
    frozen += sum(before[k].numel() for k in ("conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias"))
    assert summary["frozen_params"] == frozen
    assert summary["trainable_params"] == summary["params"] - frozen
    assert summary["val/accuracy"] > 0.9  # the pretrained convolutions carry over to the subset
    logs = (store.artifacts_dir(run_id) / "run.log").read_text()
    assert f"weights from run {parent}" in logs and "head5.weight" in logs


def test_strict_weights_list_every_mismatch_before_a_run_exists(tmp_path_factory, tmp_path):
    db, parent = digits_cnn(tmp_path_factory)
    store = RunStore(db)
    graph = _five_class_graph(store.get_run(parent)["spec"]["model"])
    spec = validate_spec({"model": {**graph, "init_from": parent}, "data": {"source": "digits"}})
    runs = len(store.list_runs())
    with pytest.raises(SpecError) as err:
        preflight(spec, store)
    assert err.value.problems[0][0] == "model.init_from"
    assert "not in the file: head5.weight, head5.bias" in str(err.value)
    assert "not in the model: head.weight, head.bias" in str(err.value)
    assert "strict: false" in str(err.value)
    assert len(store.list_runs()) == runs  # refused before a row


def test_a_resized_layer_is_refused_even_when_not_strict(tmp_path_factory):
    db, parent = digits_cnn(tmp_path_factory)
    store = RunStore(db)
    g = Graph.from_dict(store.get_run(parent)["spec"]["model"])
    g.nodes["head"].params["out_features"] = 5
    spec = validate_spec(
        {"model": {**g.to_dict(), "init_from": parent, "strict": False}, "data": {"source": "digits"}}
    )
    with pytest.raises(
        SpecError, match=r"of another shape: head.weight \(10×128 in the file, 5×128 in the model\)"
    ):
        preflight(spec, store)


def test_init_from_a_safetensors_file_relative_to_its_graph(tmp_path):
    g = Graph.load(TEMPLATES / "mlp.json")
    torch.manual_seed(3)
    model = build(g)
    folder = tmp_path / "models"
    weights.save(model.state_dict(), folder / "mlp.safetensors")
    g.init_from = "mlp.safetensors"
    g.save(folder / "mlp.json")
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({"model": "models/mlp.json", "data": {"source": "digits"}}))
    spec = load_spec(spec_path)
    assert spec["model"]["init_from"] == str((folder / "mlp.safetensors").resolve())
    fresh = build(Graph.from_dict(spec["model"]))
    report = weights.init(fresh, spec["model"])
    assert report["loaded"] == len(model.state_dict()) and report["fresh"] == []
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)
    # a --set on a model given by path edits that graph
    spec = load_spec(spec_path, ["model.strict=false"])
    assert spec["model"]["strict"] is False and spec["model"]["init_from"].endswith("mlp.safetensors")


def test_weights_files_that_are_not_safetensors_get_one_line(tmp_path):
    bad = tmp_path / "w.safetensors"
    for content in (b"", b"\xff" * 8 + b"{}", (10).to_bytes(8, "little") + b"not json!!"):
        bad.write_bytes(content)
        with pytest.raises(SpecError) as err:
            weights.describe(bad)
        assert str(bad) in str(err.value) and "not a safetensors file" in str(err.value)
    with pytest.raises(SpecError, match="no such file"):
        weights.describe(tmp_path / "missing.safetensors")
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(
        json.dumps(
            {
                "model": {**Graph.load(TEMPLATES / "mlp.json").to_dict(), "init_from": "nope.safetensors"},
                "data": {"source": "digits"},
            }
        )
    )
    with pytest.raises(SpecError, match="model.init_from: .*nope.safetensors: no such weights file"):
        load_spec(spec_path)


def test_freeze_and_lr_mult_are_checked_against_the_model():
    gpt = Graph.load(TEMPLATES / "gpt.json").to_dict()
    ok = validate_spec(
        {
            "model": gpt,
            "data": {"source": "digits"},
            "train": {"freeze": ["embed", "blocks[:2]"]},
            "optim": {"lr_mult": {"blocks": 0.1}},
        }
    )
    assert ok["train"]["freeze"] == ["embed", "blocks[:2]"]
    with pytest.raises(SpecError) as err:
        validate_spec(
            {
                "model": gpt,
                "data": {"source": "digits"},
                "train": {"freeze": ["nope", "embed[:1]", "blocks[:9]", "3x"]},
                "optim": {"lr_mult": {"embed": 0, "ghost": 1.0}},
            }
        )
    problems = dict(err.value.problems)
    assert problems["train.freeze[0]"] == "the model has no node 'nope'"
    assert "first copies of a Repeat" in problems["train.freeze[1]"]
    assert "has 4 copies" in problems["train.freeze[2]"]
    assert "not a node id" in problems["train.freeze[3]"]
    assert "must be a factor > 0" in problems["optim.lr_mult.embed"]
    assert problems["optim.lr_mult.ghost"] == "the model has no node 'ghost'"


def test_lr_mult_groups_and_repeat_copies_frozen():
    from engine import freeze
    from engine.graph.shapes import analyze
    from engine.optim import make_optimizer

    g = Graph.load(TEMPLATES / "gpt.json")
    model = build(g)
    trainable, frozen = freeze.apply(model, ["blocks[:3]"])
    copies = [sum(p.numel() for p in model.blocks.blocks[i].parameters()) for i in range(4)]
    assert frozen == 3 * copies[0] and not any(p.requires_grad for p in model.blocks.blocks[2].parameters())
    assert all(p.requires_grad for p in model.blocks.blocks[3].parameters())
    assert (trainable, frozen) == freeze.counts(analyze(g), ["blocks[:3]"])  # the form's count, without torch
    opt = make_optimizer(
        model,
        {"name": "adamw", "lr": 0.01, "weight_decay": 0.1, "betas": [0.9, 0.99], "lr_mult": {"embed": 0.1}},
    )
    lrs = {id(p): group["lr"] for group in opt.param_groups for p in group["params"]}
    assert opt.param_groups[0]["lr"] == 0.01
    assert lrs[id(model.embed.weight)] == pytest.approx(0.001)
    assert lrs[id(model.ln_f.weight)] == 0.01
    assert id(model.blocks.blocks[0].block.ln1.weight) not in lrs  # frozen: not in the optimizer
