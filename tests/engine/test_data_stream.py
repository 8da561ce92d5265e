"""A streamed data set (an image folder decoded and augmented in DataLoader workers) keeps the
engine's exactness: a resumed run and a 2-process DDP run reproduce the single uninterrupted
run's loss curve to 1e-5 on CPU, since every step's samples and augmentations follow from
(seed, step) alone; and the memory-mapped token path gives the very windows of the resident one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine import checkpoint
from engine.runner import execute
from engine.spec import validate_spec
from engine.store import RunStore
from tests.conftest import trainbench
from tests.engine.test_data_formats import mlp
from tests.engine.test_data_images import folder

STEPS = 8
AUGMENT = {
    "horizontal_flip": True,
    "color_jitter": {"brightness": 0.4, "contrast": 0.4},
    "random_erasing": {"p": 0.5},
}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBENCH_CACHE", str(tmp_path / "cache"))


def spec_doc(root, **train) -> dict:
    return {
        "name": "streamed",
        "model": mlp([3, 8, 8], 2, hidden=16),
        "data": {"source": "images", "path": str(root), "augment": AUGMENT, "num_workers": 1},
        "train": {"max_steps": STEPS, "batch_size": 8, "grad_accum": 2, "eval_every": 4, **train},
        "checkpoint": {"every": 4},
        "optim": {"lr": 0.01},
        "hardware": {"threads": 1},
    }


def losses(store: RunStore, run_id: int) -> np.ndarray:
    steps, values, _ = store.series(run_id, "train/loss")
    return values[np.argsort(steps, kind="stable")]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return folder(tmp_path_factory.mktemp("stream") / "imgs", n=80)


def test_a_resumed_streamed_run_continues_the_same_curve(images, db_path):
    store = RunStore(db_path)
    whole, status = execute(store, validate_spec(spec_doc(images)))
    assert status == "completed", store.get_run(whole)["error"]
    reference = losses(store, whole)
    assert len(reference) == STEPS

    halfway = next(c for c in store.checkpoints(whole) if c["step"] == 4)
    rid = store.create_run(validate_spec(spec_doc(images)))
    store.add_checkpoint(
        rid, 4, checkpoint.save_atomic(checkpoint.load(halfway["path"]), db_path.parent / "half.pt"), "stop"
    )
    store.finish_run(rid, "stopped")
    assert execute(store, resume_run=rid) == (rid, "completed")
    steps, values, _ = store.series(rid, "train/loss")
    assert steps.tolist() == list(range(5, STEPS + 1))
    np.testing.assert_allclose(values, reference[4:], rtol=0, atol=1e-5)


def test_two_ddp_processes_on_a_streamed_set_train_exactly_like_one(images, tmp_path, db_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps(spec_doc(images)))
    out = trainbench("run", one, "--quiet", db=db_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    two = tmp_path / "two.json"
    doc = spec_doc(images, batch_size=4)
    doc["hardware"] = {"nproc_per_node": 2, "strategy": "ddp"}
    two.write_text(json.dumps(doc))
    out = trainbench("run", two, "--quiet", db=db_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    store = RunStore(db_path)
    single, ddp = sorted(store.list_runs(), key=lambda r: r["id"])
    assert (
        ddp["summary"]["world_size"] == 2
        and ddp["summary"]["global_batch"] == single["summary"]["global_batch"]
    )
    np.testing.assert_allclose(losses(store, ddp["id"]), losses(store, single["id"]), rtol=0, atol=1e-5)
    assert ddp["summary"]["val/loss"] == pytest.approx(single["summary"]["val/loss"], abs=1e-5)


def test_memory_mapped_windows_equal_the_resident_ones(tmp_path, monkeypatch):
    import torch

    from engine.data import load_dataset, tokens
    from engine.tasks.batches import BatchPlan, WindowBatches
    from tests.engine.test_data_formats import data
    from tests.engine.test_data_text import CORPUS

    (tmp_path / "c.txt").write_text(CORPUS)
    ds = load_dataset(data(source="text", path=str(tmp_path / "c.txt"), context=16))
    spec = {"train": {"seed": 1, "eval_batch_size": 8, "eval_batches": 0}}
    plan = BatchPlan(ds.info().train_samples, 4, 1, 1)
    resident = WindowBatches(ds, plan, spec, torch.device("cpu"))
    monkeypatch.setattr(tokens, "RESIDENT_TOKENS", 0)
    mapped = WindowBatches(ds, plan, spec, torch.device("cpu"))
    assert isinstance(resident.tokens, torch.Tensor) and isinstance(mapped.tokens, np.ndarray)
    for step in (0, 7, 123):
        for (a, b), (c, d) in zip(resident.micro_batches(step), mapped.micro_batches(step), strict=True):
            assert torch.equal(a, c) and torch.equal(b, d)
    assert all(
        torch.equal(a[0], b[0]) for a, b in zip(resident.validation(), mapped.validation(), strict=True)
    )


def test_ctrl_c_to_the_process_group_stops_a_streamed_run_gracefully(images, tmp_path, db_path):
    """The terminal's Ctrl-C reaches the DataLoader workers too: they leave it to the run."""
    import os
    import signal
    import subprocess
    import sys

    from engine.events import parse_events
    from tests.conftest import ROOT

    doc = spec_doc(images, max_steps=100_000, eval_every=0)
    doc["checkpoint"] = {"every": 0}
    (tmp_path / "s.json").write_text(json.dumps(doc))
    env = {**os.environ, "TRAINBENCH_DB": str(db_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", str(tmp_path / "s.json"), "--events", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        for ev in parse_events(proc.stdout):
            if ev["event"] == "progress" and ev["step"] >= 16:
                os.killpg(proc.pid, signal.SIGINT)
                break
        assert proc.wait(120) == 130, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run = RunStore(db_path).list_runs(limit=1)[0]
    assert run["status"] == "stopped", run["error"]
    assert RunStore(db_path).last_checkpoint(run["id"])["tag"] == "stop"
