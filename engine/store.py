"""The run store: one SQLite file holds every run, metric point and checkpoint record.

Layout, chosen by measurement (see README, "Store"): a metric series is stored as chunks,
one row per flush holding that flush's steps, values and wall times as numpy BLOBs, plus a
per-series summary row (count, first/last step, last, min, max). Reading a whole series is
then a few hundred BLOB concatenations instead of a million row decodes, and run tables and
"best metric" queries read summaries only.

Concurrency: WAL, a busy timeout (`TRAINBENCH_BUSY_TIMEOUT` seconds, default 30), and every
write transaction opened with BEGIN IMMEDIATE, so several run processes can write to one file
without "database is locked". Opening takes no write lock unless the schema must be migrated,
and `RunStore(path, readonly=True)` never writes, so readers never queue behind writers and a
read-only medium can be listed.

Trust: a store refuses, with one line naming the file, what it cannot use — a folder, a FIFO,
an empty or foreign file, a damaged one (`PRAGMA quick_check` on open: 7 ms for a million
points, 60 ms for ten million, measured here), a missing table or a newer schema — and every
SQLite error after that becomes a `StoreError` saying what is wrong with which file.

One writer per run: `start_run` (the claim) records the claiming process (pid, its start
time, host) and a fresh owner token; every write for that run made with a token checks it in
the same transaction, so a process that lost its run (reaped, then resumed elsewhere) stops
with `ClaimLost` instead of writing beside the new owner. Reads never write: marking dead
runs crashed is `reap()`, called where a caller means it.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import resource
import shutil
import socket
import sqlite3
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np
import sqlite_utils

from engine.errors import StoreError

STATUSES = ("queued", "running", "completed", "failed", "stopped", "crashed")
FINAL = ("completed", "failed", "stopped", "crashed")
RESUMABLE = ("stopped", "crashed", "failed")  # continue from the last checkpoint
#: what a run is: a designed run's task, a script of the user's own (engine.scripts), an import, an LR sweep,
#: a sweep (engine.sweep; its trials are runs of their own task's kind)
KINDS = ("train", "prune", "distill", "script", "imported", "lr_find", "sweep")
HEARTBEAT_S = 2.0  # a running run touches heartbeat_at this often
STALE_S = 8.0  # on another host: a heartbeat older than this (plus one interval) means the run is dead
HOST = socket.gethostname()
TABLES = ("runs", "metric_series", "metric_chunks", "checkpoints")


def busy_timeout_s() -> float:
    """How long a write waits for another process's write lock before giving up."""
    try:
        return max(0.0, float(os.environ.get("TRAINBENCH_BUSY_TIMEOUT", "30")))
    except ValueError:
        return 30.0


