"""Run spec validation: each error names its path and the allowed values."""

import json

import pytest

from engine import spec as spec_mod
from engine.errors import DataError, SpecError
from engine.spec import load_spec, validate_spec
from tests.conftest import EXAMPLES, TEMPLATES, trainbench

CNN = json.loads((TEMPLATES / "cnn.json").read_text())


def errors(doc, **kw):
    with pytest.raises(SpecError) as err:
        validate_spec(doc, **kw)
    return err.value.problems


def base(**sections):
    return {"model": CNN, "data": {"source": "digits"}, **sections}


def test_defaults_are_filled_and_model_inlined():
    s = load_spec(EXAMPLES / "digits_cnn.json")
    assert s["schema"] == 1 and s["model"]["nodes"][0]["id"] == "image"
    assert (
        s["optim"]["betas"] == [0.9, 0.999]
        and s["checkpoint"]["keep"] == 2
        and s["hardware"]["device"] == "auto"
    )


def test_range_error_names_path_and_range():
    assert ("optim.lr", "must be > 0 and <= 10, got -1") in errors(base(optim={"lr": -1}))


def test_unknown_fields_are_errors_not_ignored():
    found = errors(base(train={"epoch": 3}, colour="red"))
    assert any(p == "train.epoch" and "unknown field" in m and "epochs" in m for p, m in found)
    assert any(p == "colour" for p, _ in found)


def test_wrong_types_and_choices():
    found = dict(errors(base(train={"batch_size": "big", "precision": "fp8", "deterministic": 1})))
    assert found["train.batch_size"] == "must be a number >= 1 and <= 1,048,576, got 'big'"
    assert found["train.precision"] == "must be one of 'fp32', 'bf16', 'fp16', got 'fp8'"
    assert found["train.deterministic"] == "must be true or false, got 1"


def test_required_fields():
    found = dict(errors({"data": {}}))
    assert "model" in found and "data.source" in found


def test_file_sources_need_a_path_and_builtins_refuse_one():
    assert ("data.path", "is required for source 'csv'") in errors({"model": CNN, "data": {"source": "csv"}})
    assert any(
        p == "data.path" for p, _ in errors({"model": CNN, "data": {"source": "digits", "path": "x.csv"}})
    )


def test_graph_problems_are_reported_under_model():
    bad = json.loads(json.dumps(CNN))
    next(n for n in bad["nodes"] if n["id"] == "conv2")["params"]["in_channels"] = 3  # after 32 channels
    assert ("model.conv2", "expects 3 input channels, got 32") in errors(base(model=bad))


def test_model_file_is_resolved_relative_to_the_spec(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(CNN))
    (tmp_path / "s.json").write_text(json.dumps({"model": "m.json", "data": {"source": "digits"}}))
    assert load_spec(tmp_path / "s.json")["model"]["name"] == "digits-cnn"
    (tmp_path / "s2.json").write_text(json.dumps({"model": "missing.json", "data": {"source": "digits"}}))
    with pytest.raises(SpecError, match="missing.json: file not found"):
        load_spec(tmp_path / "s2.json")


def test_newer_schema_is_refused_clearly():
    assert errors(base(schema=99)) == [
        ("schema", "version 99 is newer than this Trainbench understands (1); upgrade Trainbench")
    ]


def test_older_schema_is_migrated(monkeypatch):
    # Exercise the mechanism with a migration from a hypothetical schema 1 to 2.
    def rename_optimizer(doc):
        doc["optim"] = doc.pop("optimizer")
        return doc

    monkeypatch.setattr(spec_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(spec_mod.MIGRATIONS, 1, rename_optimizer)
    out = validate_spec({"schema": 1, "optimizer": {"lr": 0.5}, **base()})
    assert out["schema"] == 2 and out["optim"]["lr"] == 0.5


def test_bad_json_file_says_where(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"model": ')
    with pytest.raises(DataError, match=r"broken.json: invalid JSON at line 1, column 11"):
        load_spec(p)


def test_cli_validate_prints_table_or_every_error(tmp_path):
    ok = trainbench("validate", EXAMPLES / "digits_cnn.json")
    assert ok.returncode == 0 and "conv2" in ok.stdout and "151,498 parameters" in ok.stdout
    (tmp_path / "bad.json").write_text(json.dumps(base(optim={"lr": 0}, train={"epochs": 0})))
    bad = trainbench("validate", tmp_path / "bad.json")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "optim.lr: must be > 0" in bad.stderr and "train.epochs: must be >= 1" in bad.stderr
