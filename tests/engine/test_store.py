"""The run store on a real SQLite file: metrics layout, migrations, concurrent writers,
crash detection, one writer per run, reads that never write, and atomic checkpoints."""

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from engine import checkpoint
from engine.errors import StoreError
from engine.runner import MetricBatcher
from engine.store import MIGRATIONS, STALE_S, ClaimLost, RunStore


def test_schema_version_and_reopen(db_path):
    RunStore(db_path).close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    RunStore(db_path).close()  # migrating twice is a no-op


def test_newer_database_is_refused(db_path):
    RunStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StoreError, match="schema 99 is newer"):
        RunStore(db_path)


def test_not_a_database(tmp_path):
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="junk.db: not an SQLite database"):
        RunStore(bad)


def test_metrics_round_trip_and_summaries(store):
    rid = store.create_run({"name": "r"})
    rng = np.random.default_rng(0)
    chunks = [
        (np.arange(i, i + 100), rng.normal(size=100), np.full(100, 1e9 + i)) for i in range(0, 1000, 100)
    ]
    for s, v, w in chunks:
        store.add_metrics(rid, {"train/loss": (s, v, w)})
    steps, vals, walls = store.series(rid, "train/loss")
    all_v = np.concatenate([c[1] for c in chunks])
    assert np.array_equal(steps, np.arange(1000)) and np.array_equal(vals, all_v)
    summ = store.series_summaries(rid)["train/loss"]
    assert summ["count"] == 1000 and summ["min"] == all_v.min() and summ["max"] == all_v.max()
    assert summ["last"] == all_v[-1] and summ["first_step"] == 0 and summ["last_step"] == 999
    *_, seq = store.series_since(rid, "train/loss", after_seq=7)
    assert seq == 9 and len(store.series(rid, "train/loss", after_seq=7)[0]) == 200


def test_nan_points_are_kept_but_not_in_min_max(store):
    rid = store.create_run({"name": "r"})
    store.add_metrics(rid, {"m": (np.arange(3), np.array([1.0, np.nan, 3.0]), np.zeros(3))})
    assert np.isnan(store.series(rid, "m")[1][1])
    assert (store.series_summaries(rid)["m"]["min"], store.series_summaries(rid)["m"]["max"]) == (1.0, 3.0)


def test_truncate_drops_points_after_a_step(store):
    rid = store.create_run({"name": "r"})
    for i in range(0, 300, 50):
        store.add_metrics(rid, {"m": (np.arange(i, i + 50), np.arange(i, i + 50, dtype=float), np.zeros(50))})
    store.truncate_metrics(rid, after_step=123)
    steps, vals, _ = store.series(rid, "m")
    assert steps[-1] == 123 and len(steps) == 124 and store.series_summaries(rid)["m"]["max"] == 123.0
    store.add_metrics(rid, {"m": (np.array([124]), np.array([5.0]), np.zeros(1))})
    assert store.series(rid, "m")[0][-1] == 124


def test_batcher_drains_everything_once():
    b = MetricBatcher()
    for i in range(10):
        b.add(i, {"a": i * 1.0, "b": -i})
    out = b.drain()
    assert out["a"][0].tolist() == list(range(10)) and out["b"][1][-1] == -9 and b.drain() == {}


def _writer(db, n_runs, n_chunks, errors):
    try:
        s = RunStore(db)
        for _ in range(n_runs):
            rid = s.create_run({"name": f"w{os.getpid()}"})
            s.start_run(rid)
            for c in range(n_chunks):
                s.add_metrics(
                    rid,
                    {
                        "loss": (np.arange(c * 50, c * 50 + 50), np.random.rand(50), np.zeros(50)),
                        "acc": (np.array([c]), np.array([0.5]), np.zeros(1)),
                    },
                )
                s.heartbeat(rid)
                s.list_runs(limit=5)  # readers interleave with writers
            s.finish_run(rid, "completed", {"chunks": n_chunks})
    except Exception as err:  # noqa: BLE001
        errors.put(repr(err))


