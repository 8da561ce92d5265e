"""What a resume restores besides the weights: every random generator's state (through a real,
weights-only checkpoint file), also from checkpoints written before that state was complete;
and the contexts a task may be given all implement its one protocol."""

from __future__ import annotations

import random

import numpy as np
import torch

from engine import checkpoint
from engine.runner import execute
from engine.seed import capture_rng, restore_rng, seed_everything
from engine.store import RunStore
from tests.conftest import example


def _draw() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_every_generator_continues_where_the_checkpoint_left_it(tmp_path):
    seed_everything(7)
    _draw()
    path = checkpoint.save_atomic({"rng": capture_rng()}, tmp_path / "c.pt")
    expected = _draw()
    seed_everything(8)  # anything else in between
    restore_rng(checkpoint.load(path)["rng"])  # weights_only: the states are tensors and builtins
    assert _draw() == expected


def _dropout_spec(**train) -> dict:
    spec = example("wine_csv", train={"epochs": 1, "max_steps": 16, **train}, checkpoint={"every": 8})
    assert any(n["op"] == "Dropout" for n in spec["model"]["nodes"])  # draws random numbers every step
    return spec


def test_a_checkpoint_with_only_the_torch_state_still_resumes_the_same_curve(db_path):
    store = RunStore(db_path)
    whole, status = execute(store, _dropout_spec())
    assert status == "completed"
    reference = store.series(whole, "train/loss")[1]

    halfway = next(c for c in store.checkpoints(whole) if c["step"] == 8)
    state = checkpoint.load(halfway["path"])
    state["rng"] = state["rng"]["torch"]  # as written before engine.seed: torch's CPU state alone
    old = checkpoint.save_atomic(state, db_path.parent / "old.pt")
    rid = store.create_run(_dropout_spec())
    store.add_checkpoint(rid, 8, old, "stop")
    store.finish_run(rid, "stopped")
    assert execute(store, resume_run=rid) == (rid, "completed")
    steps, losses, _ = store.series(rid, "train/loss")
    assert steps.tolist() == list(range(9, 17))
    np.testing.assert_allclose(losses, reference[8:], rtol=1e-5, atol=1e-6)


def test_every_context_a_task_gets_implements_the_task_protocol(db_path):
    from engine.events import EventStream
    from engine.runner import CpuShare, FollowerContext, Recorder, RunContext, claim_run
    from engine.tasks.context import TaskContext
    from engine.tasks.prune import PhaseContext

    spec = _dropout_spec()
    follower = FollowerContext(spec)
    assert isinstance(follower, TaskContext) and not follower.is_main
    assert follower.save_checkpoint({}, 1) is None and follower.get_run(1) is None
    follower.request_stop()
    assert follower.stop_requested

    store = RunStore(db_path)
    claim = claim_run(store, spec=spec)
    events = EventStream(None)
    ctx = RunContext(store, claim, events, Recorder(store, claim, events), CpuShare(1))
    assert isinstance(ctx, TaskContext) and ctx.is_main and ctx.get_run(claim.run_id)["id"] == claim.run_id
    assert isinstance(PhaseContext(ctx, spec, 0, 10, 0.0, last=True), TaskContext)
    ctx.close()


def test_a_resumed_distill_run_keeps_one_teacher_measurement(tmp_path_factory):
    import json

    from engine.spec import validate_spec
    from tests.conftest import EXAMPLES
    from tests.engine.trained_parent import digits_cnn

    db, teacher_id = digits_cnn(tmp_path_factory)
    doc = json.loads((EXAMPLES / "digits_cnn_distill.json").read_text())
    doc["distill"]["teacher"] = teacher_id
    doc["train"] = {**doc.get("train", {}), "epochs": 1}
    store = RunStore(db)
    run_id, status = execute(store, validate_spec(doc, base_dir=EXAMPLES))
    assert status == "completed"
    store.finish_run(run_id, "stopped")
    assert execute(store, resume_run=run_id) == (run_id, "completed")  # straight to the final evaluation
    assert store.series_summaries(run_id)["teacher/accuracy"]["count"] == 1
