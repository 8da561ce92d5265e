"""Reproducibility capsules: recorded when a designed run starts, written to one file with the
final checkpoint's hash, run again with --from-capsule to the same result, and compared."""

from __future__ import annotations

import hashlib
import json

from engine import capsule
from engine.store import RunStore
from tests.conftest import EXAMPLES, ROOT, trainbench


def test_designed_run_capsule_export_and_rerun_to_the_same_result(db_path, tmp_path):
    first = trainbench("run", EXAMPLES / "digits_mlp.json", "--set", "train.epochs=1", db=db_path)
    assert first.returncode == 0, first.stderr[-3000:]
    store = RunStore(db_path, readonly=True)
    (run,) = store.list_runs()
    (recorded,) = store.capsules(run["id"])
    assert recorded["git"]["root"] == str(ROOT) and len(recorded["git"]["commit"]) == 40
    assert recorded["data"]["source"] == "digits" and recorded["data"]["library"].startswith("scikit-learn ")
    assert recorded["seeds"] == {"train.seed": run["spec"]["train"]["seed"], "data.split_seed": 0}
    assert recorded["torch"]["version"].startswith("2.") and recorded["world_size"] == 1
    assert recorded["packages"]["torch"] == recorded["torch"]["version"]

    out = tmp_path / "run.tbcapsule"
    written = trainbench("capsule", str(run["id"]), "-o", out, db=db_path)
    assert written.returncode == 0 and written.stdout.strip() == str(out)
    doc = json.loads(out.read_text())
    assert doc["format"] == capsule.FORMAT and doc["spec"] == run["spec"] and doc["capsules"] == [recorded]
    final = store.last_checkpoint(run["id"])
    assert doc["checkpoint"]["sha256"] == hashlib.sha256(open(final["path"], "rb").read()).hexdigest()

    again = trainbench("run", "--from-capsule", out, db=db_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "note:" not in again.stderr  # the same machine: nothing differs
    second, _ = store.list_runs()
    assert second["spec"] == run["spec"]
    for key in ("val/loss", "val/accuracy"):  # seeded on one CPU thread pool: the same numbers
        assert second["summary"][key] == run["summary"][key]


def test_compare_lists_environment_differences(db_path):
    for _ in range(2):
        out = trainbench("run", EXAMPLES / "digits_mlp.json", "--set", "train.max_steps=2", db=db_path)
        assert out.returncode == 0, out.stderr[-2000:]
    store = RunStore(db_path)
    packages = {**store.capsules(2)[0]["packages"], "torch": "2.99.0"}
    store.update_capsule(2, torch={"version": "2.99.0", "cuda": None}, packages=packages)
    shown = trainbench("compare", "1", "2", db=db_path)
    assert shown.returncode == 0, shown.stderr
    environment = shown.stdout.split("environment (differing):", 1)[1]
    assert "torch" in environment and "2.99.0" in environment and "package torch" in environment
    assert "python " not in environment and "package numpy" not in environment  # only what differs


def test_differences_and_fingerprints(tmp_path, monkeypatch):
    a = {"python": {"version": "3.11.7"}, "torch": {"version": "2.13.0"}, "packages": {"numpy": "2.4"}}
    b = {
        "python": {"version": "3.11.7"},
        "torch": {"version": "2.12.0"},
        "packages": {"numpy": "2.4", "x": "1"},
    }
    assert capsule.differences([a, b, None]) == {
        "torch": ["2.13.0", "2.12.0", None],
        "package x": [None, "1", None],
    }
    assert capsule.differences([a, None]) == {}  # nothing to compare with

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x,y\n1,2\n")
    (data / "b.csv").write_text("x,y\n3,4\n" * 100)
    whole = capsule.fingerprint(data, [1 << 20])
    assert (whole["files"], whole["hashed"]) == (2, "all")
    (data / "b.csv").write_text("x,y\n3,5\n" * 100)  # same size, another content
    assert capsule.fingerprint(data, [1 << 20])["sha256"] != whole["sha256"]
    assert capsule.fingerprint(data, [10])["hashed"] == "partial"
    assert capsule.fingerprint(tmp_path / "gone", [10]) == {"path": str(tmp_path / "gone"), "missing": True}


def test_from_capsule_refuses_what_is_no_capsule(db_path, tmp_path):
    (tmp_path / "x.tbcapsule").write_text(json.dumps({"spec": {}}))
    out = trainbench("run", "--from-capsule", tmp_path / "x.tbcapsule", db=db_path)
    assert out.returncode == 1 and "not a Trainbench capsule" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
