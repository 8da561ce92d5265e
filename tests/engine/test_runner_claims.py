"""One writer per run, with real processes: a stalled (SIGSTOPped) run is neither reaped nor
resumable however old its heartbeat, and a process that lost its run stops without writing.
Also: the claim resolves a prune run's parent once and takes the run's parent from its spec."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from engine.events import parse_events
from engine.store import STALE_S, RunStore
from tests.conftest import TEMPLATES, start_run, trainbench

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGSTOP and /proc")
STEPS = 600


def _spec_file(tmp_path) -> str:
    doc = {
        "name": "claims",
        "model": str(TEMPLATES / "mlp.json"),
        "data": {"source": "digits"},
        "train": {"max_steps": STEPS, "batch_size": 16, "eval_every": 100},
        "checkpoint": {"every": 20, "keep": 2},
        "hardware": {"threads": 1},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _start(*args, db) -> subprocess.Popen:
    return start_run(*args, db=db)


def _until(proc, predicate) -> dict:
    for ev in parse_events(proc.stdout):
        if predicate(ev):
            return ev
    raise AssertionError(f"the stream ended first: {proc.stderr.read()[-2000:]}")


def _age_heartbeat(db, run_id: int, **columns) -> None:
    """Make the run's heartbeat look long stopped (what a 12 s stall does, without the wait)."""
    store = RunStore(db)
    sets = ", ".join(f"{k}=?" for k in ("heartbeat_at", *columns))
    with store.write() as c:
        c.execute(
            f"UPDATE runs SET {sets} WHERE id=?", (time.time() - STALE_S - 60, *columns.values(), run_id)
        )
    store.close()


def _drain(proc) -> None:
    for _ in parse_events(proc.stdout):
        pass


def test_a_stopped_process_is_not_reaped_and_its_run_cannot_be_resumed(tmp_path, db_path):
    proc = _start(_spec_file(tmp_path), db=db_path)
    run_id = _until(proc, lambda e: e["event"] == "progress")["run_id"]
    proc.send_signal(signal.SIGSTOP)
    try:
        _age_heartbeat(db_path, run_id)
        store = RunStore(db_path)
        assert store.reap() == [] and store.get_run(run_id)["status"] == "running"
        listed = trainbench("runs", db=db_path)
        assert listed.returncode == 0 and " running " in listed.stdout
        refused = trainbench("run", "--resume", run_id, "--quiet", db=db_path)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.strip().splitlines() == [
            f"trainbench: error: run {run_id} is running (pid {proc.pid} on this host); "
            "stop it first, or wait for it to end"
        ]
    finally:
        proc.send_signal(signal.SIGCONT)
    _drain(proc)
    assert proc.wait(120) == 0, proc.stderr.read()[-2000:]
    assert store.get_run(run_id)["status"] == "completed"
    assert store.series(run_id, "train/loss")[0].tolist() == list(range(1, STEPS + 1))


def test_a_process_that_lost_its_run_stops_without_writing(tmp_path, db_path):
    first = _start(_spec_file(tmp_path), db=db_path)
    run_id = _until(first, lambda e: e["event"] == "checkpoint")["run_id"]
    first.send_signal(signal.SIGSTOP)
    second = None
    try:
        # As if it ran on another machine that went quiet: reaped, then resumed here.
        _age_heartbeat(db_path, run_id, host="another-machine")
        assert RunStore(db_path).reap() == [run_id]
        second = _start("--resume", run_id, db=db_path)
        _until(second, lambda e: e["event"] == "progress")
    finally:
        first.send_signal(signal.SIGCONT)
    _drain(first)
    assert first.wait(120) == 1
    lines = first.stderr.read().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith(f"trainbench: error: run {run_id} was taken over by ")
    assert lines[0].endswith("this process stops writing it so the run keeps one writer")
    _drain(second)
    assert second.wait(120) == 0, second.stderr.read()[-2000:]
    store = RunStore(db_path)
    assert store.get_run(run_id)["status"] == "completed"
    assert store.series(run_id, "train/loss")[0].tolist() == list(range(1, STEPS + 1))


def test_a_prune_spec_is_resolved_once_and_names_the_runs_parent(tmp_path_factory, monkeypatch):
    from engine import lineage
    from engine.cli import main
    from tests.engine.trained_parent import digits_cnn

    db, parent_id = digits_cnn(tmp_path_factory)
    spec = tmp_path_factory.mktemp("prune") / "prune.json"
    spec.write_text(
        json.dumps({"task": {"kind": "prune"}, "prune": {"parent": parent_id, "finetune_epochs": 0}})
    )
    calls = []
    resolve = lineage.resolve
    monkeypatch.setattr(lineage, "resolve", lambda *a, **kw: calls.append(a[0]) or resolve(*a, **kw))
    other = RunStore(db).create_run({"name": "not the parent"}, status="completed")
    assert main(["--db", str(db), "run", str(spec), "--quiet", "--parent", str(other)]) == 0
    child = RunStore(db).list_runs(kind="prune", limit=1)[0]
    assert len(calls) == 1 and child["parent_id"] == parent_id  # the spec's parent, over --parent