def default_db_path() -> Path:
    """TRAINBENCH_DB, else trainbench.db in the user data directory."""
    env = os.environ.get("TRAINBENCH_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("trainbench", appauthor=False)) / "trainbench.db"


class ClaimLost(StoreError):
    """This process no longer owns the run it writes: another process claimed it."""


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


def _m3_run_claims(db: sqlite_utils.Database) -> None:
    """Who may write a run: its owner token, and the claiming process's start time (with the
    pid it tells a live process from a later one that got the same pid)."""
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN proc_start TEXT")


def _m4_capsules(db: sqlite_utils.Database) -> None:
    """Each attempt's reproducibility capsule (engine.capsule), apart from the runs table:
    listing runs never reads their package lists."""
    db.execute(
        """CREATE TABLE capsules (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            attempt INTEGER NOT NULL,
            created_at REAL NOT NULL,
            doc TEXT NOT NULL,
            PRIMARY KEY (run_id, attempt)
        )"""
    )


def _m5_run_events_and_histograms(db: sqlite_utils.Database) -> None:
    """What happened to a run at a step besides its metrics: the changes made to it while it
    ran (`control`), what its health checks found (`health`); and per-node weight/gradient
    histograms, with one set of bin edges per series so the rows hold counts only."""
    db.execute(
        """CREATE TABLE run_events (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            step INTEGER NOT NULL,
            kind TEXT NOT NULL,    -- control | health
            data TEXT NOT NULL,    -- JSON object
            created_at REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX run_events_run_step ON run_events (run_id, step)")
    db.execute(
        """CREATE TABLE histogram_series (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            key TEXT NOT NULL,
            edges BLOB NOT NULL    -- float64, bins + 1
        )"""
    )
    db.execute("CREATE UNIQUE INDEX histogram_series_run_key ON histogram_series (run_id, key)")
    db.execute(
        """CREATE TABLE histograms (
            series_id INTEGER NOT NULL REFERENCES histogram_series(id),
            step INTEGER NOT NULL,
            counts BLOB NOT NULL   -- int64, one per bin
        )"""
    )
    db.execute("CREATE INDEX histograms_series_step ON histograms (series_id, step)")


# Applied in order; the number applied is PRAGMA user_version. Append, never edit.
MIGRATIONS = [
    _m1_initial,
    _m2_metric_names_in_summaries,
    _m3_run_claims,
    _m4_capsules,
    _m5_run_events_and_histograms,
]


def _guarded(method):
    """SQLite errors of a store method become one StoreError naming the file and the problem."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as err:
            raise store_error(self.path, err) from None

    return wrapper


class RunStore:
    """A connection to one run database. Not shared between threads: open one per thread
    (`reopen()`). `readonly=True` opens it for reading only, also on a read-only file or
    medium: nothing is created (a missing file reads as an empty store), and nothing is written
    but what a caller asks for — `reap()`, and the one-time upgrade of an older schema, each
    through a short-lived writable connection where the file allows it."""

    def __init__(self, path: str | Path | None = None, readonly: bool = False):
        self.path = Path(path) if path else default_db_path()
        self.readonly = readonly
        exists = _check_path(self.path)
        if not exists and readonly:  # nothing has run yet: an empty store, and no file made for it
            self.conn = sqlite3.connect(":memory:", isolation_level=None)
            _apply_migrations(self.conn, 0)
            self.db = sqlite_utils.Database(self.conn)
            return
        if not exists:
            _create(self.path)
        self.conn = self._connect()
        try:
            version = _verify(self.conn, self.path)
            if version < len(MIGRATIONS):
                self._migrate(version)
        except BaseException:
            self.conn.close()
            raise
        self.db = sqlite_utils.Database(self.conn)

    def _connect(self) -> sqlite3.Connection:
        timeout = busy_timeout_s()
        try:
            if self.readonly:
                conn = _connect_readonly(self.path, timeout)
            else:
                conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
                conn.execute("PRAGMA synchronous=NORMAL")
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # a copy made by a tool
                    conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as err:
            raise store_error(self.path, err) from None
        return conn

    def reopen(self) -> RunStore:
        """Another connection to the same, already checked file (for another thread)."""
        other = object.__new__(RunStore)
        other.path, other.readonly = self.path, self.readonly
        other.conn = other._connect()
        other.db = sqlite_utils.Database(other.conn)
        return other

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self, run_id: int | None = None, owner: str | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE). Given
        `owner`, it first checks that this token still owns run `run_id` (raises ClaimLost)."""
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; this needs a writable database")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if owner is not None:
                self.check_owner(run_id, owner)
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:  # SQLite rolls back by itself after a full disk or I/O error
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @_guarded
    def check_owner(self, run_id: int, owner: str) -> None:
        """Raise ClaimLost unless `owner` still owns run `run_id`."""
        row = self.conn.execute("SELECT owner, pid, host, status FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise ClaimLost(f"run {run_id} no longer exists in {self.path}; this process stops writing it")
        if row[0] != owner:
            if row[0] is None:
                taker = "a reader that found its process gone (reaped)"
            elif row[1]:
                taker = f"pid {row[1]} on {'this host' if row[2] == HOST else row[2]}"
            else:
                taker = "another process"
            raise ClaimLost(
                f"run {run_id} was taken over by {taker} (it is {row[3]} now); "
                "this process stops writing it so the run keeps one writer"
            )

    def _migrate(self, found: int) -> None:
        if self.readonly:
            self._migrate_elsewhere(found)
            return
        try:
            with self.write():
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                _apply_migrations(self.conn, version)
        except sqlite3.Error as err:
            if getattr(err, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                raise store_error(self.path, err) from None
            raise StoreError(
                f"{self.path}: cannot upgrade its schema from version {found} ({err}): the database is damaged "
                "or was changed by another program; " + _RECOVER.format(path=self.path)
            ) from None

    def _migrate_elsewhere(self, found: int) -> None:
        """A read-only store of an older schema (or a new, empty one): upgraded once through a
        short-lived writable connection when the file can be written; else it cannot be read."""
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            raise StoreError(
                f"{self.path}: its schema ({found}) is older than this Trainbench's ({len(MIGRATIONS)}) and the "
                "file is read-only; open it once where it can be written (e.g. `trainbench run`) to upgrade it"
            )
        RunStore(self.path).close()

    @property
    def artifacts_root(self) -> Path:
        return self.path.with_suffix("").parent / (self.path.stem + "-artifacts")

    def artifacts_dir(self, run_id: int) -> Path:
        d = self.artifacts_root / f"run-{run_id}"
        if not self.readonly:
            d.mkdir(parents=True, exist_ok=True)
        return d

    # ------------------------------------------------------------ runs

    @_guarded
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

    @_guarded
    def start_run(self, run_id: int, pid: int | None = None, resumable: bool = False) -> str:
        """Claim the run for process `pid` (default: this one) and return the owner token its
        writes carry. Refused while the run is running in a live process (a running row whose
        process is gone is taken over); with `resumable`, also unless the run is queued or
        resumable (stopped, crashed, failed). Checked and set in one transaction, so of two
        processes claiming one run, one wins."""
        pid = pid or os.getpid()
        token, now = uuid.uuid4().hex, time.time()
        with self.write() as c:
            row = c.execute(
                "SELECT status, pid, host, proc_start, heartbeat_at FROM runs WHERE id=?", (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id} in {self.path}")
            status = row[0]
            if status == "running" and run_alive(*row[1:], now=now):
                raise StoreError(
                    f"run {run_id} is running ({_where(row[1], row[2])}); stop it first, or wait for it to end"
                )
            if resumable and status not in (*RESUMABLE, "queued", "running"):
                raise StoreError(f"run {run_id} is {status}; only {', '.join(RESUMABLE)} runs can be resumed")
            c.execute(
                "UPDATE runs SET status='running', started_at=COALESCE(started_at, ?), ended_at=NULL, error=NULL,"
                " pid=?, proc_start=?, host=?, heartbeat_at=?, owner=? WHERE id=?",
                (now, pid, process_identity(pid), HOST, now, token, run_id),
            )
        return token

    @_guarded
    def heartbeat(self, run_id: int, owner: str | None = None) -> None:
        with self.write(run_id, owner) as c:
            c.execute("UPDATE runs SET heartbeat_at=? WHERE id=? AND status='running'", (time.time(), run_id))

    @_guarded
    def finish_run(
        self,
        run_id: int,
        status: str,
        summary: dict | None = None,
        error: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Record the run's final status. The owner token stays: the claiming process may still
        amend it (a launcher naming the rank that failed); a resume claims anew."""
        assert status in FINAL, status
        with self.write(run_id, owner) as c:
            row = c.execute("SELECT summary FROM runs WHERE id=?", (run_id,)).fetchone()
            merged = {**json.loads(row[0] or "{}"), **(summary or {})}
            c.execute(
                "UPDATE runs SET status=?, ended_at=?, summary=?, error=?, pid=NULL WHERE id=?",
                (status, time.time(), json.dumps(merged), error, run_id),
            )

    @_guarded
    def update_summary(self, run_id: int, owner: str | None = None, **values) -> None:
        with self.write(run_id, owner) as c:
            row = c.execute("SELECT summary FROM runs WHERE id=?", (run_id,)).fetchone()
            c.execute(
                "UPDATE runs SET summary=? WHERE id=?",
                (json.dumps({**json.loads(row[0] or "{}"), **values}), run_id),
            )

    @_guarded
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

    @_guarded
    def amend_spec(self, run_id: int, owner: str | None = None, **fields) -> None:
        """Set top-level fields of a run's stored spec (a script's `name`, `tags`, `config`, told
        by `trainbench.init()` once it runs); the name and tags columns follow."""
        with self.write(run_id, owner) as c:
            (text,) = c.execute("SELECT spec FROM runs WHERE id=?", (run_id,)).fetchone()
            spec = {**json.loads(text), **fields}
            c.execute(
                "UPDATE runs SET spec=?, name=?, tags=? WHERE id=?",
                (json.dumps(spec), spec.get("name", "run"), json.dumps(spec.get("tags", [])), run_id),
            )

    @_guarded
    def add_capsule(self, run_id: int, doc: dict, owner: str | None = None) -> int:
        """Record this attempt's capsule (the first start is attempt 0, each resume the next)."""
        with self.write(run_id, owner) as c:
            (attempt,) = c.execute("SELECT COUNT(*) FROM capsules WHERE run_id=?", (run_id,)).fetchone()
            c.execute(
                "INSERT INTO capsules (run_id, attempt, created_at, doc) VALUES (?,?,?,?)",
                (run_id, attempt, time.time(), json.dumps(doc, default=str)),
            )
        return attempt

    @_guarded
    def update_capsule(self, run_id: int, owner: str | None = None, **parts) -> None:
        """Merge `parts` into the newest capsule of the run (what only the script's own process
        knows: its interpreter, its torch, its devices)."""
        with self.write(run_id, owner) as c:
            row = c.execute(
                "SELECT attempt, doc FROM capsules WHERE run_id=? ORDER BY attempt DESC LIMIT 1", (run_id,)
            ).fetchone()
            if row is None:
                return
            doc = {**json.loads(row[1]), **parts}
            c.execute(
                "UPDATE capsules SET doc=? WHERE run_id=? AND attempt=?",
                (json.dumps(doc, default=str), run_id, row[0]),
            )

    @_guarded
    def capsules(self, run_id: int) -> list[dict]:
        """Every attempt's capsule, oldest first."""
        rows = self.conn.execute(
            "SELECT doc FROM capsules WHERE run_id=? ORDER BY attempt", (run_id,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    @_guarded
    def first_capsules(self, run_ids: list[int]) -> dict[int, dict]:
        """The capsule of each run's first attempt, for the runs that have one."""
        if not run_ids:
            return {}
        marks = ", ".join("?" * len(run_ids))
        rows = self.conn.execute(
            f"SELECT run_id, doc FROM capsules WHERE attempt=0 AND run_id IN ({marks})", list(run_ids)
        ).fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    # ------------------------------------------------------------ imported runs

    @_guarded
    def find_by_spec(self, path: str, value: str) -> int | None:
        """The newest run whose spec holds `value` at the JSON `path` (`$.import.key`)."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE json_extract(spec, ?)=? ORDER BY id DESC LIMIT 1", (path, value)
        ).fetchone()
        return row[0] if row else None

    @_guarded
    def put_finished_run(
        self,
        spec: dict,
        kind: str,
        status: str,
        started_at: float | None,
        ended_at: float | None,
        summary: dict | None = None,
        run_id: int | None = None,
    ) -> int:
        """Record a run that happened elsewhere (an import), with its own times, as one finished
        row; given `run_id`, that row is rewritten and its metric points dropped, to be written anew."""
        assert status in FINAL, status
        values = (
            spec.get("name", "run"),
            kind,
            status,
            json.dumps(spec),
            started_at if started_at is not None else time.time(),
            started_at,
            ended_at,
            json.dumps(summary or {}),
            json.dumps(spec.get("tags", [])),
        )
        with self.write() as c:
            if run_id is None:
                return c.execute(
                    "INSERT INTO runs (name, kind, status, spec, created_at, started_at, ended_at, summary, tags)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    values,
                ).lastrowid
            c.execute(
                "DELETE FROM metric_chunks WHERE series_id IN (SELECT id FROM metric_series WHERE run_id=?)",
                (run_id,),
            )
            c.execute("DELETE FROM metric_series WHERE run_id=?", (run_id,))
            c.execute(
                "UPDATE runs SET name=?, kind=?, status=?, spec=?, created_at=?, started_at=?, ended_at=?,"
                " summary=?, tags=? WHERE id=?",
                (*values, run_id),
            )
            return run_id

    @_guarded
    def point_count(self, run_id: int) -> int:
        (n,) = self.conn.execute(
            "SELECT COALESCE(SUM(count), 0) FROM metric_series WHERE run_id=?", (run_id,)
        ).fetchone()
        return n

    @_guarded
    def get_run(self, run_id: int) -> dict:
        rows = _dicts(self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)))
        if not rows:
            raise StoreError(f"no run {run_id} in {self.path}")
        return _run_dict(rows[0])

    @_guarded
    def list_runs(
        self, status: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[dict]:
        sql, args = "SELECT * FROM runs WHERE 1=1", []
        if status:
            sql, args = sql + " AND status=?", [*args, status]
        if kind:
            sql, args = sql + " AND kind=?", [*args, kind]
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return [_run_dict(d) for d in _dicts(self.conn.execute(sql, args))]

    @_guarded
    def lineage(self, run_id: int) -> tuple[list[dict], list[dict]]:
        """(ancestors, nearest first; descendants, depth-first), in one recursive query. The
        depth bound ends a parent cycle (only a hand-edited database has one), whose runs are
        then listed once."""
        self.get_run(run_id)
        rows = _dicts(
            self.conn.execute(
                """WITH RECURSIVE
                up(id, depth) AS (
                    SELECT parent_id, 1 FROM runs WHERE id=:id AND parent_id IS NOT NULL
                    UNION ALL
                    SELECT r.parent_id, up.depth + 1 FROM runs r JOIN up ON r.id = up.id
                    WHERE r.parent_id IS NOT NULL AND up.depth < :bound),
                down(id, path, depth) AS (
                    SELECT id, printf('%012d', id), 1 FROM runs WHERE parent_id=:id
                    UNION ALL
                    SELECT r.id, down.path || printf('%012d', r.id), down.depth + 1
                    FROM runs r JOIN down ON r.parent_id = down.id WHERE down.depth < :bound)
                SELECT 'up' AS side, printf('%012d', up.depth) AS rank, runs.* FROM up JOIN runs ON runs.id = up.id
                UNION ALL
                SELECT 'down', down.path, runs.* FROM down JOIN runs ON runs.id = down.id
                ORDER BY side DESC, rank""",
                {"id": run_id, "bound": 10_000},
            )
        )
        ancestors, descendants, seen = [], [], {"up": set(), "down": set()}
        for d in rows:
            side, _ = d.pop("side"), d.pop("rank")
            if d["id"] not in seen[side]:  # a cycle repeats ids until the bound
                seen[side].add(d["id"])
                (ancestors if side == "up" else descendants).append(_run_dict(d))
        return ancestors, descendants

    @_guarded
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
            c.execute(
                "DELETE FROM histograms WHERE series_id IN (SELECT id FROM histogram_series WHERE run_id=?)",
                (run_id,),
            )
            c.execute("DELETE FROM histogram_series WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM run_events WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM checkpoints WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM capsules WHERE run_id=?", (run_id,))
            c.execute("UPDATE runs SET parent_id=NULL WHERE parent_id=?", (run_id,))
            c.execute("DELETE FROM runs WHERE id=?", (run_id,))
        shutil.rmtree(self.artifacts_root / f"run-{run_id}", ignore_errors=True)

    @_guarded
    def reap(self) -> list[int]:
        """Mark `running` runs whose process is gone as crashed; returns their ids.

        On this host a run is dead exactly when its process is (pid and start time: a stalled
        or stopped process is alive, and a later process that got the same pid is not the
        run's); on another host, when its heartbeat is older than STALE_S + HEARTBEAT_S. A
        read-only store records the deaths through a short-lived writable connection when
        the file allows it, else leaves them for a writer to find.
        """
        now = time.time()
        dead = [
            (run_id, pid, owner, beat)
            for run_id, pid, host, start, beat, owner in self.conn.execute(
                "SELECT id, pid, host, proc_start, heartbeat_at, owner FROM runs WHERE status='running'"
            )
            if not run_alive(pid, host, start, beat, now=now)
        ]
        if not dead:
            return []
        conn = self.conn if not self.readonly else _writable_connection(self.path)
        if conn is None:
            return []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for run_id, pid, owner, beat in dead:
                when = time.strftime("%H:%M:%S", time.localtime(beat)) if beat else "never"
                # The owner goes: should the process live on elsewhere, its next write is refused.
                conn.execute(
                    "UPDATE runs SET status='crashed', ended_at=?, pid=NULL, owner=NULL, error=?"
                    " WHERE id=? AND status='running' AND owner IS ?",
                    (
                        beat or now,
                        f"the run's process (pid {pid}) ended without reporting; last heartbeat {when}",
                        run_id,
                        owner,
                    ),
                )
            conn.execute("COMMIT")
        except sqlite3.OperationalError as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if self.readonly and getattr(err, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
                return []  # a read-only medium after all: nothing recorded
            raise
        finally:
            if conn is not self.conn:
                conn.close()
        return [d[0] for d in dead]

    @_guarded
    def live_runs_here(self) -> int:
        """Runs running on this host in a live process (the CPU's cores are shared among them);
        a sweep's own process trains nothing, so only its trials count."""
        now = time.time()
        rows = self.conn.execute(
            "SELECT pid, host, proc_start, heartbeat_at FROM runs"
            " WHERE status='running' AND host=? AND kind != 'sweep'",
            (HOST,),
        )
        return sum(run_alive(*row, now=now) for row in rows)

    # ------------------------------------------------------------ metrics

    @_guarded
    def add_metrics(
        self,
        run_id: int,
        batch: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
        owner: str | None = None,
    ) -> None:
        """Append one chunk per series: {key: (steps int64, values float64, walls float64)}."""
        with self.write(run_id, owner) as c:
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

    @_guarded
    def series_summaries(self, run_id: int) -> dict[str, dict]:
        rows = _dicts(
            self.conn.execute(
                "SELECT key, count, first_step, last_step, last, min, max, last_wall FROM metric_series"
                " WHERE run_id=? ORDER BY key",
                (run_id,),
            )
        )
        return {d["key"]: d for d in rows}

    def series(self, run_id: int, key: str, after_seq: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, values, walls) of one series as numpy arrays, in logging order."""
        steps, vals, walls, _ = self.series_since(run_id, key, after_seq)
        return steps, vals, walls

    @_guarded
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

    @_guarded
    def truncate_metrics(self, run_id: int, after_step: int, owner: str | None = None) -> None:
        """Drop points logged after `after_step` (a resume replays them from the checkpoint):
        metric points, histograms and health findings. Control events stay: the resumed run
        replays those changes at their steps (`engine.control`)."""
        with self.write(run_id, owner) as c:
            c.execute(
                "DELETE FROM histograms WHERE step>? AND series_id IN"
                " (SELECT id FROM histogram_series WHERE run_id=?)",
                (after_step, run_id),
            )
            c.execute(
                "DELETE FROM run_events WHERE run_id=? AND step>? AND kind='health'", (run_id, after_step)
            )
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

    # ------------------------------------------------------------ events and histograms

    @_guarded
    def add_run_event(self, run_id: int, step: int, kind: str, data: dict, owner: str | None = None) -> int:
        """Record something that happened to the run at `step` (see `_m4_run_events_and_histograms`)."""
        with self.write(run_id, owner) as c:
            return c.execute(
                "INSERT INTO run_events (run_id, step, kind, data, created_at) VALUES (?,?,?,?,?)",
                (run_id, int(step), kind, json.dumps(data), time.time()),
            ).lastrowid

    @_guarded
    def run_events(self, run_id: int, kind: str | None = None, after_id: int = 0) -> list[dict]:
        """The run's events in the order they happened, `data` parsed; `after_id`: only newer
        ones (a follower reads what is new)."""
        sql = "SELECT id, step, kind, data, created_at FROM run_events WHERE run_id=? AND id>?"
        args: list = [run_id, after_id]
        if kind is not None:
            sql, args = sql + " AND kind=?", [*args, kind]
        rows = _dicts(self.conn.execute(sql + " ORDER BY id", args))
        for row in rows:
            row["data"] = json.loads(row["data"])
        return rows

    @_guarded
    def add_histograms(
        self,
        run_id: int,
        step: int,
        hists: dict[str, tuple[np.ndarray, np.ndarray]],
        owner: str | None = None,
    ) -> None:
        """One histogram per key at `step`: {key: (edges, counts)}. A series keeps the edges of
        its first histogram; later ones must have as many bins."""
        with self.write(run_id, owner) as c:
            for key, (edges, counts) in hists.items():
                edges = np.ascontiguousarray(edges, dtype=np.float64)
                counts = np.ascontiguousarray(counts, dtype=np.int64)
                row = c.execute(
                    "SELECT id, length(edges) FROM histogram_series WHERE run_id=? AND key=?", (run_id, key)
                ).fetchone()
                if row is None:
                    sid = c.execute(
                        "INSERT INTO histogram_series (run_id, key, edges) VALUES (?,?,?)",
                        (run_id, key, edges.tobytes()),
                    ).lastrowid
                elif row[1] // 8 != len(counts) + 1:
                    raise StoreError(
                        f"histogram {key} of run {run_id} has {row[1] // 8 - 1} bins, not {len(counts)}"
                    )
                else:
                    sid = row[0]
                c.execute(
                    "INSERT INTO histograms (series_id, step, counts) VALUES (?,?,?)",
                    (sid, int(step), counts.tobytes()),
                )

    @_guarded
    def histogram_keys(self, run_id: int) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT key FROM histogram_series WHERE run_id=? ORDER BY key", (run_id,)
            )
        ]

    @_guarded
    def histograms(self, run_id: int, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(edges, steps, counts[steps × bins]) of one histogram series; empty arrays if none."""
        row = self.conn.execute(
            "SELECT id, edges FROM histogram_series WHERE run_id=? AND key=?", (run_id, key)
        ).fetchone()
        if row is None:
            return np.empty(0), np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.int64)
        edges = np.frombuffer(row[1], dtype=np.float64)
        rows = self.conn.execute(
            "SELECT step, counts FROM histograms WHERE series_id=? ORDER BY step", (row[0],)
        ).fetchall()
        steps = np.array([r[0] for r in rows], dtype=np.int64)
        counts = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.int64).reshape(
            len(rows), len(edges) - 1
        )
        return edges, steps, counts

    # ------------------------------------------------------------ checkpoints

    @_guarded
    def add_checkpoint(
        self, run_id: int, step: int, path: str | Path, tag: str = "periodic", owner: str | None = None
    ) -> int:
        size = Path(path).stat().st_size if Path(path).exists() else None
        with self.write(run_id, owner) as c:
            return c.execute(
                "INSERT INTO checkpoints (run_id, step, path, tag, created_at, bytes) VALUES (?,?,?,?,?,?)",
                (run_id, step, str(path), tag, time.time(), size),
            ).lastrowid

    @_guarded
    def remove_checkpoint(self, checkpoint_id: int, owner: str | None = None) -> None:
        with self.write() as c:
            if owner is not None:
                (run_id,) = c.execute(
                    "SELECT run_id FROM checkpoints WHERE id=?", (checkpoint_id,)
                ).fetchone()
                self.check_owner(run_id, owner)
            c.execute("DELETE FROM checkpoints WHERE id=?", (checkpoint_id,))

    @_guarded
    def checkpoints(self, run_id: int) -> list[dict]:
        return _dicts(
            self.conn.execute("SELECT * FROM checkpoints WHERE run_id=? ORDER BY step, id", (run_id,))
        )

    def last_checkpoint(self, run_id: int) -> dict | None:
        cps = [c for c in self.checkpoints(run_id) if Path(c["path"]).exists()]
        return cps[-1] if cps else None


def _dicts(cursor: sqlite3.Cursor) -> list[dict]:
    """The rows of a query as dicts keyed by the query's own column names."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _run_dict(d: dict) -> dict:
    """A runs row with its JSON fields parsed."""
    for k in ("spec", "summary", "tags"):
        d[k] = json.loads(d[k]) if d[k] else ({} if k != "tags" else [])
    return d


# ------------------------------------------------------------ opening: path, creation, checks


def _check_path(path: Path) -> bool:
    """Whether the database file exists, after checking what the path is, before SQLite sees
    it: a FIFO would block the open, a folder or a file in place of a folder would give
    SQLite's vaguest errors."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        parent = next(p for p in path.parents if p.exists())
        raise StoreError(
            f"{path}: {parent} is a file, not a folder; give a database path in a folder"
        ) from None
    except OSError as err:
        raise StoreError(f"{path}: cannot be opened ({err.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path}: is a folder, not a database file; give the path of a .db file")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(
            f"{path}: is not a regular file (a FIFO, socket or device); give the path of a .db file"
        )
    if st.st_size == 0:
        raise StoreError(
            f"{path}: is an empty file, not a Trainbench database (a failed copy?); remove it to start a new one"
        )
    return True


def _create(path: Path) -> None:
    """Create a new database atomically: built complete in a temporary file beside it, then
    linked into place, so no process ever sees a half-made (say, empty) database."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StoreError(f"{path}: a part of {path.parent} is a file, not a folder") from None
    except OSError as err:
        raise StoreError(f"{path}: cannot create its folder ({err.strerror})") from None
    tmp = str(path.parent / f"{path.name}.{uuid.uuid4().hex[:8]}.new")
    try:  # not mkstemp: the database gets the permissions the umask gives, as SQLite's own would
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise store_error(path, err) from None
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            _apply_migrations(conn, 0)
            conn.execute("COMMIT")
        finally:
            conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it meanwhile: use theirs
        except OSError:  # no hard links here (FAT, some network file systems)
            if not path.exists():
                os.rename(tmp, path)
    except sqlite3.Error as err:
        raise store_error(path, err) from None
    except OSError as err:
        raise store_error(path, err) from None
    finally:
        for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
            Path(leftover).unlink(missing_ok=True)


def _apply_migrations(conn: sqlite3.Connection, version: int) -> None:
    db = sqlite_utils.Database(conn)
    for i in range(version, len(MIGRATIONS)):
        MIGRATIONS[i](db)
        conn.execute(f"PRAGMA user_version={i + 1}")


def _writable_connection(path: Path) -> sqlite3.Connection | None:
    """A short-lived writable connection to a store opened read-only, or None where the file
    cannot be written."""
    if not os.access(path, os.W_OK):
        return None
    try:
        return sqlite3.connect(path, timeout=busy_timeout_s(), isolation_level=None)
    except sqlite3.Error:
        return None


def _connect_readonly(path: Path, timeout: float) -> sqlite3.Connection:
    """mode=ro; on a read-only folder, where a WAL database's shared-memory file cannot be
    made, immutable=1 (nothing can write there either)."""
    uri = "file:" + quote(str(path.resolve()))
    conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as err:
        if getattr(err, "sqlite_errorname", "") not in ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN"):
            raise
    conn.close()
    return sqlite3.connect(uri + "?immutable=1", uri=True, timeout=timeout, isolation_level=None)


def _verify(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version, after checking that this is an undamaged Trainbench database."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.Error as err:
        raise store_error(path, err) from None
    if problems != ["ok"]:
        lines = [
            line for p in problems for line in p.splitlines() if line.strip() and not line.startswith("***")
        ]
        first = (lines or ["quick_check failed"])[0]
        raise StoreError(f"{path}: the database is damaged ({first}); {_RECOVER.format(path=path)}")
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path}: database schema {version} is newer than this Trainbench ({len(MIGRATIONS)}); upgrade Trainbench"
        )
    if version < 0 or (version == 0 and tables):
        raise StoreError(
            f"{path}: not a Trainbench database (an SQLite file of another program); give another --db"
        )
    if version == 0:
        return version  # an SQLite file with nothing in it yet: a writer sets it up
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise StoreError(
            f"{path}: the database is damaged (table {missing[0]} is missing); {_RECOVER.format(path=path)}"
        )
    return version


_RECOVER = "restore a backup, or save what is left with `sqlite3 {path} .recover | sqlite3 recovered.db`"


def store_error(path: Path, err: BaseException) -> StoreError:
    """One line for an SQLite or OS error on the database file: what is wrong and what to do."""
    if isinstance(err, StoreError):
        return err
    if isinstance(err, OSError):
        if err.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return StoreError(no_space(path, err.errno))
        return StoreError(f"{path}: {err.strerror or err}")
    name = getattr(err, "sqlite_errorname", "") or ""
    text = str(err)
    if name.startswith("SQLITE_BUSY") or "database is locked" in text:
        return StoreError(
            f"{path}: locked by another process for more than {busy_timeout_s():g} s; try again when it is done "
            f"(`fuser {path}` shows who holds it)"
        )
    if name == "SQLITE_NOTADB" or "file is not a database" in text:
        return StoreError(
            f"{path}: not an SQLite database (damaged, or another kind of file); give another --db"
        )
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text or "no such table" in text:
        return StoreError(f"{path}: the database is damaged ({text}); {_RECOVER.format(path=path)}")
    if name == "SQLITE_FULL" or "disk is full" in text:
        return StoreError(no_space(path, errno.ENOSPC))
    if name.startswith("SQLITE_IOERR"):
        limit = file_size_limit()
        if limit is not None and _size(path) + _size(Path(f"{path}-wal")) >= limit // 2:
            return StoreError(no_space(path, errno.EFBIG))
        if _free_bytes(path) < 16 * 2**20:
            return StoreError(no_space(path, errno.ENOSPC))
        return StoreError(f"{path}: cannot be written ({text}): a failing disk or file system")
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return StoreError(
            f"{path}: read-only (the file or its folder cannot be written); this needs a writable database"
        )
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return StoreError(f"{path}: cannot be opened (missing permission, or a folder that cannot hold it)")
    return StoreError(f"{path}: {text}")


def no_space(path: Path, code: int) -> str:
    """The message of a write that found no room: a full disk, a quota or a file size limit."""
    why = {
        errno.EFBIG: f"the file size limit (ulimit -f, {file_size_limit() or 0:,} bytes) is reached",
        errno.EDQUOT: "the disk quota is used up",
    }.get(code, "the disk is full")
    return f"no space left on {path} ({why}); free some space and resume the run"


def file_size_limit() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _free_bytes(path: Path) -> int:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return 1 << 62
    return st.f_bavail * st.f_frsize


# ------------------------------------------------------------ processes


def run_alive(pid: int | None, host: str | None, start: str | None, beat: float | None, now: float) -> bool:
    """Whether a `running` row's process lives: on this host by its pid and start time (a
    stalled process is alive however old its heartbeat); elsewhere by a fresh heartbeat."""
    if host == HOST and pid:
        return pid_alive(pid) and (start is None or process_identity(pid) in (start, None))
    return beat is not None and now - beat <= STALE_S + HEARTBEAT_S


def _where(pid: int | None, host: str | None) -> str:
    return f"pid {pid} on this host" if host == HOST else f"pid {pid} on {host}"


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


def process_identity(pid: int) -> str | None:
    """The boot and the start time of process `pid` (Linux): with the pid, unique for as long
    as the machine keeps a pid table, so a reused pid is not mistaken for the run's process.
    None where /proc does not tell."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, IndexError):
        return None
    return f"{boot}/{start}"
