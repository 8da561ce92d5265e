"""Fast, column-at-a-time queries for a table of many runs (the Experiments browser).

`RunStore.list_runs` parses every run's spec, about 0.13 ms a run: 1.3 s for 10,000. A table
needs a few fields of each run, so these queries let SQLite pick them out: the runs' own
columns in one query, spec and summary fields with `json_extract` (all of one kind in one
query, ~70 ms for 10,000 specs), final and best metrics from the per-series summary rows.

A column is named by a string: a plain runs column (`name`, `status`...), `spec:optim.lr`,
`summary:params`, `metric:val/accuracy` (its last value) or `best:val/loss` (its minimum or
maximum, by `metric_goal`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from engine.compare import flatten, metric_goal

#: the runs' own columns a table shows, in the order `run_rows` returns them
BASE_COLUMNS = (
    "id",
    "name",
    "kind",
    "status",
    "parent_id",
    "created_at",
    "started_at",
    "ended_at",
    "starred",
    "tags",
    "notes",
)
PREFIXES = ("spec", "summary", "metric", "best")


def run_rows(store) -> dict[str, list]:
    """Every run's own columns, newest first, as lists by column name (`tags` as JSON text)."""
    store.reap()
    rows = store.conn.execute(f"SELECT {', '.join(BASE_COLUMNS)} FROM runs ORDER BY id DESC").fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in BASE_COLUMNS]
    return {name: list(values) for name, values in zip(BASE_COLUMNS, columns, strict=True)}


def elapsed(started_at: float | None, ended_at: float | None) -> float | None:
    """Seconds a run ran, or has been running while `ended_at` is unset; None before it started."""
    if started_at is None:
        return None
    return (ended_at if ended_at is not None else time.time()) - started_at


def split_column(column: str) -> tuple[str, str]:
    """`spec:optim.lr` → ("spec", "optim.lr"); a runs column → ("run", name)."""
    prefix, sep, rest = column.partition(":")
    if sep and prefix in PREFIXES:
        return prefix, rest
    return "run", column


def column_values(
    store, columns: Iterable[str], run_ids: Iterable[int] | None = None
) -> dict[str, dict[int, object]]:
    """{column: {run id: value}} for spec, summary and metric columns, for every run or `run_ids`.
    A run without the field is left out of its column's dict."""
    groups: dict[str, list[str]] = {}
    for column in columns:
        prefix, field = split_column(column)
        if prefix != "run":
            groups.setdefault(prefix, []).append(field)
    ids = None if run_ids is None else list(run_ids)
    where, args = _where_ids("id", ids)
    out: dict[str, dict[int, object]] = {}
    for prefix in ("spec", "summary"):
        fields = groups.get(prefix, [])
        if not fields:
            continue
        picks = ", ".join(f"json_extract({prefix}, ?)" for _ in fields)
        paths = [_json_path(f) for f in fields]
        result = [dict() for _ in fields]
        for run_id, *values in store.conn.execute(f"SELECT id, {picks} FROM runs{where}", [*paths, *args]):
            for d, v in zip(result, values, strict=True):
                if v is not None:
                    d[run_id] = v
        out.update({f"{prefix}:{f}": d for f, d in zip(fields, result, strict=True)})
    where, args = _where_ids("run_id", ids)
    for prefix in ("metric", "best"):
        for key in groups.get(prefix, []):
            stat = "last" if prefix == "metric" else (metric_goal(key) or "last")
            sql = f"SELECT run_id, {stat} FROM metric_series{where}{' AND' if where else ' WHERE'} key=?"
            out[f"{prefix}:{key}"] = {r: v for r, v in store.conn.execute(sql, [*args, key]) if v is not None}
    return out


def all_tags(store) -> list[str]:
    """Every tag used by any run, sorted case-insensitively."""
    return [
        t
        for (t,) in store.conn.execute(
            "SELECT DISTINCT j.value FROM runs, json_each(runs.tags) AS j ORDER BY lower(j.value)"
        )
    ]


def metric_keys(store) -> list[str]:
    """Every metric key logged by any run."""
    return [k for (k,) in store.conn.execute("SELECT DISTINCT key FROM metric_series ORDER BY key")]


def field_keys(store, sample: int = 200) -> tuple[list[str], list[str]]:
    """(spec fields, summary fields) found in the newest `sample` runs, as dotted keys. Summary
    fields are the scalar results (lists and the data set description left out)."""
    spec_keys: set[str] = set()
    summary_keys: set[str] = set()
    for spec, summary in store.conn.execute(
        "SELECT spec, summary FROM runs ORDER BY id DESC LIMIT ?", (sample,)
    ):
        spec_keys.update(flatten(json.loads(spec)))
        flat = flatten({k: v for k, v in json.loads(summary or "{}").items() if k != "dataset"})
        summary_keys.update(k for k, v in flat.items() if not isinstance(v, list))
    return sorted(spec_keys), sorted(summary_keys)


def change_token(store) -> tuple:
    """Changes when a run is added, deleted, started, finished, renamed or starred; cheap
    enough to poll every couple of seconds (it reads no spec)."""
    return store.conn.execute(
        "SELECT COUNT(*), MAX(id), TOTAL(started_at), TOTAL(ended_at), TOTAL(starred), TOTAL(length(name)),"
        " TOTAL(length(status)) FROM runs"
    ).fetchone()


def data_version(store) -> int:
    """SQLite's counter of commits by *other* connections: nothing to re-read while it stands still."""
    return store.conn.execute("PRAGMA data_version").fetchone()[0]


def _json_path(dotted: str) -> str:
    return "$" + "".join(f'."{part}"' for part in dotted.split("."))


def _where_ids(column: str, ids: list[int] | None) -> tuple[str, list]:
    if ids is None:
        return "", []
    return f" WHERE {column} IN ({', '.join('?' * len(ids))})", list(ids)
