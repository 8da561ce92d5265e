"""The run store: one SQLite file holds every run, metric point and checkpoint record.

Layout, chosen by measurement (see README, "Store"): a metric series is stored as chunks,
one row per flush holding that flush's steps, values and wall times as numpy BLOBs, plus a
per-series summary row (count, first/last step, last, min, max). Reading a whole series is
then a few hundred BLOB concatenations instead of a million row decodes, and run tables and
"best metric" queries read summaries only.

Concurrency: WAL, a busy timeout, and every write transaction opened with BEGIN IMMEDIATE,
so several run processes can write to one file without "database is locked".
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import sqlite_utils

from engine.errors import StoreError

STATUSES = ("queued", "running", "completed", "failed", "stopped", "crashed")
FINAL = ("completed", "failed", "stopped", "crashed")
RESUMABLE = ("stopped", "crashed", "failed")  # continue from the last checkpoint
HEARTBEAT_S = 2.0  # a running run touches heartbeat_at this often
STALE_S = 8.0  # a heartbeat older than this (plus one interval) means the run is dead
BUSY_TIMEOUT_MS = 30_000
HOST = socket.gethostname()


def default_db_path() -> Path:
    """TRAINBENCH_DB, else trainbench.db in the user data directory."""
    env = os.environ.get("TRAINBENCH_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("trainbench", appauthor=False)) / "trainbench.db"


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "id": int,
            "name": str,
            "kind": str,
            "status": str,
            "parent_id": int,
            "spec": str,
            "created_at": float,
            "started_at": float,
            "ended_at": float,
            "summary": str,
            "error": str,
            "pid": int,
            "host": str,
            "heartbeat_at": float,
            "notes": str,
            "tags": str,
            "starred": int,
        },
        pk="id",
        not_null={"name", "kind", "status", "spec", "created_at"},
        defaults={"summary": "{}", "notes": "", "tags": "[]", "starred": 0},
        foreign_keys=[("parent_id", "runs", "id")],
    )
    db["runs"].create_index(["status"])
    db["runs"].create_index(["parent_id"])
    db["metric_series"].create(
        {
            "id": int,
            "run_id": int,
            "key": str,
            "count": int,
            "first_step": int,
            "last_step": int,
            "last": float,
            "min": float,
            "max": float,
            "last_wall": float,
            "chunks": int,
        },
        pk="id",
        not_null={"run_id", "key"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["metric_series"].create_index(["run_id", "key"], unique=True)
    # A rowid table, not WITHOUT ROWID: rows are kilobytes of BLOB, which SQLite advises
    # against in WITHOUT ROWID tables (measured here: 20 vs 16 ms per 1M-point read).
    db.execute(
        """CREATE TABLE metric_chunks (
            series_id INTEGER NOT NULL REFERENCES metric_series(id),
            seq INTEGER NOT NULL,
            n INTEGER NOT NULL,
            first_step INTEGER NOT NULL,
            last_step INTEGER NOT NULL,
            steps BLOB NOT NULL,   -- int64
            vals BLOB NOT NULL,    -- float64
            walls BLOB NOT NULL    -- float64 unix seconds
        )"""
    )
    db.execute("CREATE UNIQUE INDEX metric_chunks_series_seq ON metric_chunks (series_id, seq)")
    db["checkpoints"].create(
        {"id": int, "run_id": int, "step": int, "path": str, "tag": str, "created_at": float, "bytes": int},
        pk="id",
        not_null={"run_id", "step", "path", "created_at"},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["checkpoints"].create_index(["run_id", "step"])


_INSERT_CHUNK = "INSERT INTO metric_chunks (series_id, seq, n, first_step, last_step, steps, vals, walls) VALUES (?,?,?,?,?,?,?,?)"


def _insert_chunk(c, sid: int, seq: int, steps: np.ndarray, vals: np.ndarray, walls: np.ndarray) -> None:
    c.execute(
        _INSERT_CHUNK,
        (
            sid,
            seq,
            len(steps),
            int(steps[0]),
            int(steps[-1]),
            steps.tobytes(),
            vals.tobytes(),
            walls.tobytes(),
        ),
    )


def _decode(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, values, walls) from chunk rows of (seq, steps, vals, walls), in row order."""
    return (
        np.frombuffer(b"".join(r[1] for r in rows), dtype=np.int64),
        np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float64),
        np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float64),
    )


