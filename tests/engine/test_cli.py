"""The command line as a user types it: real subprocesses on a real database."""

import csv
import importlib.util
import json

import pytest
import torch

from tests.conftest import EXAMPLES, trainbench


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two short completed wine runs that differ in learning rate."""
    db = tmp_path_factory.mktemp("cli") / "runs.db"
    for lr in (0.003, 0.01):
        out = trainbench(
            "run", EXAMPLES / "wine_csv.json", "--set", "train.epochs=3", "--set", f"optim.lr={lr}", db=db
        )
        assert out.returncode == 0, out.stderr
        assert "completed: val/loss" in out.stderr
    return db


def test_runs_lists_both_as_table_and_json(two_runs):
    table = trainbench("runs", db=two_runs)
    assert "wine-csv" in table.stdout and table.stdout.count("completed") == 2
    rows = json.loads(trainbench("runs", "--json", db=two_runs).stdout)
    assert [r["id"] for r in rows] == [2, 1] and rows[0]["summary"]["val/accuracy"] > 0.5


def test_show_prints_metrics_checkpoints_and_lineage(two_runs):
    out = trainbench("show", "1", db=two_runs).stdout
    assert (
        "run 1  wine-csv  (train, completed)" in out
        and "train/loss" in out
        and "final" in out
        and "lineage" in out
    )
    doc = json.loads(trainbench("show", "1", "--json", db=two_runs).stdout)
    assert doc["metrics"]["train/loss"]["count"] == doc["run"]["summary"]["steps"]


def test_compare_shows_only_what_differs(two_runs):
    out = trainbench("compare", "1", "2", db=two_runs).stdout
    assert "optim.lr" in out and "train.epochs" not in out and "val/accuracy" in out
    table = json.loads(trainbench("compare", "1", "2", "--json", db=two_runs).stdout)
    assert table["params"]["optim.lr"] == [0.003, 0.01] and table["differing"] == ["optim.lr"]
    assert (
        "train.epochs"
        in json.loads(trainbench("compare", "1", "2", "--all", "--json", db=two_runs).stdout)["params"]
    )


def test_export_pytorch_rebuilds_the_trained_model(two_runs, tmp_path):
    out = trainbench("export", "1", "--format", "pytorch", "--out", tmp_path / "wine.py", db=two_runs)
    assert out.returncode == 0, out.stderr
    spec = importlib.util.spec_from_file_location("wine_export", tmp_path / "wine.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.Model()
    model.load_state_dict(torch.load(tmp_path / "wine.pt", weights_only=True))
    assert model(torch.zeros(2, 13)).shape == (2, 3)


def test_export_metrics_csv(two_runs, tmp_path):
    trainbench("export", "2", "--format", "csv", "--out", tmp_path / "m.csv", db=two_runs, check=True)
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert rows[0].keys() == {"metric", "step", "value", "wall_time"}
    assert {r["metric"] for r in rows} >= {"train/loss", "val/accuracy"}


def test_devices_json_reports_sqlite(two_runs):
    rep = json.loads(trainbench("devices", "--json").stdout)
    assert rep["cpu"]["cores"] >= 1 and rep["sqlite"].count(".") == 2 and isinstance(rep["cuda"], list)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "missing.json"], "missing.json: file not found"),
        (["show", "999"], "no run 999 in"),
        (
            ["run", str(EXAMPLES / "wine_csv.json"), "--set", "optim.lr=-1"],
            "optim.lr: must be > 0 and <= 10, got -1",
        ),
        (["run"], "give a spec file, or --resume RUN"),
    ],
)
def test_user_mistakes_are_one_line_without_traceback(args, message):
    out = trainbench(*args)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_ops_lists_the_registry():
    ops = json.loads(trainbench("ops", "--json").stdout)
    assert {"Conv2d", "TransformerBlock", "Repeat", "Concat"} <= set(ops)
    assert {
        "name": "out_channels",
        "label": "Out channels",
        "kind": "int",
        "default": 16,
        "min": 1,
        "max": 1048576,
        "help": "number of output channels",
    } in ops["Conv2d"]["params"]
