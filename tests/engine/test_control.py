"""Live control of real run processes through their control file: a learning-rate change at
step k shows in train/lr from step k+1, pause holds the step counter, extending a run makes it
complete at the new total, every change is an event of the run, and a resume replays the
changes recorded after its checkpoint at the same steps."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from engine.control import ControlError, parse, send
from engine.store import RunStore
from tests.conftest import ROOT, example, trainbench, wait_for

HANG_S = 120  # a hang detector for busy machines, not a bound on anything measured


def start(tmp_path, db_path, spec: dict, *args) -> subprocess.Popen:
    """A real run process (without an event stream: nothing here would read it, and a full
    pipe would hold the run)."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "TRAINBENCH_DB": str(db_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "engine.cli", "run", *(args or (str(path),)), "--quiet"]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def last_step(store: RunStore, run_id: int) -> int:
    return (store.series_summaries(run_id).get("train/loss") or {}).get("last_step") or 0


def lr_at(store: RunStore, run_id: int) -> dict[int, float]:
    steps, values, _ = store.series(run_id, "train/lr")
    return dict(zip(steps.tolist(), values.tolist(), strict=True))


@pytest.fixture
def reader(db_path):
    RunStore(db_path).close()  # the database exists before the run and the reader open it
    store = RunStore(db_path, readonly=True)
    yield store
    store.close()


def running_run(store: RunStore, proc) -> int:
    def started():
        assert proc.poll() is None, proc.stderr.read()
        runs = store.list_runs(status="running")
        return runs and last_step(store, runs[0]["id"]) > 20 and runs[0]["id"]

    return wait_for(started, "the run to start training")


def test_commands_are_checked_before_they_are_sent(reader):
    assert parse("lr=0.01") == {"command": "lr", "value": 0.01}
    assert parse(" LR*=0.5 ") == {"command": "lr_scale", "value": 0.5}
    assert parse("continue") == {"command": "resume"}
    for bad, said in (
        ("lr=-1", "lr= must be > 0"),
        ("steps=1.5", "whole number"),
        ("faster", "unknown command"),
    ):
        with pytest.raises(ControlError, match=said):
            parse(bad)
    rid = RunStore(reader.path).create_run(example("digits_mlp"))
    with pytest.raises(ControlError, match=f"run {rid} is queued; only a running run takes commands"):
        send(reader, rid, "pause")


def test_live_lr_change_pause_and_extend(tmp_path, db_path, reader):
    spec = example(
        "digits_mlp",
        train={"max_steps": 10**6},
        schedule={"name": "constant", "warmup_steps": 0},
        checkpoint={"every": 10**6},
    )
    proc = start(tmp_path, db_path, spec)
    try:
        rid = running_run(reader, proc)
        k = send(reader, rid, "lr=0.01")["step"]
        paused = send(reader, rid, "pause")["step"]
        assert paused >= k
        wait_for(lambda: last_step(reader, rid) == paused, "the paused run's losses to be stored")
        time.sleep(1.0)  # a paused run takes no step, whatever happens meanwhile
        assert last_step(reader, rid) == paused
        # the CLI, while paused: extend the run; it applies at once and says so
        total = paused + 300
        cli = trainbench("control", rid, f"steps={total}", "--json", db=db_path)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["step"] == paused
        assert send(reader, rid, "resume")["step"] == paused
        assert proc.wait(timeout=HANG_S) == 0, proc.stderr.read()
    finally:
        proc.kill()
    run = reader.get_run(rid)
    assert run["status"] == "completed" and run["summary"]["steps"] == total
    assert run["summary"]["total_steps"] == total and last_step(reader, rid) == total
    lr = lr_at(reader, rid)
    assert lr[k] == pytest.approx(0.002) and lr[k + 1] == pytest.approx(0.01)
    assert all(v == pytest.approx(0.01) for s, v in lr.items() if s > k)
    events = reader.run_events(rid, "control")
    assert [(e["step"], e["data"]["command"]) for e in events] == [
        (k, "lr"),
        (paused, "pause"),
        (paused, "steps"),
        (paused, "resume"),
    ]
    shown = trainbench("show", rid, db=db_path).stdout
    assert "learning rate set to 0.01" in shown and f"the run ends at step {total:,}" in shown


def test_a_resume_replays_the_changes_at_their_steps(tmp_path, db_path, reader):
    spec = example(
        "digits_cnn",
        train={"max_steps": 10**6},
        schedule={"name": "constant", "warmup_steps": 0},
        checkpoint={"every": 10**6},
        health={"every": 10},
    )
    proc = start(tmp_path, db_path, spec)
    try:
        rid = running_run(reader, proc)
        k1 = send(reader, rid, "lr=0.01")["step"]
        saved = send(reader, rid, "checkpoint")["step"]
        k2 = send(reader, rid, "lr*=0.5")["step"]
        k3 = send(reader, rid, f"steps={k2 + 400}")["step"]
        assert k1 <= saved < k2 <= k3
        wait_for(lambda: last_step(reader, rid) > k3, "steps after the last change to be stored")
        proc.send_signal(signal.SIGKILL)  # after the changes past the checkpoint: those are replayed
        proc.wait(timeout=HANG_S)
    finally:
        proc.kill()
    assert [c["step"] for c in reader.checkpoints(rid)] == [saved]
    proc = start(tmp_path, db_path, spec, "--resume", str(rid))
    try:
        assert proc.wait(timeout=HANG_S) == 0, proc.stderr.read()
    finally:
        proc.kill()
    run = reader.get_run(rid)
    assert run["status"] == "completed" and run["summary"]["steps"] == k2 + 400
    events = reader.run_events(rid, "control")
    assert [(e["step"], e["data"]["command"]) for e in events] == [
        (k1, "lr"),
        (saved, "checkpoint"),
        (k2, "lr_scale"),
        (k3, "steps"),
    ]  # each once: replayed, not recorded again
    lr = lr_at(reader, rid)
    steps = np.array(sorted(lr))
    assert steps.tolist() == list(range(1, k2 + 401))  # every step once, across the kill
    assert lr[k1 + 1] == pytest.approx(0.01) and lr[k2] == pytest.approx(0.01)
    assert lr[k2 + 1] == pytest.approx(0.005) and lr[k2 + 400] == pytest.approx(0.005)
    log = (reader.artifacts_root / f"run-{rid}" / "run.log").read_text()
    assert f"control: replayed at step {k2}: learning rate scaled by 0.5" in log