def _metric_key(key: str) -> str:
    """A summary key as written before summaries used metric names (`val_accuracy`)."""
    if key.startswith("teacher_val_"):
        return "teacher/" + key.removeprefix("teacher_val_")
    if key.startswith("val_"):
        return "val/" + key.removeprefix("val_")
    return key


def _m2_metric_names_in_summaries(db: sqlite_utils.Database) -> None:
    """Summaries name metrics as their series do (`val/accuracy`, not `val_accuracy`)."""
    rows = db.execute("SELECT id, summary FROM runs WHERE summary LIKE '%val\\_%' ESCAPE '\\'").fetchall()
    for run_id, text in rows:
        summary = {_metric_key(k): v for k, v in json.loads(text or "{}").items()}
        compression = summary.get("compression")
        if isinstance(compression, dict):
            for name, figures in compression.items():
                if isinstance(figures, dict):
                    compression[name] = {_metric_key(k): v for k, v in figures.items()}
        db.execute("UPDATE runs SET summary=? WHERE id=?", (json.dumps(summary), run_id))


# Applied in order; the number applied is PRAGMA user_version. Append, never edit.
MIGRATIONS = [_m1_initial, _m2_metric_names_in_summaries]


class RunStore:
    """A connection to one run database. Not shared between threads: open one per thread."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: not a usable Trainbench database ({err})") from None
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._migrate()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self.write():
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: database schema {version} is newer than this Trainbench ({len(MIGRATIONS)})"
                )
            for i in range(version, len(MIGRATIONS)):
                MIGRATIONS[i](self.db)
                self.conn.execute(f"PRAGMA user_version={i + 1}")

    @property
    def artifacts_root(self) -> Path:
        return self.path.with_suffix("").parent / (self.path.stem + "-artifacts")

    def artifacts_dir(self, run_id: int) -> Path:
        d = self.artifacts_root / f"run-{run_id}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ------------------------------------------------------------ runs

    def create_run(
        self, spec: dict, kind: str = "train", parent_id: int | None = None, status: str = "queued"
    ) -> int:
        with self.write() as c:
            cur = c.execute(
                "INSERT INTO runs (name, kind, status, parent_id, spec, created_at, tags) VALUES (?,?,?,?,?,?,?)",
                (
                    spec.get("name", "run"),
                    kind,
                    status,
                    parent_id,
                    json.dumps(spec),
                    time.time(),
                    json.dumps(spec.get("tags", [])),
                ),
            )
            return cur.lastrowid

    def start_run(self, run_id: int, pid: int | None = None) -> None:
        now = time.time()
        with self.write() as c:
            c.execute(
                "UPDATE runs SET status='running', started_at=COALESCE(started_at, ?), ended_at=NULL, error=NULL,"
                " pid=?, host=?, heartbeat_at=? WHERE id=?",
                (now, pid or os.getpid(), HOST, now, run_id),
            )

    def heartbeat(self, run_id: int) -> None:
        with self.write() as c:
            c.execute("UPDATE runs SET heartbeat_at=? WHERE id=? AND status='running'", (time.time(), run_id))

    def finish_run(
        self, run_id: int, status: str, summary: dict | None = None, error: str | None = None
    ) -> None:
        assert status in FINAL, status
        with self.write() as c:
            row = c.execute("SELECT summary FROM runs WHERE id=?", (run_id,)).fetchone()
            merged = {**json.loads(row[0] or "{}"), **(summary or {})}
            c.execute(
                "UPDATE runs SET status=?, ended_at=?, summary=?, error=?, pid=NULL WHERE id=?",
                (status, time.time(), json.dumps(merged), error, run_id),
            )

    def update_summary(self, run_id: int, **values) -> None:
        with self.write() as c:
            row = c.execute("SELECT summary FROM runs WHERE id=?", (run_id,)).fetchone()
            c.execute(
                "UPDATE runs SET summary=? WHERE id=?",
                (json.dumps({**json.loads(row[0] or "{}"), **values}), run_id),
            )

    def set_fields(self, run_id: int, **fields) -> None:
        """Rename, notes, tags, star: the user-editable columns."""
        allowed = {"name", "notes", "tags", "starred"}
        bad = set(fields) - allowed
        if bad:
            raise StoreError(f"cannot set {', '.join(sorted(bad))}; editable: {', '.join(sorted(allowed))}")
        if "tags" in fields:
            fields["tags"] = json.dumps(fields["tags"])
        with self.write() as c:
            sets = ", ".join(f"{k}=?" for k in fields)
            c.execute(f"UPDATE runs SET {sets} WHERE id=?", (*fields.values(), run_id))

    def get_run(self, run_id: int) -> dict:
        self.reap()
        cur = self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise StoreError(f"no run {run_id} in {self.path}")
        return _run_dict(cur.description, row)

    def list_runs(
        self, status: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[dict]:
        self.reap()
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        if status:
            sql, args = sql + " AND status=?", [*args, status]
        if kind:
            sql, args = sql + " AND kind=?", [*args, kind]
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        cur = self.conn.execute(sql, args)
        return [_run_dict(cur.description, r) for r in cur]

    def lineage(self, run_id: int) -> tuple[list[dict], list[dict]]:
        """(ancestors, nearest first; descendants, depth-first)."""
        ancestors, cur = [], self.get_run(run_id)
        while cur["parent_id"] is not None:
            cur = self.get_run(cur["parent_id"])
            ancestors.append(cur)
        descendants, stack = [], [run_id]
        while stack:
            for r in self.conn.execute("SELECT id FROM runs WHERE parent_id=? ORDER BY id", (stack.pop(),)):
                descendants.append(self.get_run(r[0]))
                stack.append(r[0])
        return ancestors, descendants

    def delete_run(self, run_id: int) -> None:
        """Remove a run's rows and artifact files; its children keep existing, unparented."""
        run = self.get_run(run_id)
        if run["status"] == "running":
            raise StoreError(f"run {run_id} is running; stop it first")
        with self.write() as c:
            c.execute(
                "DELETE FROM metric_chunks WHERE series_id IN (SELECT id FROM metric_series WHERE run_id=?)",
                (run_id,),
            )
            c.execute("DELETE FROM metric_series WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM checkpoints WHERE run_id=?", (run_id,))
            c.execute("UPDATE runs SET parent_id=NULL WHERE parent_id=?", (run_id,))
            c.execute("DELETE FROM runs WHERE id=?", (run_id,))
        shutil.rmtree(self.artifacts_root / f"run-{run_id}", ignore_errors=True)

    def reap(self) -> list[int]:
        """Mark `running` runs whose process is gone as crashed; returns their ids.

        A run on this host whose pid is dead is caught at once; elsewhere, or if the pid was
        reused, a heartbeat older than STALE_S + HEARTBEAT_S gives it away within ~10 s.
        """
        now = time.time()
        dead = []
        for run_id, pid, host, beat in self.conn.execute(
            "SELECT id, pid, host, heartbeat_at FROM runs WHERE status='running'"
        ):
            stale = beat is None or now - beat > STALE_S + HEARTBEAT_S
            gone = host == HOST and pid is not None and not pid_alive(pid)
            if stale or gone:
                dead.append((run_id, pid, beat))
        for run_id, pid, beat in dead:
            when = time.strftime("%H:%M:%S", time.localtime(beat)) if beat else "never"
            with self.write() as c:
                c.execute(
                    "UPDATE runs SET status='crashed', ended_at=?, pid=NULL, error=? WHERE id=? AND status='running'",
                    (
                        beat or now,
                        f"the run's process (pid {pid}) ended without reporting; last heartbeat {when}",
                        run_id,
                    ),
                )
        return [d[0] for d in dead]

    # ------------------------------------------------------------ metrics

    def add_metrics(self, run_id: int, batch: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Append one chunk per series: {key: (steps int64, values float64, walls float64)}."""
        with self.write() as c:
            for key, (steps, vals, walls) in batch.items():
                steps = np.ascontiguousarray(steps, dtype=np.int64)
                vals = np.ascontiguousarray(vals, dtype=np.float64)
                walls = np.ascontiguousarray(walls, dtype=np.float64)
                if len(steps) == 0:
                    continue
                sid, seq = self._series_for_write(c, run_id, key)
                _insert_chunk(c, sid, seq, steps, vals, walls)
                finite = vals[np.isfinite(vals)]
                lo = float(finite.min()) if len(finite) else None
                hi = float(finite.max()) if len(finite) else None
                c.execute(
                    "UPDATE metric_series SET count=count+?, first_step=COALESCE(first_step, ?), last_step=?, last=?,"
                    " min=CASE WHEN ? IS NULL THEN min WHEN min IS NULL OR ? < min THEN ? ELSE min END,"
                    " max=CASE WHEN ? IS NULL THEN max WHEN max IS NULL OR ? > max THEN ? ELSE max END,"
                    " last_wall=?, chunks=chunks+1 WHERE id=?",
                    (
                        len(steps),
                        int(steps[0]),
                        int(steps[-1]),
                        float(vals[-1]),
                        lo,
                        lo,
                        lo,
                        hi,
                        hi,
                        hi,
                        float(walls[-1]),
                        sid,
                    ),
                )

    @staticmethod
    def _series_for_write(c, run_id: int, key: str) -> tuple[int, int]:
        row = c.execute(
            "SELECT id, chunks FROM metric_series WHERE run_id=? AND key=?", (run_id, key)
        ).fetchone()
        if row:
            return row[0], row[1]
        cur = c.execute(
            "INSERT INTO metric_series (run_id, key, count, chunks) VALUES (?,?,0,0)", (run_id, key)
        )
        return cur.lastrowid, 0

    def series_summaries(self, run_id: int) -> dict[str, dict]:
        cur = self.conn.execute(
            "SELECT key, count, first_step, last_step, last, min, max, last_wall FROM metric_series WHERE run_id=? ORDER BY key",
            (run_id,),
        )
        cols = [d[0] for d in cur.description]
        return {r[0]: dict(zip(cols, r, strict=True)) for r in cur}

    def series(self, run_id: int, key: str, after_seq: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, values, walls) of one series as numpy arrays, in logging order."""
        steps, vals, walls, _ = self.series_since(run_id, key, after_seq)
        return steps, vals, walls

    def series_since(self, run_id: int, key: str, after_seq: int = -1):
        """Chunks after `after_seq` (for a live follower) and the last seq read."""
        sid = self.conn.execute(
            "SELECT id FROM metric_series WHERE run_id=? AND key=?", (run_id, key)
        ).fetchone()
        rows = []
        if sid:
            rows = self.conn.execute(
                "SELECT seq, steps, vals, walls FROM metric_chunks WHERE series_id=? AND seq>? ORDER BY seq",
                (sid[0], after_seq),
            ).fetchall()
        if not rows:
            empty = np.empty(0)
            return empty.astype(np.int64), empty, empty, after_seq
        return (
            *_decode(rows),
            rows[-1][0],
        )

    def truncate_metrics(self, run_id: int, after_step: int) -> None:
        """Drop points logged after `after_step` (a resume replays them from the checkpoint)."""
        with self.write() as c:
            for (sid,) in c.execute("SELECT id FROM metric_series WHERE run_id=?", (run_id,)).fetchall():
                late = c.execute(
                    "SELECT seq, steps, vals, walls FROM metric_chunks WHERE series_id=? AND last_step>? ORDER BY seq",
                    (sid, after_step),
                ).fetchall()
                if not late:
                    continue
                c.execute("DELETE FROM metric_chunks WHERE series_id=? AND seq>=?", (sid, late[0][0]))
                s, v, w = _decode(late)
                keep = s <= after_step
                s, v, w = s[keep], v[keep], w[keep]
                if len(s):
                    _insert_chunk(c, sid, late[0][0], s, v, w)
                self._recompute_summary(c, sid)

    @staticmethod
    def _recompute_summary(c, sid: int) -> None:
        rows = c.execute(
            "SELECT seq, steps, vals, walls FROM metric_chunks WHERE series_id=? ORDER BY seq", (sid,)
        ).fetchall()
        if not rows:
            c.execute(
                "UPDATE metric_series SET count=0, first_step=NULL, last_step=NULL, last=NULL, min=NULL, max=NULL,"
                " last_wall=NULL, chunks=0 WHERE id=?",
                (sid,),
            )
            return
        s, v, w = _decode(rows)
        f = v[np.isfinite(v)]
        c.execute(
            "UPDATE metric_series SET count=?, first_step=?, last_step=?, last=?, min=?, max=?, last_wall=?, chunks=? WHERE id=?",
            (
                len(s),
                int(s[0]),
                int(s[-1]),
                float(v[-1]),
                float(f.min()) if len(f) else None,
                float(f.max()) if len(f) else None,
                float(w[-1]),
                rows[-1][0] + 1,
                sid,
            ),
        )

    # ------------------------------------------------------------ checkpoints

    def add_checkpoint(self, run_id: int, step: int, path: str | Path, tag: str = "periodic") -> int:
        size = Path(path).stat().st_size if Path(path).exists() else None
        with self.write() as c:
            return c.execute(
                "INSERT INTO checkpoints (run_id, step, path, tag, created_at, bytes) VALUES (?,?,?,?,?,?)",
                (run_id, step, str(path), tag, time.time(), size),
            ).lastrowid

    def remove_checkpoint(self, checkpoint_id: int) -> None:
        with self.write() as c:
            c.execute("DELETE FROM checkpoints WHERE id=?", (checkpoint_id,))

    def checkpoints(self, run_id: int) -> list[dict]:
        cur = self.conn.execute("SELECT * FROM checkpoints WHERE run_id=? ORDER BY step, id", (run_id,))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur]

    def last_checkpoint(self, run_id: int) -> dict | None:
        cps = [c for c in self.checkpoints(run_id) if Path(c["path"]).exists()]
        return cps[-1] if cps else None


