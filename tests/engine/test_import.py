"""Imports from TensorBoard and MLflow: logs written here by SummaryWriter and by mlflow itself,
imported through the command line, read back equal, and imported again without duplicates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.store import RunStore
from tests.conftest import trainbench

STEPS = 30


def _tensorboard_logs(logdir, runs=("baseline", "wide/lr0.1"), start=0):
    """Two runs (one nested a folder deeper) with two scalar tags, wall times chosen here."""
    from torch.utils.tensorboard import SummaryWriter

    written = {}
    for r, name in enumerate(runs):
        writer = SummaryWriter(log_dir=str(logdir / name))
        for step in range(start, start + STEPS):
            wall = 1_700_000_000.0 + 10 * step + r
            for tag, value in (("train/loss", 1 / (step + 1) + r), ("val/accuracy", step / 100)):
                writer.add_scalar(tag, value, step, walltime=wall)
                written.setdefault((name, tag), []).append((step, value, wall))
        writer.close()
    return written


def test_tensorboard_import_keeps_tags_steps_values_and_wall_times(db_path, tmp_path):
    pytest.importorskip("tensorboard")
    logdir = tmp_path / "logs"
    written = _tensorboard_logs(logdir)
    out = trainbench("import", "tensorboard", logdir, "--json", db=db_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(json.loads(out.stdout)["created"]) == 2 and "2 run(s) imported" in out.stderr
    store = RunStore(db_path, readonly=True)
    runs = {r["name"]: r for r in store.list_runs()}
    assert sorted(runs) == ["baseline", "wide/lr0.1"]
    for (name, tag), points in written.items():
        steps, values, walls = store.series(runs[name]["id"], tag)
        assert steps.tolist() == [p[0] for p in points]
        assert np.array_equal(values, np.float32([p[1] for p in points]))  # TensorBoard keeps float32
        assert np.allclose(walls, [p[2] for p in points], rtol=0, atol=1e-6)
    run = runs["baseline"]
    assert (run["kind"], run["status"]) == ("imported", "completed")
    assert run["spec"]["import"]["from"] == "tensorboard" and run["started_at"] == 1_700_000_000.0

    again = json.loads(trainbench("import", "tensorboard", logdir, "--json", db=db_path).stdout)
    assert (again["created"], again["updated"], sorted(again["unchanged"])) == (
        [],
        [],
        sorted(r["id"] for r in runs.values()),
    )
    _tensorboard_logs(logdir, runs=("baseline",), start=STEPS)  # the run went on: a new event file
    third = json.loads(trainbench("import", "tensorboard", logdir, "--json", db=db_path).stdout)
    assert third["updated"] == [run["id"]] and len(store.list_runs()) == 2
    assert store.series(run["id"], "train/loss")[0].tolist() == list(range(2 * STEPS))


def test_tensorboard_import_refuses_what_it_cannot_read(db_path, tmp_path):
    pytest.importorskip("tensorboard")
    missing = trainbench("import", "tensorboard", tmp_path / "nowhere", db=db_path)
    assert missing.returncode == 1 and "not a folder" in missing.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "events.out.tfevents.1.host").write_bytes(b"\x10\0\0\0\0\0\0\0garbage" * 10)
    broken = trainbench("import", "tensorboard", tmp_path / "bad", db=db_path)
    assert broken.returncode == 1 and "cannot be read as a TensorBoard event file" in broken.stderr
    assert "Traceback" not in broken.stderr


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_mlflow_import_keeps_params_metrics_and_tags(db_path, tmp_path, kind, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    uri = (tmp_path / "mlruns").as_uri() if kind == "file" else f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 writes its folder store only when asked
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("sweep")
    written = {}
    for lr in (0.1, 0.01):
        with mlflow.start_run(run_name=f"lr-{lr}") as active:
            mlflow.log_params({"lr": lr, "optimizer": "adam", "layers": 3})
            mlflow.set_tag("team", "vision")
            for step in range(STEPS):
                mlflow.log_metric(
                    "loss", 1.0 / (step + 1) + lr, step=step, timestamp=1_700_000_000_000 + step * 1000
                )
            written[active.info.run_id] = lr
    out = trainbench("import", "mlflow", uri, "--json", db=db_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(json.loads(out.stdout)["created"]) == 2
    store = RunStore(db_path, readonly=True)
    runs = {r["spec"]["import"]["run"]: r for r in store.list_runs()}
    assert set(runs) == set(written)
    for mlflow_id, lr in written.items():
        run = runs[mlflow_id]
        assert run["name"] == f"lr-{lr}" and run["status"] == "completed" and run["kind"] == "imported"
        assert run["spec"]["config"] == {"layers": 3, "lr": lr, "optimizer": "adam"}  # numbers as numbers
        assert run["spec"]["import"]["tags"]["team"] == "vision" and run["tags"] == ["mlflow:sweep"]
        steps, values, walls = store.series(run["id"], "loss")
        assert steps.tolist() == list(range(STEPS))
        assert values.tolist() == [1.0 / (s + 1) + lr for s in range(STEPS)]
        assert walls.tolist() == [1_700_000_000 + s for s in range(STEPS)]
    again = json.loads(trainbench("import", "mlflow", uri, "--json", db=db_path).stdout)
    assert again["created"] == [] and len(again["unchanged"]) == 2 and len(store.list_runs()) == 2
    listed = json.loads(trainbench("runs", "--json", "--kind", "imported", db=db_path).stdout)
    assert {r["config"]["lr"] for r in listed} == {0.1, 0.01}