def test_concurrent_writers_from_four_processes(db_path):
    RunStore(db_path).close()
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(db_path), 3, 60, errors)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    assert errors.empty(), errors.get()
    s = RunStore(db_path)
    runs = s.list_runs()
    assert len(runs) == 12 and all(r["status"] == "completed" for r in runs)
    assert all(s.series_summaries(r["id"])["loss"]["count"] == 3000 for r in runs)
    assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_dead_process_is_marked_crashed(store):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    rid = store.create_run({"name": "r"})
    store.start_run(rid, pid=child.pid)
    assert store.get_run(rid)["status"] == "running"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert store.get_run(rid)["status"] == "running"  # reading changes nothing ...
    assert store.reap() == [rid]  # ... reaping, asked for, does
    run = store.get_run(rid)
    assert run["status"] == "crashed" and f"pid {child.pid}" in run["error"]


def test_a_live_pid_on_this_host_is_never_reaped_however_old_its_heartbeat(store):
    rid = store.create_run({"name": "r"})
    store.start_run(rid, pid=os.getpid())  # alive, but nobody beats the heart
    with store.write() as c:
        c.execute("UPDATE runs SET heartbeat_at=? WHERE id=?", (time.time() - STALE_S - 3600, rid))
    assert store.reap() == [] and store.get_run(rid)["status"] == "running"


def test_a_stale_heartbeat_on_another_host_is_reaped_and_its_writer_refused(store):
    rid = store.create_run({"name": "r"})
    owner = store.start_run(rid, pid=os.getpid())
    with store.write() as c:  # as if another machine had claimed it and gone quiet
        c.execute(
            "UPDATE runs SET host='elsewhere', heartbeat_at=? WHERE id=?", (time.time() - STALE_S - 5, rid)
        )
    assert store.reap() == [rid] and store.get_run(rid)["status"] == "crashed"
    with pytest.raises(ClaimLost, match=f"run {rid} was taken over"):
        store.add_metrics(rid, {"m": (np.arange(1), np.ones(1), np.zeros(1))}, owner=owner)
    assert store.series_summaries(rid) == {}


def test_a_reused_pid_is_not_mistaken_for_the_runs_process(store):
    rid = store.create_run({"name": "r"})
    store.start_run(rid, pid=os.getpid())
    with store.write() as c:  # the pid is alive, but it is not the process that claimed the run
        c.execute("UPDATE runs SET proc_start='another-boot/123' WHERE id=?", (rid,))
    assert store.reap() == [rid]


def test_one_writer_per_run(store, db_path):
    rid = store.create_run({"name": "r"})
    first = store.start_run(rid)
    other = RunStore(db_path)
    with pytest.raises(
        StoreError, match=f"run {rid} is running \\(pid {os.getpid()} on this host\\); stop it"
    ):
        other.start_run(rid, resumable=True)
    store.finish_run(rid, "stopped", owner=first)
    second = other.start_run(rid, resumable=True)  # a resume takes the run over ...
    for write in (
        lambda: store.heartbeat(rid, first),  # ... and the first owner's writes are refused
        lambda: store.add_metrics(rid, {"m": (np.arange(1), np.ones(1), np.zeros(1))}, owner=first),
        lambda: store.add_checkpoint(rid, 1, "x.pt", owner=first),
        lambda: store.update_summary(rid, first, steps=1),
        lambda: store.truncate_metrics(rid, 0, first),
        lambda: store.finish_run(rid, "completed", owner=first),
    ):
        with pytest.raises(ClaimLost):
            write()
    other.heartbeat(rid, second)
    other.finish_run(rid, "completed", owner=second)
    assert store.get_run(rid)["status"] == "completed"
    with pytest.raises(StoreError, match="is completed; only stopped, crashed, failed runs can be resumed"):
        other.start_run(rid, resumable=True)
    other.close()