def _run_dict(description, row) -> dict:
    """A runs row as a dict (columns named by the query's own cursor), JSON fields parsed."""
    d = dict(zip((c[0] for c in description), row, strict=True))
    for k in ("spec", "summary", "tags"):
        d[k] = json.loads(d[k]) if d[k] else ({} if k != "tags" else [])
    return d


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (an exited child not yet waited on)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


class MetricBatcher:
    """Collects points from the training thread; `drain()` hands them over as numpy chunks.

    Appends are list appends under a lock (about a microsecond), so logging every step costs
    the loop nothing measurable; the recorder's thread drains and writes in the background.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._buf: dict[str, tuple[list, list, list]] = {}

    def add(self, step: int, values: dict[str, float], wall: float | None = None) -> None:
        wall = time.time() if wall is None else wall
        with self._lock:
            for key, v in values.items():
                s, vs, ws = self._buf.setdefault(key, ([], [], []))
                s.append(step)
                vs.append(v)
                ws.append(wall)

    def add_series(self, key: str, steps, values, walls) -> None:
        with self._lock:
            s, vs, ws = self._buf.setdefault(key, ([], [], []))
            s.extend(steps)
            vs.extend(values)
            ws.extend(walls)

    def drain(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        with self._lock:
            buf, self._buf = self._buf, {}
        return {
            k: (
                np.asarray(s, dtype=np.int64),
                np.asarray(v, dtype=np.float64),
                np.asarray(w, dtype=np.float64),
            )
            for k, (s, v, w) in buf.items()
            if s
        }
