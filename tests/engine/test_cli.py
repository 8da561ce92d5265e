"""The command line as a user types it: real subprocesses on a real database."""

import csv
import importlib.util
import inspect
import json
import re

import pytest
import torch

from engine import cli
from engine import format as fmt
from engine.spec import SECTIONS
from engine.store import RunStore
from tests.conftest import EXAMPLES, trainbench

#: a float printed raw: seven or more digits after the point (0.019013814628124237)
RAW_FLOAT = re.compile(r"\d\.0*[1-9]\d{6,}")  # more than 7 significant digits: a raw float


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


def test_devices_names_the_sqlite_version_without_an_alarm_the_user_cannot_act_on():
    rep = json.loads(trainbench("devices", "--json").stdout)
    out = trainbench("devices").stdout
    assert f"SQLite {rep['sqlite']}" in out
    assert "race" not in out and "upgrade" not in out


def test_show_runs_and_compare_format_numbers_as_the_gui_does(two_runs):
    run = RunStore(two_runs).get_run(1)
    show = trainbench("show", "1", db=two_runs).stdout
    loss = run["summary"]["val/loss"]
    assert len(repr(loss)) > 8  # a float that prints long when raw
    assert f"val/loss: {fmt.value(loss)}" in show and repr(loss) not in show
    assert f"duration {fmt.duration(run['ended_at'] - run['started_at'])}" in show
    assert f"created {fmt.timestamp(run['created_at'])}" in show
    assert f"flops: {fmt.count(run['summary']['flops'])}" in show
    listed = trainbench("runs", db=two_runs).stdout
    assert fmt.timestamp(run["created_at"]) in listed and "accuracy " in listed
    compared = trainbench("compare", "1", "2", db=two_runs).stdout
    for out in (show, listed, compared):
        assert not RAW_FLOAT.search(out), out


def test_ops_fits_the_terminal_width(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    narrow = trainbench("ops").stdout.splitlines()  # not a terminal: 80 columns
    assert max(map(len, narrow)) <= 80
    monkeypatch.setenv("COLUMNS", "150")  # what a shell tells its programs
    wide = trainbench("ops").stdout.splitlines()
    assert 80 < max(map(len, wide)) <= 150 and len(wide) < len(narrow)
    ops = json.loads(trainbench("ops", "--json").stdout)
    names = {line.split()[0] for line in narrow[2:] if line and not line.startswith(" ")}
    assert names == set(ops)


def test_each_commands_help_is_its_docstring_and_options_take_the_fields_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps help to it: one line per command
    top = trainbench("--help").stdout
    for name, func in (
        ("runs", cli.cmd_runs),
        ("show", cli.cmd_show),
        ("ops", cli.cmd_ops),
        ("join", cli.cmd_join),
    ):
        summary = inspect.getdoc(func).split("\n\n")[0]
        assert re.search(rf"^\s+{name}\s+{re.escape(summary)}$", top, re.M), top
        assert summary in trainbench(name, "--help").stdout
    assert "worker" not in top  # started by the launcher, not by people
    join = " ".join(trainbench("join", "--help").stdout.split())
    hardware = {f.name: f for f in SECTIONS["hardware"]}
    for name in ("rdzv_endpoint", "rdzv_id", "nnodes", "nproc_per_node", "node_rank"):
        assert " ".join(hardware[name].help.split()) in join


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
