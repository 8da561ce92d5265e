"""The training loop on real data: accuracy, divergence, accumulation, stop and resume (kills:
test_resume_kills.py), the run's elapsed time across resumes."""

import json
import math
import signal

import numpy as np
import pytest

from engine import checkpoint
from engine.events import parse_events
from engine.runner import execute
from engine.store import RunStore
from tests.conftest import EXAMPLES, example, start_run


def test_digits_cnn_reaches_95_percent(db_path):
    rid, status = execute(db_path, example("digits_cnn"))
    run = RunStore(db_path).get_run(rid)
    assert status == "completed", run["error"]
    assert run["summary"]["val/accuracy"] >= 0.95
    assert run["summary"]["elapsed_s"] > 0
    store = RunStore(db_path)
    series = store.series_summaries(rid)
    steps = run["summary"]["total_steps"]
    assert series["train/loss"]["count"] == steps  # every step logged
    assert series["val/accuracy"]["count"] == 8  # once per epoch
    lr = store.series(rid, "train/lr")[1]
    assert lr[0] < lr[19] and lr[-1] < 0.01 * lr.max()  # warm-up, then cosine decay
    cps = store.checkpoints(rid)
    assert cps[-1]["tag"] == "final" and cps[-1]["step"] == steps and len(cps) == 3  # keep=2 periodic + final


def test_char_lm_validation_loss_falls(db_path):
    spec = example("char_gpt", train={"epochs": 1, "max_steps": 60, "eval_every": 20, "batch_size": 16})
    spec["model"]["nodes"][3]["params"]["times"] = 2  # two blocks keep the test short
    rid, status = execute(db_path, spec)
    store = RunStore(db_path)
    assert status == "completed", store.get_run(rid)["error"]
    val = store.series(rid, "val/loss")[1]
    assert len(val) == 3 and val[-1] < val[0] - 0.3 and val[0] < math.log(256) + 0.5
    tokens = store.series(rid, "perf/tokens_per_s")[1]
    samples = store.series(rid, "perf/samples_per_s")[1]
    assert np.allclose(tokens, samples * 64)


def test_divergence_fails_the_run_naming_the_step(db_path):
    spec = example(
        "wine_csv", optim={"name": "sgd", "lr": 10.0, "momentum": 0.99}, train={"epochs": 50, "batch_size": 8}
    )
    spec["data"] = {**spec["data"], "source": "synthetic_regression", "path": None, "target": None}
    spec["model"]["nodes"][0]["params"]["shape"] = [20]
    spec["model"]["nodes"][-1]["params"]["out_features"] = 1
    rid, status = execute(db_path, spec)
    run = RunStore(db_path).get_run(rid)
    assert status == "failed" and run["status"] == "failed"
    assert "the training loss became" in run["error"] and "at step" in run["error"]


def test_gradient_accumulation_matches_a_larger_batch(db_path):
    def losses(batch, accum):
        spec = example(
            "wine_csv", train={"epochs": 1, "max_steps": 6, "batch_size": batch, "grad_accum": accum}
        )
        spec["model"]["nodes"][3]["params"]["p"] = 0.0  # no dropout: both runs must see the same function
        rid, status = execute(db_path, spec)
        assert status == "completed"
        return RunStore(db_path).series(rid, "train/loss")[1]

    assert np.allclose(losses(32, 1), losses(8, 4), atol=1e-5)


def test_bf16_autocast_trains_on_cpu(db_path):
    rid, status = execute(db_path, example("digits_mlp", train={"epochs": 3, "precision": "bf16"}))
    run = RunStore(db_path).get_run(rid)
    assert status == "completed" and run["summary"]["val/accuracy"] > 0.85


def test_fp16_on_cpu_is_a_clear_spec_error(db_path):
    rid, status = execute(db_path, example("digits_mlp", train={"precision": "fp16"}))
    assert status == "failed"
    assert (
        RunStore(db_path).get_run(rid)["error"]
        == "train.precision: fp16 needs a CUDA device (it relies on a grad scaler); on cpu use bf16 or fp32"
    )


