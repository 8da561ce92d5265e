"""Run spec validation: each error names its path and the allowed values."""

import json
import subprocess
import sys

import pytest

from engine import spec as spec_mod
from engine.errors import DataError, SpecError
from engine.spec import load_spec, validate_spec
from tests.conftest import EXAMPLES, ROOT, TEMPLATES, trainbench

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


# ------------------------------------------------------------------ hostile values


def test_cross_field_checks_never_see_a_value_that_failed_its_own_check():
    found = errors(base(hardware={"nproc_per_node": "x", "strategy": "single", "nnodes": [2]}))
    assert found == [("hardware.nproc_per_node", "must be a number >= 1 and <= 1024, got 'x'")]
    found = errors(base(task={"kind": ["prune"]}))
    assert [p for p, _ in found] == ["task.kind"]


@pytest.mark.parametrize(
    "section, field, value, message",
    [
        ("train", "seed", 1e308, "must be >= 0 and <= 4,294,967,295, got 1e+308"),
        ("train", "epochs", 10**400, "must be >= 1 and <= 100,000, got a 401-digit number"),
        ("data", "samples", 1e8, "must be >= 10 and <= 1,000,000, got 1e+08"),
        ("optim", "lr", float("nan"), "must be a finite number > 0 and <= 10, got nan"),
        ("train", "batch_size", "x" * 10_000, "must be a number >= 1 and <= 1,048,576, got 'xxxxxxxx"),
    ],
)
def test_values_that_would_exhaust_memory_or_overflow_are_field_errors(section, field, value, message):
    doc = base(**{section: {field: value}})
    if section == "data":
        doc["data"]["source"] = "synthetic_classification"
    ((path, msg),) = errors(doc)
    assert path == f"{section}.{field}" and msg.startswith(message) and len(msg) < 120


def test_a_schema_that_is_not_a_whole_number_and_nesting_too_deep():
    assert errors(base(schema=float("nan"))) == [("schema", "must be a finite number >= 1, got nan")]
    assert errors(base(schema=True)) == [("schema", "must be a number >= 1, got True")]
    deep = base(tags=json.loads("[" * 120 + "]" * 120))
    assert errors(deep)[0][1] == "nests more than 100 levels deep"


def test_a_bom_is_read_and_a_document_of_the_wrong_kind_is_one_error(tmp_path):
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(base()).encode())
    assert load_spec(p)["data"]["source"] == "digits"
    p.write_text("[1, 2]")
    with pytest.raises(SpecError, match="a spec must be a JSON object, got list"):
        load_spec(p)


# ------------------------------------------------------------------ validate gives run's verdict


def _write(tmp_path, doc, name="s.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_validate_refuses_what_a_run_would(tmp_path):
    """A model whose input does not match the data, a missing target column, a batch larger
    than the training split: each is refused by validate, as the run would refuse it."""
    wine = json.loads((EXAMPLES / "wine_csv.json").read_text())
    wine["data"]["path"] = str(EXAMPLES / "data" / "wine.csv")
    cases = [
        (base(data={"source": "wine"}), "model: the Input takes 1×8×8 but wine samples are 13 float"),
        ({**wine, "data": {**wine["data"], "target": "colour"}}, "data.path: "),
        ({**wine, "train": {"batch_size": 500}}, "train.batch_size: the global batch (500 × 1 accumulation"),
    ]
    for doc, message in cases:
        out = trainbench("validate", _write(tmp_path, doc))
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert "no column named 'colour'" in trainbench("validate", _write(tmp_path, cases[1][0])).stderr


def test_validate_warns_about_a_cadence_longer_than_the_run_and_takes_set(tmp_path):
    path = _write(tmp_path, base(schedule={"warmup_steps": 5000}, train={"epochs": 1, "eval_every": 900}))
    out = trainbench("validate", path)
    assert out.returncode == 0, out.stderr
    assert "trainbench: warning: schedule.warmup_steps: 5000 warm-up steps in a run of 22" in out.stderr
    assert "trainbench: warning: train.eval_every: evaluates every 900 steps in a run of 22" in out.stderr
    fixed = trainbench("validate", path, "--set", "schedule.warmup_steps=2", "--set", "train.eval_every=0")
    assert fixed.returncode == 0 and "warning" not in fixed.stderr, fixed.stderr


def test_a_spec_that_cannot_fit_is_an_error_unless_forced(tmp_path):
    layers = [("a", 1 << 20), ("b", 1 << 20), ("c", 3)]  # 10^12 parameters: 16 TiB to train
    wide = {
        "nodes": [{"id": "x", "op": "Input", "params": {"shape": [64]}}]
        + [{"id": i, "op": "Linear", "params": {"out_features": n}} for i, n in layers],
        "edges": [{"from": a, "to": b} for a, b in (("x", "a"), ("a", "b"), ("b", "c"))],
    }
    path = _write(tmp_path, base(model=wide, data={"source": "synthetic_classification", "features": 64}))
    out = trainbench("validate", path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "model: needs ~" in out.stderr and "the largest part is the parameters" in out.stderr
    assert "--force starts it anyway" in out.stderr
    forced = trainbench("validate", path, "--force")
    assert forced.returncode == 0 and "does NOT fit" in forced.stdout
    assert "trainbench: warning: model: needs ~" in forced.stderr and "(forced)" in forced.stderr


def test_validate_imports_neither_torch_nor_scikit_learn(tmp_path):
    """Not a time bound: what made validate take 9 s was importing these two."""
    specs = [EXAMPLES / f"{n}.json" for n in ("digits_cnn", "digits_mlp", "char_gpt", "wine_csv")]
    tabular = {
        "nodes": [
            {"id": "x", "op": "Input", "params": {"shape": [64]}},
            {"id": "fc", "op": "Linear", "params": {"out_features": 1}},
        ],
        "edges": [{"from": "x", "to": "fc"}],
    }
    specs.append(
        _write(tmp_path, base(model=tabular, data={"source": "synthetic_regression", "features": 64}))
    )
    code = (
        "import contextlib, io, sys, json\n"
        "from engine.cli import main\n"
        "rcs = []\n"
        "for path in sys.argv[1:]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        rcs.append(main(['validate', path, '--set', 'hardware.device=cpu']))\n"
        "print(json.dumps([rcs, sorted(m for m in ('torch', 'sklearn') if m in sys.modules)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, specs)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    rcs, imported = json.loads(out.stdout)
    assert rcs == [0] * len(specs), out.stderr
    assert imported == []