def test_reads_never_write(store, db_path):
    from engine import run_table

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    parent = store.create_run({"name": "parent"})
    rid = store.create_run({"name": "dead"}, parent_id=parent)
    store.start_run(rid, pid=child.pid)  # its process is gone
    version = store.conn.execute("PRAGMA data_version").fetchone()[0]
    reader = RunStore(db_path, readonly=True)
    reader.get_run(rid), reader.list_runs(), reader.lineage(rid), run_table.run_rows(reader)
    store.get_run(rid), store.list_runs(), store.lineage(rid), run_table.run_rows(store)
    assert store.conn.execute("PRAGMA data_version").fetchone()[0] == version  # nobody committed
    assert store.get_run(rid)["status"] == "running"
    assert reader.reap() == [rid] and store.get_run(rid)["status"] == "crashed"  # only when asked
    reader.close()


def test_lineage_lists_ancestors_nearest_first_and_descendants_depth_first(store):
    root = store.create_run({"name": "root"})
    a = store.create_run({"name": "a"}, parent_id=root)
    b = store.create_run({"name": "b"}, parent_id=root)
    a1 = store.create_run({"name": "a1"}, parent_id=a)
    a1x = store.create_run({"name": "a1x"}, parent_id=a1)
    b1 = store.create_run({"name": "b1"}, parent_id=b)
    up, down = store.lineage(a1x)
    assert [r["id"] for r in up] == [a1, a, root] and down == []
    up, down = store.lineage(root)
    assert up == [] and [r["id"] for r in down] == [a, a1, a1x, b, b1]
    assert down[0]["spec"] == {"name": "a"}  # rows come back parsed like get_run's


def test_a_parent_cycle_does_not_hang_lineage(store):
    a, b = store.create_run({"name": "a"}), store.create_run({"name": "b"})
    with store.write() as c:
        c.execute("UPDATE runs SET parent_id=? WHERE id=?", (b, a))
        c.execute("UPDATE runs SET parent_id=? WHERE id=?", (a, b))
    up, down = store.lineage(a)
    assert [r["id"] for r in up] == [b, a] and [r["id"] for r in down] == [b, a]


def test_delete_run_removes_rows_and_files_only_of_that_run(store):
    keep, gone = store.create_run({"name": "keep"}), store.create_run({"name": "gone"})
    for rid in (keep, gone):
        store.add_metrics(rid, {"m": (np.arange(3), np.ones(3), np.zeros(3))})
        path = store.artifacts_dir(rid) / "c.pt"
        checkpoint.save_atomic({"model": {}}, path)
        store.add_checkpoint(rid, 1, path)
    store.delete_run(gone)
    assert [r["id"] for r in store.list_runs()] == [keep]
    assert not (store.artifacts_root / f"run-{gone}").exists() and store.last_checkpoint(keep)
    assert store.conn.execute("SELECT COUNT(*) FROM metric_chunks").fetchone()[0] == 1


def test_temporary_files_of_an_interrupted_save_are_removed(tmp_path):
    checkpoint.save_atomic({"step": 1}, tmp_path / "step-00000001.pt")
    leftover = tmp_path / "step-00000002.pt.k3j2h1.tmp"
    leftover.write_bytes(b"half a checkpoint")
    assert checkpoint.remove_partial(tmp_path) == [leftover]
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000001.pt"]


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"model": {"w": torch.ones(3)}, "step": 1}, path)

    def dies_midway(obj, fh, *a, **kw):
        fh.write(b"partial bytes")
        raise KeyboardInterrupt  # a kill arriving during the write

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_atomic({"model": {}, "step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_corrupt_or_foreign_checkpoint_says_which_and_why(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(StoreError, match="bad.pt: not a readable checkpoint"):
        checkpoint.load(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(1)}, foreign)
    with pytest.raises(StoreError, match="not a Trainbench checkpoint"):
        checkpoint.load(foreign)


def test_checkpoints_refuse_pickled_code(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save(
        {"format": checkpoint.FORMAT, "model": torch.nn.Linear(2, 2)}, evil
    )  # a whole module: pickled code
    with pytest.raises(StoreError, match="not a readable checkpoint"):
        checkpoint.load(evil)
