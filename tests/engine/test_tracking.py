"""The tracking API (`import trainbench`) and script runs: real scripts in real processes,
started from the command line and directly, killed with SIGKILL, run on two gloo processes
through the elastic launcher; and the API's own behaviour in this process."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from engine import capsule
from engine.scripts import tracking_import_path
from engine.store import HEARTBEAT_S, STALE_S, RunStore, run_alive
from tests.conftest import EXAMPLES, ROOT, trainbench, wait_for

HANG_S = 120  # hang detector only: a healthy wait ends far sooner


def script_env(db: Path) -> dict:
    """The environment of a script run directly, as a user's shell would have it once
    Trainbench is installed (here: the source tree and, if needed, the import name's shim)."""
    path = [str(ROOT), tracking_import_path(), os.environ.get("PYTHONPATH")]
    return {
        **os.environ,
        "TRAINBENCH_DB": str(db),
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "PYTHONUNBUFFERED": "1",
    }


def write(path: Path, code: str) -> Path:
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


@pytest.fixture
def tb(monkeypatch):
    """`import trainbench` in this process, as a user's script does it."""
    shim = tracking_import_path()
    if shim:
        monkeypatch.syspath_prepend(shim)
    module = importlib.import_module("trainbench")
    yield module
    module.finish()  # a test that failed half-way leaves no run open in this process


# ------------------------------------------------------------------ scripts from the command line


def test_example_script_from_the_cli_trains_with_curves_capsule_and_artifact(db_path):
    out = trainbench(
        "run", "--script", EXAMPLES / "train_script.py", "--", "--epochs", "2", "--lr", "0.004", db=db_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(trainbench("runs", "--json", db=db_path).stdout)
    assert [(r["kind"], r["status"]) for r in runs] == [("script", "completed")]
    run = runs[0]
    assert run["name"] == "digits-script"
    assert run["config"] == {"lr": 0.004, "epochs": 2, "batch": 64, "seed": 0}  # the argparse Namespace
    store = RunStore(db_path, readonly=True)
    steps, loss, _ = store.series(run["id"], "train/loss")
    assert len(steps) == 2 * 22 and np.all(np.diff(steps) > 0) and loss[-1] < loss[0]
    accuracy = store.series(run["id"], "val/accuracy")[1]
    assert len(accuracy) == 2 and accuracy[-1] > 0.8
    assert run["summary"]["val/accuracy"] == pytest.approx(accuracy[-1])
    (first,) = store.capsules(run["id"])
    assert first["argv"][-4:] == ["--epochs", "2", "--lr", "0.004"]
    assert first["torch"]["version"].startswith("2.") and first["torch"].get("imported", True)
    assert "numpy" in first["packages"] and first["python"]["version"] == sys.version.split()[0]
    shown = json.loads(trainbench("show", str(run["id"]), "--json", db=db_path).stdout)
    assert [a["name"] for a in shown["artifacts"]] == ["digits_mlp.pt"]
    assert "script ended (exit code 0)" in (store.artifacts_dir(run["id"]) / "run.log").read_text()


def test_script_output_exit_code_and_arguments_reach_the_run(db_path, tmp_path):
    script = write(
        tmp_path / "fails.py",
        """
        import sys
        import trainbench
        run = trainbench.init(config={"args": sys.argv[1:]})
        for step in range(5):
            run.log({"x": step * 2.0})
        print("to stdout")
        print("to stderr", file=sys.stderr)
        raise ValueError("bad batch " + sys.argv[1])
        """,
    )
    out = trainbench("run", "--script", script, "--", "7", "--flag", db=db_path)
    assert out.returncode == 1
    assert "to stdout" in out.stdout and "to stderr" in out.stderr  # passed through to the terminal
    store = RunStore(db_path, readonly=True)
    run = store.list_runs()[0]
    assert run["status"] == "failed" and "ValueError: bad batch 7" in run["error"]
    assert run["spec"]["config"] == {"args": ["7", "--flag"]} and run["spec"]["script"]["args"] == [
        "7",
        "--flag",
    ]
    assert store.series(run["id"], "x")[1].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    log = (store.artifacts_dir(run["id"]) / "run.log").read_text()
    assert "to stdout" in log and "to stderr" in log
    assert f"run {run['id']} failed: " in out.stderr


def test_a_command_without_the_api_is_a_run_too(db_path, tmp_path):
    out = trainbench("run", "--script", "sh", "--", "-c", "echo hello; exit 3", db=db_path)
    assert out.returncode == 1
    run = RunStore(db_path, readonly=True).list_runs()[0]
    assert run["kind"] == "script" and run["status"] == "failed"
    assert run["spec"]["script"]["command"] == "sh" and "exited with code 3" in run["error"]
    missing = trainbench("run", "--script", tmp_path / "nope.py", db=db_path)
    assert missing.returncode == 2 and "script.file" in missing.stderr and "is not a file" in missing.stderr
    assert len(RunStore(db_path, readonly=True).list_runs()) == 1  # refused before a run row exists


def test_stop_sends_sigint_and_the_script_records_stopped(db_path, tmp_path):
    script = write(
        tmp_path / "long.py",
        """
        import time
        import trainbench
        with trainbench.init() as run:
            for step in range(10**6):
                run.log({"x": float(step)})
                if step == 3:
                    print("ready", flush=True)
                time.sleep(0.01)
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", "--script", str(script)],
        cwd=ROOT,
        env={**os.environ, "TRAINBENCH_DB": str(db_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)  # what the app's Stop sends the engine process
        _, err = proc.communicate(timeout=HANG_S)
    finally:
        proc.kill()
    store = RunStore(db_path, readonly=True)
    run = store.list_runs()[0]
    assert run["status"] == "stopped", err[-2000:]
    assert "sending SIGINT" in (store.artifacts_dir(run["id"]) / "run.log").read_text()
    assert store.series_summaries(run["id"])["x"]["count"] >= 4


# ------------------------------------------------------------------ kill -9


def _forever(tmp_path: Path) -> Path:
    return write(
        tmp_path / "forever.py",
        """
        import os, sys, time
        import trainbench
        run = trainbench.init(name="forever")
        open(sys.argv[1], "w").write(str(os.getpid()))
        for step in range(10**9):
            run.log({"value": step * 0.5})
            time.sleep(0.002)
        """,
    )


def test_kill_9_of_a_script_run_directly_is_crashed_with_its_flushed_points(db_path, tmp_path):
    pid_file = tmp_path / "pid"
    proc = subprocess.Popen([sys.executable, str(_forever(tmp_path)), str(pid_file)], env=script_env(db_path))
    try:
        wait_for(db_path.exists, "the run store")  # a read-only open of a missing file stays empty
        store = RunStore(db_path, readonly=True)
        wait_for(
            lambda: store.list_runs() and store.series_summaries(store.list_runs()[0]["id"]).get("value"),
            "points",
        )
        run_id = store.list_runs()[0]["id"]
        # Another host would see the run through its heartbeats alone: fresh while it lives…
        wait_for(
            lambda: store.get_run(run_id)["heartbeat_at"] > store.get_run(run_id)["started_at"], "a heartbeat"
        )
        assert run_alive(None, "other-host", None, store.get_run(run_id)["heartbeat_at"], now=time.time())
        kept = store.series_summaries(run_id)["value"]["count"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(HANG_S)
    row = store.get_run(run_id)
    assert row["status"] == "running" and row["pid"] == proc.pid  # reads never write
    # …and dead once its last heartbeat is STALE_S + HEARTBEAT_S (10 s) old; on this host at once.
    beat = row["heartbeat_at"]
    assert not run_alive(None, "other-host", None, beat, now=beat + STALE_S + HEARTBEAT_S + 0.01)
    assert RunStore(db_path).reap() == [run_id]
    crashed = store.get_run(run_id)
    assert crashed["status"] == "crashed" and f"pid {proc.pid}" in crashed["error"]
    steps, values, _ = store.series(run_id, "value")
    assert len(steps) >= kept and steps.tolist() == list(range(len(steps)))  # a prefix, none lost inside
    assert np.array_equal(values, steps * 0.5)


def test_kill_9_of_a_launched_script_is_crashed_at_once(db_path, tmp_path):
    pid_file = tmp_path / "pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", "--script", str(_forever(tmp_path)), "--", str(pid_file)],
        cwd=ROOT,
        env={**os.environ, "TRAINBENCH_DB": str(db_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), "the script's start")
        store = RunStore(db_path, readonly=True)
        run_id = store.list_runs()[0]["id"]
        wait_for(lambda: store.series_summaries(run_id).get("value"), "points")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        _, err = proc.communicate(timeout=HANG_S)
    finally:
        proc.kill()
    run = store.get_run(run_id)
    assert proc.returncode == 1 and run["status"] == "crashed", err[-2000:]
    assert "killed by SIGKILL" in run["error"]
    steps, values, _ = store.series(run_id, "value")
    assert len(steps) and steps.tolist() == list(range(len(steps))) and np.array_equal(values, steps * 0.5)


# ------------------------------------------------------------------ several processes


def test_two_gloo_processes_through_the_elastic_launcher_log_once(db_path, tmp_path):
    script = write(
        tmp_path / "ddp.py",
        """
        import os, sys
        import torch
        import torch.distributed as dist
        import trainbench

        dist.init_process_group("gloo")
        rank = dist.get_rank()
        torch.set_num_threads(1)
        with trainbench.init(config={"world": dist.get_world_size()}) as run:
            for step in range(20):
                total = torch.tensor([float(rank + 1)])
                dist.all_reduce(total)
                run.log({"rank": float(rank), "total": total})
            open(os.path.join(sys.argv[1], f"rank{rank}"), "w").write(str(run.id))
        dist.destroy_process_group()
        """,
    )
    out = trainbench(
        "run", "--script", script, "--set", "hardware.nproc_per_node=2", "--set", "hardware.threads=1",
        "--", tmp_path, db=db_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    store = RunStore(db_path, readonly=True)
    (run,) = store.list_runs()
    assert run["status"] == "completed" and run["spec"]["config"] == {"world": 2}
    assert sorted(store.series_summaries(run["id"])) == ["rank", "sys/rss_mb", "total"]  # no rank1/…
    steps, ranks, _ = store.series(run["id"], "rank")
    assert steps.tolist() == list(range(20)) and set(ranks.tolist()) == {0.0}  # once, by rank 0
    assert set(store.series(run["id"], "total")[1].tolist()) == {3.0}
    assert (tmp_path / "rank0").read_text() == str(run["id"]) and (tmp_path / "rank1").read_text() == "None"
    assert store.capsules(run["id"])[0]["world_size"] == 2


# ------------------------------------------------------------------ the API in this process


def test_context_manager_records_failure_stop_and_completion(tb, db_path):
    with pytest.raises(RuntimeError), tb.init(name="boom", db=db_path) as run:
        run.log({"loss": 1.0})
        raise RuntimeError("exploded at step 1")
    with pytest.raises(KeyboardInterrupt), tb.init(name="ctrl-c", db=db_path):
        raise KeyboardInterrupt
    with tb.init(name="fine", db=db_path, config=Namespace(lr=0.1, layers=[64, 32])) as ok:
        ok.log({"loss": 2.0}, step=10)
        ok.log({"loss": 1.5})  # the step after the last one given
        ok.summary["best"] = 1.5
    store = RunStore(db_path, readonly=True)
    rows = {r["name"]: r for r in store.list_runs()}
    assert rows["boom"]["status"] == "failed" and "RuntimeError: exploded at step 1" in rows["boom"]["error"]
    assert rows["ctrl-c"]["status"] == "stopped"
    assert rows["fine"]["status"] == "completed" and rows["fine"]["summary"]["best"] == 1.5
    assert rows["fine"]["spec"]["config"] == {"lr": 0.1, "layers": [64, 32]}
    assert store.series(ok.id, "loss")[0].tolist() == [10, 11]


def test_tensors_numbers_and_bad_values(tb, db_path):
    import torch

    run = tb.init(db=db_path)
    loss = (torch.ones(3, requires_grad=True) * 2).sum()
    run.log({"loss": loss, "count": 3, "np": np.float32(0.25), "flag": True})
    with pytest.warns(UserWarning, match="'text' is a str"):
        run.log({"text": "nope", "loss": torch.tensor(1.0)})
    run.summary["acc"] = torch.tensor(0.5)
    run.finish()
    run.finish()  # a second call does nothing
    store = RunStore(db_path, readonly=True)
    assert store.series(run.id, "loss")[1].tolist() == [6.0, 1.0]
    assert [store.series(run.id, k)[1].tolist() for k in ("count", "np", "flag")] == [[3.0], [0.25], [1.0]]
    assert "text" not in store.series_summaries(run.id)
    assert store.get_run(run.id)["summary"]["acc"] == 0.5
    with pytest.raises(ValueError, match="status must be one of"):
        tb.init(db=db_path).finish("done")


def test_log_artifact_copies_beside_the_run(tb, db_path, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\1\2\3")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("a")
    with tb.init(db=db_path) as run:
        copy = run.log_artifact(tmp_path / "weights.bin")
        run.log_artifact(tmp_path / "folder", name="notes")
        with pytest.raises(FileNotFoundError, match="missing.txt does not exist"):
            run.log_artifact(tmp_path / "missing.txt")
    assert copy.read_bytes() == b"\1\2\3"
    listed = capsule.artifacts(RunStore(db_path, readonly=True), run.id)
    assert [a["name"] for a in listed] == ["notes/a.txt", "weights.bin"]


def test_only_rank_zero_writes_unless_asked(tb, db_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    run = tb.init(db=db_path)
    run.log({"x": 1.0})
    run.finish()
    assert run.id is None and RunStore(db_path, readonly=True).list_runs() == []
    with pytest.raises(tb.run.TrainbenchError, match="needs torch.distributed initialised"):
        tb.init(db=db_path, rank_zero_only=False)


def test_import_trainbench_is_light():
    probe = "import trainbench, sys; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'PySide6', 'pyqtgraph'}))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=script_env(Path("unused.db")),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_a_stopped_script_run_resumes_on_its_curve(db_path, tmp_path):
    script = write(
        tmp_path / "twice.py",
        """
        import os, sys, time
        import trainbench
        marker = sys.argv[1]
        first = not os.path.exists(marker)
        open(marker, "a").close()
        with trainbench.init() as run:
            for i in range(10**6 if first else 5):
                run.log({"x": float(run.step)})
                if first and i == 3:
                    print("ready", flush=True)
                time.sleep(0.01 if first else 0)
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", "--script", str(script), "--", str(tmp_path / "marker")],
        cwd=ROOT,
        env={**os.environ, "TRAINBENCH_DB": str(db_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)  # Ctrl-C in the terminal
        proc.wait(HANG_S)
    finally:
        proc.kill()
    store = RunStore(db_path, readonly=True)
    (run,) = store.list_runs()
    assert run["status"] == "stopped"
    before = store.series_summaries(run["id"])["x"]["count"]
    out = trainbench("run", "--resume", str(run["id"]), db=db_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert store.get_run(run["id"])["status"] == "completed" and len(store.capsules(run["id"])) == 2
    steps, values, _ = store.series(run["id"], "x")
    assert steps.tolist() == list(range(before + 5)) and values.tolist() == steps.tolist()
