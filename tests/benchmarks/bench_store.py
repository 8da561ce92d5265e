"""Run store: metric ingest and read-back, against a one-row-per-point layout and, where they
install, TensorBoard's event files and MLflow's SQLite store — the same points through each.

    python tests/benchmarks/bench_store.py [--points 1000000] [--peer-points 100000]

Also: the cost of opening the 1M-point store (it runs PRAGMA quick_check on open), also while
another connection holds the write lock (readers must not wait); and four processes logging at
once through the real recorder path (MetricBatcher → chunks in BEGIN IMMEDIATE transactions)
with heartbeats and readers interleaved, counting lock errors, then PRAGMA integrity_check.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.errors import StoreError  # noqa: E402
from engine.runner import MetricBatcher  # noqa: E402
from engine.store import RunStore  # noqa: E402

CHUNK = 1000  # points per flush: a run logging 1,000 steps/s flushes about this many a second


def best_of(fn, n=5):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def ours(path: Path, steps, vals, walls) -> tuple[float, float, float]:
    store = RunStore(path)
    rid = store.create_run({"name": "bench"})
    t = time.perf_counter()
    for i in range(0, len(steps), CHUNK):
        store.add_metrics(
            rid, {"train/loss": (steps[i : i + CHUNK], vals[i : i + CHUNK], walls[i : i + CHUNK])}
        )
    ingest = len(steps) / (time.perf_counter() - t)
    # The training thread's side: one dict append per step, drained by the recorder.
    b = MetricBatcher()
    t = time.perf_counter()
    for s in range(200_000):
        b.add(s, {"train/loss": 0.5})
    b.drain()
    batcher = 200_000 / (time.perf_counter() - t)
    store.close()
    fresh = RunStore(path)
    read, (s, v, w) = best_of(lambda: fresh.series(rid, "train/loss"))
    assert np.array_equal(v, vals) and len(s) == len(steps)
    return ingest, read, batcher


def rows(path: Path, steps, vals, walls) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE m (run_id INT, key TEXT, step INT, value REAL, wall REAL)")
    conn.execute("CREATE INDEX m_run_key_step ON m (run_id, key, step)")
    t = time.perf_counter()
    for i in range(0, len(steps), CHUNK):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO m VALUES (1, 'train/loss', ?, ?, ?)",
            zip(
                steps[i : i + CHUNK].tolist(),
                vals[i : i + CHUNK].tolist(),
                walls[i : i + CHUNK].tolist(),
                strict=True,
            ),
        )
        conn.execute("COMMIT")
    ingest = len(steps) / (time.perf_counter() - t)

    def read():
        r = conn.execute(
            "SELECT step, value, wall FROM m WHERE run_id=1 AND key='train/loss' ORDER BY step"
        ).fetchall()
        a = np.array(r)
        return a[:, 0].astype(np.int64), a[:, 1], a[:, 2]

    t_read, _ = best_of(read, 3)
    return ingest, t_read


def tensorboard(folder: Path, steps, vals) -> tuple[float, float] | None:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    t = time.perf_counter()
    w = SummaryWriter(str(folder))
    for s, v in zip(steps.tolist(), vals.tolist(), strict=True):
        w.add_scalar("train/loss", v, s)
    w.close()
    ingest = len(steps) / (time.perf_counter() - t)

    def read():
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        return np.array([e.value for e in acc.Scalars("train/loss")])

    t_read, got = best_of(read, 3)
    assert len(got) == len(steps)
    return ingest, t_read


def mlflow(folder: Path, steps, vals) -> tuple[float, float] | None:
    try:
        import mlflow
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient
    except ImportError:
        return None
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("bench"))
    now = int(time.time() * 1000)
    t = time.perf_counter()
    for i in range(0, len(steps), CHUNK):  # log_batch takes at most 1,000 metrics per call
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric("train_loss", float(v), now, int(s))
                for s, v in zip(steps[i : i + CHUNK], vals[i : i + CHUNK], strict=True)
            ],
        )
    ingest = len(steps) / (time.perf_counter() - t)
    t_read, got = best_of(lambda: client.get_metric_history(run.info.run_id, "train_loss"), 3)
    assert len(got) == len(steps)
    del mlflow
    return ingest, t_read


def _logger(db: str, seconds: float, result):
    """One training process: 2,000 steps/s for `seconds`, through the real recorder path."""
    errors, store, b = 0, RunStore(db), MetricBatcher()
    rid = store.create_run({"name": f"p{os.getpid()}"})
    store.start_run(rid)
    step, t_end, last = 0, time.time() + seconds, time.time()
    while time.time() < t_end:
        for _ in range(20):
            step += 1
            b.add(step, {"train/loss": 1.0 / step, "train/lr": 0.001})
        time.sleep(0.01)
        if time.time() - last >= 0.25:
            try:
                store.add_metrics(rid, b.drain())
                store.heartbeat(rid)
                store.list_runs(limit=10)
            except StoreError:  # "locked by another process for more than ..."
                errors += 1
            last = time.time()
    store.add_metrics(rid, b.drain())
    store.finish_run(rid, "completed")
    result.put((errors, step))


def opening(path: Path) -> tuple[float, float, float]:
    """(open, quick_check alone, read-only open while a writer holds the lock), in seconds."""
    t_open, _ = best_of(lambda: RunStore(path).close())
    conn = sqlite3.connect(path)
    t_check, _ = best_of(lambda: conn.execute("PRAGMA quick_check").fetchone())
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    t_locked, _ = best_of(lambda: RunStore(path, readonly=True).close())
    writer.execute("ROLLBACK")
    return t_open, t_check, t_locked


def concurrency(db: Path, procs: int = 4, seconds: float = 8.0):
    RunStore(db).close()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ps = [ctx.Process(target=_logger, args=(str(db), seconds, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    results = [q.get() for _ in ps]
    conn = sqlite3.connect(db)
    check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    stored = conn.execute("SELECT SUM(count) FROM metric_series").fetchone()[0]
    return sum(r[0] for r in results), sum(r[1] for r in results) * 2, stored, check


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument(
        "--peer-points", type=int, default=100_000, help="points for TensorBoard and MLflow (slow)"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    n = args.points
    steps, vals = np.arange(n, dtype=np.int64), rng.normal(size=n).cumsum()
    walls = time.time() + np.arange(n) * 1e-3
    print(
        f"SQLite {sqlite3.sqlite_version}; load average {os.getloadavg()[0]:.2f}; one series of {n:,} points"
    )

    ing, read, batcher = ours(tmp / "ours.db", steps, vals, walls)
    print(f"trainbench chunks   ingest {ing / 1e6:6.2f} M points/s   read {read * 1e3:8.1f} ms")
    print(f"  training-thread side: MetricBatcher.add {batcher / 1e6:.2f} M calls/s")
    t_open, t_check, t_locked = opening(tmp / "ours.db")
    print(
        f"  open (with quick_check) {t_open * 1e3:.1f} ms, of which quick_check {t_check * 1e3:.1f} ms; "
        f"read-only open while a writer holds the lock {t_locked * 1e3:.1f} ms"
    )
    r_ing, r_read = rows(tmp / "rows.db", steps, vals, walls)
    print(
        f"row per point       ingest {r_ing / 1e6:6.2f} M points/s   read {r_read * 1e3:8.1f} ms   "
        f"(chunks read {r_read / read:.0f}× faster)"
    )

    m = args.peer_points
    print(f"\npeers, {m:,} points (their ingest is too slow for {n:,}); ours at the same size:")
    ing_m, read_m, _ = ours(tmp / "ours-small.db", steps[:m], vals[:m], walls[:m])
    print(f"trainbench chunks   ingest {ing_m / 1e6:6.2f} M points/s   read {read_m * 1e3:8.1f} ms")
    for name, fn in (("TensorBoard events", tensorboard), ("MLflow SQLite", mlflow)):
        res = fn(tmp / name.split()[0].lower(), steps[:m], vals[:m])
        if res is None:
            print(
                f"{name:19} not installed (pip install {'tensorboard' if 'Tensor' in name else 'mlflow-skinny sqlalchemy alembic'})"
            )
        else:
            print(
                f"{name:19} ingest {res[0] / 1e6:6.3f} M points/s   read {res[1] * 1e3:8.1f} ms   "
                f"(ours: {ing_m / res[0]:.0f}× faster ingest, {res[1] / read_m:.0f}× faster read)"
            )

    errors, logged, stored, check = concurrency(tmp / "concurrent.db")
    print(
        f"\n4 processes logging 2 series at ~2,000 steps/s each for 8 s: {errors} lock errors, "
        f"{stored:,} of {logged:,} points stored, integrity_check: {check}"
    )


if __name__ == "__main__":
    main()