def test_model_that_does_not_fit_the_data_fails_before_training(db_path):
    rid, status = execute(db_path, example("digits_mlp", data={"source": "wine"}))
    err = RunStore(db_path).get_run(rid)["error"]
    assert status == "failed" and "the Input takes 1×8×8 but wine samples are 13 float" in err
    assert "the output is 10, but wine needs one score per class (3 classes)" in err


# ---------------------------------------------------------------- stop, kill -9, resume


def _spec_file(tmp_path, **train):
    doc = json.loads((EXAMPLES / "digits_cnn.json").read_text())
    doc["model"] = str(EXAMPLES / doc["model"])
    doc["train"] = {**doc["train"], "epochs": 1, "max_steps": 400, "batch_size": 16, **train}
    doc["checkpoint"] = {"every": 40, "keep": 2}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    return path


def _start(*args, db):
    return start_run(*args, db=db, OMP_NUM_THREADS="1")


def _follow_until(proc, predicate):
    """Read events until predicate(event) is true; returns the events seen."""
    seen = []
    for ev in parse_events(proc.stdout):
        seen.append(ev)
        if predicate(ev):
            return seen
    raise AssertionError(f"stream ended first: {proc.stderr.read()[-2000:]}")


def test_sigterm_stops_gracefully_with_a_checkpoint_then_resumes_with_the_clock_running_on(tmp_path, db_path):
    proc = _start(_spec_file(tmp_path, max_steps=400), db=db_path)
    events = _follow_until(proc, lambda e: e["event"] == "progress" and e["step"] >= 30)
    run_id = events[0]["run_id"]
    proc.send_signal(signal.SIGTERM)
    rest = _follow_until(proc, lambda e: e["event"] == "run_ended")
    assert proc.wait(60) == 130
    store = RunStore(db_path)
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and rest[-1]["status"] == "stopped"
    stop = store.last_checkpoint(run_id)
    assert stop["tag"] == "stop" and stop["step"] == run["summary"]["steps"]
    assert store.series_summaries(run_id)["train/loss"]["last_step"] == stop["step"]
    before = checkpoint.load(stop["path"])["elapsed_s"]
    assert 0 < before <= run["summary"]["elapsed_s"]  # the summary is written after the final save

    resumed = _start("--resume", run_id, db=db_path)
    after = _follow_until(resumed, lambda e: e["event"] == "run_ended")
    assert resumed.wait(60) == 0 and after[-1]["status"] == "completed"
    assert next(e for e in after if e["event"] == "run_started")["resumed_from"] == stop["step"]
    progress = [e for e in after if e["event"] == "progress"]
    elapsed = [e["elapsed_s"] for e in progress]
    assert elapsed[0] > before and elapsed == sorted(elapsed)  # the clock continues from the stop
    assert progress[-1]["step"] == 400 and progress[-1]["eta_s"] == 0
    assert all(e["eta_s"] is not None and e["eta_s"] >= 0 for e in progress[:-1])
    assert store.get_run(run_id)["summary"]["elapsed_s"] >= elapsed[-1] - 0.01
    assert store.series(run_id, "train/loss")[0].tolist() == list(range(1, 401))


def test_event_stream_matches_the_store(tmp_path, db_path):
    proc = _start(_spec_file(tmp_path, max_steps=60), db=db_path)
    events = _follow_until(proc, lambda e: e["event"] == "run_ended")
    proc.wait(60)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "log" and "run_started" in kinds and kinds[-1] == "run_ended"
    assert {"metrics", "progress", "checkpoint"} <= set(kinds)
    streamed = [s for e in events if e["event"] == "metrics" for s in e["points"].get("train/loss", [[]])[0]]
    steps = RunStore(db_path).series(events[-1]["run_id"], "train/loss")[0]
    assert streamed == steps.tolist() == list(range(1, 61))


@pytest.mark.parametrize("status", ["completed"])
def test_resume_of_a_completed_run_is_refused(db_path, status):
    from engine.errors import StoreError

    rid, st = execute(db_path, example("wine_csv", train={"epochs": 1}))
    assert st == status
    with pytest.raises(
        StoreError, match=f"run {rid} is completed; only stopped, crashed, failed runs can be resumed"
    ):
        execute(db_path, resume_run=rid)
