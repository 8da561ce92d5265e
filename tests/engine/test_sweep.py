"""Sweeps: the section's validation, the device pool, and real sweeps of the digits MLP whose
trials are runs in warm engine processes (random search, ASHA pruning, parallel trials sharing
two cores, a kill -9 of the sweep and its resume, a kill -9 of a trial's process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from engine.errors import SpecError
from engine.runner import cpu_cores
from engine.spec import validate_spec
from engine.store import RunStore
from engine.sweep.pool import plan_slots
from engine.sweep.study import STUDY_FILE, repair
from tests.conftest import EXAMPLES, ROOT, TEMPLATES, example, trainbench

HANG_S = 300

# The issue's section, verbatim.
SECTION = {
    "params": {"optim.lr": {"log_uniform": [1e-5, 1.0]}, "train.batch_size": {"choice": [32, 64, 128]}},
    "objective": {"metric": "val/accuracy", "direction": "maximize"},
    "trials": 16,
    "parallel": 2,
    "sampler": "tpe",
    "pruner": "asha",
    "seed": 0,
}


def _sweep_file(tmp_path, epochs: int = 3, **sweep) -> str:
    doc = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    doc["model"] = str(TEMPLATES / "mlp.json")
    doc["train"]["epochs"] = epochs
    doc["checkpoint"] = {"every": 1_000_000}
    doc["sweep"] = {**SECTION, **sweep}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _trials(store: RunStore, sweep_id: int) -> list[dict]:
    return sorted(
        (r for r in store.list_runs() if r["parent_id"] == sweep_id), key=lambda r: r["summary"]["trial"]
    )


def _study(store: RunStore, sweep_id: int) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = store.artifacts_dir(sweep_id) / STUDY_FILE
    return optuna.load_study(study_name="sweep", storage=JournalStorage(JournalFileBackend(str(path))))


# ------------------------------------------------------------------ the section


def test_the_issues_section_validates_and_bad_values_are_named_by_path():
    doc = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    doc["sweep"] = SECTION
    sweep = validate_spec(doc, base_dir=EXAMPLES)["sweep"]
    assert sweep["params"] == SECTION["params"]
    example_sweep = json.loads((EXAMPLES / "digits_mlp_sweep.json").read_text())["sweep"]
    assert example_sweep == SECTION  # the README's example is this section
    assert sweep["objective"] == {"metric": "val/accuracy", "direction": "maximize", "value": "final"}
    doc["sweep"] = {
        "params": {
            "optim.lr": {"log_uniform": [0, 100]},
            "train.batch_size": {"uniform": [16, 64]},
            "optim.name": {"choice": ["sgd", "lion"]},
            "train.epochs": {"int": [5, 2]},
            "hardware.gpus": {"choice": [0]},
            "optim.nope": {"grid": [1]},
            "train.seed": {"normal": [0, 1]},
        },
        "objective": {"direction": "up"},
        "sampler": "grid",
        "trials": 0,
    }
    with pytest.raises(SpecError) as err:
        validate_spec(doc, base_dir=EXAMPLES)
    problems = dict(err.value.problems)
    assert problems["sweep.trials"] == "must be >= 1 and <= 100,000, got 0"
    assert problems["sweep.objective.metric"].startswith("is required")
    assert problems["sweep.objective.direction"] == "must be one of 'maximize', 'minimize', got 'up'"
    assert problems["sweep.params.optim.lr.log_uniform[0]"] == "lr must be > 0 and <= 10, got 0"
    assert (
        problems["sweep.params.train.batch_size"]
        == "uniform needs a float field; train.batch_size is int (use int)"
    )
    assert problems["sweep.params.optim.name.choice[1]"].startswith("name must be one of 'sgd'")
    assert problems["sweep.params.train.epochs"] == "needs low < high, got [5, 2]"
    assert problems["sweep.params.hardware.gpus"] == "is set for each trial by the sweep's device pool"
    assert problems["sweep.params.optim.nope"].startswith("is not a spec field")
    assert problems["sweep.params.train.seed"].startswith(
        "must be one of {uniform, log_uniform, int, choice, grid"
    )


def test_the_pool_divides_the_cores_and_places_trials_on_gpus():
    spec = example("digits_mlp")
    slots, note = plan_slots(spec, parallel=2, cores=2, gpus=[])
    assert [(s.gpu, s.threads) for s in slots] == [(None, 1), (None, 1)]
    assert note == "2 trial(s) at once on the CPU; 1 CPU thread(s) each of 2 cores"
    slots, note = plan_slots(spec, parallel=3, per_gpu=2, cores=16, gpus=[0, 1])
    assert [(s.gpu, s.threads) for s in slots] == [(0, 5), (0, 5), (1, 5)]
    placed = slots[2].place(spec)["hardware"]
    assert (placed["device"], placed["gpus"], placed["threads"]) == ("cuda", [1], 5)
    slots, note = plan_slots(spec, parallel=8, cores=16, gpus=[3])
    assert len(slots) == 1 and note.endswith("(sweep.parallel is 8: more than the GPUs × sweep.per_gpu)")
    explicit = example("digits_mlp", hardware={"threads": 3})
    assert {s.threads for s in plan_slots(explicit, parallel=4, cores=2, gpus=[])[0]} == {3}


def test_a_journal_left_by_a_killed_writer_is_repaired(tmp_path):
    path = tmp_path / STUDY_FILE
    path.write_bytes(b'{"op_code": 0}\n{"op_code": 1, "tor')
    (tmp_path / (STUDY_FILE + ".lock")).touch()
    repair(path)
    assert path.read_bytes() == b'{"op_code": 0}\n'
    assert not (tmp_path / (STUDY_FILE + ".lock")).exists()


def test_bad_sweep_commands_answer_in_one_line(tmp_path, db_path):
    plain = trainbench("sweep", EXAMPLES / "digits_mlp.json", db=db_path)
    assert plain.returncode == 2 and plain.stderr.strip().splitlines() == [
        f"trainbench: error: sweep: {EXAMPLES / 'digits_mlp.json'} has no sweep section "
        "(trainbench run trains it once)"
    ]
    RunStore(db_path).create_run(example("digits_mlp"))
    other = trainbench("sweep", "--resume", "1", db=db_path)
    assert other.returncode == 1 and other.stderr.strip().splitlines() == [
        "trainbench: error: run 1 is a train run, not a sweep (trainbench run --resume continues it)"
    ]


# ------------------------------------------------------------------ real sweeps


@pytest.mark.skipif(cpu_cores() < 2, reason="needs two cores to share")
def test_a_16_trial_random_sweep_stores_16_child_runs_two_at_a_time_on_shared_cores(tmp_path, db_path):
    spec = _sweep_file(tmp_path, epochs=4, sampler="random", pruner="none", parallel=1)
    out = trainbench("sweep", spec, "--parallel", "2", db=db_path, timeout=HANG_S)
    assert out.returncode == 0, out.stderr[-3000:]
    store = RunStore(db_path)
    sweep = store.get_run(1)
    assert (sweep["kind"], sweep["status"], sweep["summary"]["trials_done"]) == ("sweep", "completed", 16)
    trials = _trials(store, 1)
    assert [t["summary"]["trial"] for t in trials] == list(range(16))
    assert all(t["status"] == "completed" and t["summary"]["trial_state"] == "complete" for t in trials)
    best = max(trials, key=lambda t: t["summary"]["objective"])
    assert best["summary"]["objective"] >= 0.95
    assert (sweep["summary"]["best_run"], sweep["summary"]["objective"]) == (
        best["id"],
        best["summary"]["objective"],
    )
    assert best["summary"]["objective"] == best["summary"]["val/accuracy"]  # the final value
    lrs = [t["spec"]["optim"]["lr"] for t in trials]
    assert all(1e-5 <= lr <= 1.0 for lr in lrs) and len(set(lrs)) == 16
    assert {t["spec"]["train"]["batch_size"] for t in trials} <= {32, 64, 128}
    # Two trials at once on the cores, each told its share by the sweep and using it.
    threads = max(1, cpu_cores() // 2)
    for t in trials:
        log = (store.artifacts_dir(t["id"]) / "run.log").read_text()
        assert f"using {threads} CPU thread{'s' if threads > 1 else ''} (hardware.threads)" in log
    spans = sorted((t["started_at"], t["ended_at"]) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), "no two trials overlapped"
    # The terminal table (not a terminal here: printed once at the end) and the closing line.
    assert "sweep 1: 16/16 trials" in out.stderr and "val/accuracy" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("sweep 1 completed: 16 trials, 0 pruned; best run")


def test_asha_prunes_hopeless_trials_and_records_the_step(tmp_path, store):
    from engine.spec import load_spec
    from engine.sweep import start_sweep

    spec = load_spec(
        _sweep_file(
            tmp_path,
            epochs=40,  # long enough that a pruned trial's stop lands before its end, even on an idle machine
            params={"optim.lr": {"log_uniform": [1e-7, 3e-2]}},  # mostly far too small to learn in 40 epochs
            trials=12,
            sampler="random",
            pruner="asha",
        ),
        ["train.eval_every=15"],
    )
    sweep_id, status = start_sweep(store, spec)
    assert status == "completed"
    trials = _trials(store, sweep_id)
    pruned = [t for t in trials if t["summary"]["trial_state"] == "pruned"]
    assert len(trials) == 12 and len(pruned) >= 0.3 * 12
    study = {t.number: t for t in _study(store, sweep_id).trials}
    for t in pruned:
        step = t["summary"]["pruned_step"]
        assert step % 15 == 0 and step < t["summary"]["total_steps"]
        assert study[t["summary"]["trial"]].state.name == "PRUNED"
        assert study[t["summary"]["trial"]].user_attrs["pruned_step"] == step
        # Stopped gracefully after the verdict, with a checkpoint where it stopped (a trial this
        # small may reach its end before the stop lands: it completes, and still counts as pruned).
        assert t["status"] in ("stopped", "completed") and step <= t["summary"]["steps"]
        assert store.last_checkpoint(t["id"])["step"] == t["summary"]["steps"]
    print([(t["summary"]["pruned_step"], t["summary"]["steps"], t["status"]) for t in pruned])
    assert any(
        t["status"] == "stopped" and t["summary"]["steps"] < t["summary"]["total_steps"] for t in pruned
    )
    assert store.get_run(sweep_id)["summary"]["trials_pruned"] == len(pruned)


def test_a_sweep_killed_mid_way_resumes_and_finishes_its_budget_exactly(tmp_path, db_path):
    # Trials long enough that an idle machine cannot finish the sweep between two looks of the loop below.
    spec = _sweep_file(tmp_path, epochs=150, sampler="random", pruner="none", parallel=1, trials=4)
    env = {**os.environ, "TRAINBENCH_DB": str(db_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "sweep", spec, "--quiet"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = RunStore(db_path)
    deadline = time.monotonic() + HANG_S
    try:
        while True:  # two trials settled and the third training: kill the sweep there
            assert time.monotonic() < deadline and proc.poll() is None, "the sweep ended before the kill"
            trials = _trials(store, 1) if store.list_runs() else []
            settled = [t for t in trials if "trial_state" in t["summary"]]
            running = [t for t in trials if t["status"] == "running" and "trial_state" not in t["summary"]]
            loss = store.series_summaries(running[0]["id"]).get("train/loss") if running else None
            total = running[0]["summary"].get("total_steps") if running else None
            if len(settled) >= 2 and loss and total and loss["last_step"] < total / 3:  # far from its end
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(HANG_S)
    finally:
        proc.kill()
    before = {t["id"]: t["summary"] for t in _trials(store, 1) if "trial_state" in t["summary"]}
    interrupted = running[0]["id"]
    while store.get_run(interrupted)["status"] == "running":  # stopped with the sweep (its parent)
        assert time.monotonic() < deadline, "the trial outlived its sweep"
        store.reap()
        time.sleep(0.1)
    assert store.get_run(interrupted)["status"] == "stopped"

    out = trainbench("sweep", "--resume", "1", "--quiet", db=db_path, timeout=HANG_S)
    assert out.returncode == 0, out.stderr[-3000:]
    trials = _trials(store, 1)
    assert [t["summary"]["trial"] for t in trials] == [0, 1, 2, 3]  # no number twice, none lost
    assert all(t["status"] == "completed" and t["summary"]["trial_state"] == "complete" for t in trials)
    for run_id, summary in before.items():  # the trials settled before the kill, untouched
        assert store.get_run(run_id)["summary"]["objective"] == summary["objective"]
    log = (store.artifacts_dir(interrupted) / "run.log").read_text()
    assert "resumed from the checkpoint at step" in log  # the same run went on, not a new one
    study = _study(store, 1)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    # The resumed sampler goes on: it does not propose the first trials' values again.
    assert len({t.params["optim.lr"] for t in study.trials}) == 4
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    sweep = store.get_run(1)
    assert (sweep["status"], sweep["summary"]["trials_done"]) == ("completed", 4)


def test_a_trial_whose_process_is_killed_fails_alone_and_the_next_gets_a_fresh_worker(tmp_path, db_path):
    spec = _sweep_file(tmp_path, epochs=150, sampler="random", pruner="none", parallel=1, trials=3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "sweep", spec, "--quiet"],
        cwd=ROOT,
        env={**os.environ, "TRAINBENCH_DB": str(db_path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    store = RunStore(db_path)
    deadline = time.monotonic() + HANG_S
    pids = {}
    try:
        while True:  # trial 1 training, far from its end: kill the process it trains in
            assert time.monotonic() < deadline and proc.poll() is None, "the sweep ended before the kill"
            trials = _trials(store, 1) if store.list_runs() else []
            pids.update((t["summary"]["trial"], t["pid"]) for t in trials if t["status"] == "running")
            running = [t for t in trials if t["status"] == "running" and t["summary"]["trial"] == 1]
            loss = store.series_summaries(running[0]["id"]).get("train/loss") if running else None
            total = running[0]["summary"].get("total_steps") if running else None
            if loss and total and loss["last_step"] < total / 3:
                break
            time.sleep(0.05)
        killed = running[0]
        os.kill(killed["pid"], signal.SIGKILL)
        _, err = proc.communicate(timeout=HANG_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    trials = _trials(store, 1)
    assert [t["summary"]["trial"] for t in trials] == [0, 1, 2]
    states = [(t["status"], t["summary"]["trial_state"]) for t in trials]
    assert states == [("completed", "complete"), ("crashed", "failed"), ("completed", "complete")]
    assert pids[0] == killed["pid"]  # the slot's worker ran trial after trial
    assert store.series_summaries(killed["id"])["train/loss"]["last_step"] >= loss["last_step"]  # points kept
    assert store.get_run(1)["summary"]["trials_failed"] == 1


def test_the_grid_sampler_asks_every_point_once():
    from engine.sweep.space import budget, distributions, make_sampler

    doc = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    doc["sweep"] = {
        "params": {"optim.name": {"grid": ["sgd", "adam"]}, "train.batch_size": {"choice": [16, 32, 64]}},
        "objective": {"metric": "val/loss", "direction": "minimize"},
        "sampler": "grid",
    }
    sweep = validate_spec(doc, base_dir=EXAMPLES)["sweep"]
    assert budget(sweep) == 6
    study = optuna.create_study(sampler=make_sampler(sweep))
    asked = []
    for _ in range(budget(sweep)):
        trial = study.ask(distributions(sweep["params"]))
        asked.append((trial.params["optim.name"], trial.params["train.batch_size"]))
        study.tell(trial, 1.0)
    assert sorted(asked) == sorted((o, b) for o in ("sgd", "adam") for b in (16, 32, 64))
