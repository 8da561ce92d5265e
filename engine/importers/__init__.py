"""Runs from the tools users come from, into the run store: TensorBoard logs and MLflow stores.

    trainbench import tensorboard LOGDIR
    trainbench import mlflow ./mlruns            (or sqlite:///mlflow.db, file:///…)

Each imported run is a finished run of kind `imported` whose spec records where it came from
(`import.from`, `import.key`) and its hyperparameters as `config` (MLflow's params; TensorBoard
keeps none), so the Experiments views list, filter and compare it like any run. Its curves are
the store's chunked metrics with their original steps and wall times.

Importing is idempotent: a run is found again by its key (the run folder, or the tracking
store and run id); unchanged, it is skipped without being read again (by its files' sizes, or
MLflow's status and end time); changed, its row is rewritten in place (same id, notes and star
kept) and its points written anew. `Progress` reports each run as it is done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

KIND = "imported"

#: progress(done, total, what): called before the first run and after each one
Progress = Callable[[int, int, str], None]


@dataclass
class Imported:
    """What one import did: run ids created, updated and left as they were."""

    created: list[int]
    updated: list[int]
    unchanged: list[int]
    points: int = 0

    def line(self, source: str) -> str:
        return (
            f"{source}: {len(self.created)} run(s) imported, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged; {self.points:,} points"
        )


def import_spec(name: str, origin: str, key: str, signature, config: dict | None = None, **extra) -> dict:
    """The stored spec of an imported run."""
    return {
        "schema": 1,
        "name": name,
        "description": "",
        "tags": [],
        "task": {"kind": KIND},
        "import": {"from": origin, "key": key, "signature": signature, **extra},
        "config": config or {},
    }


def existing(store, key: str, signature) -> tuple[int | None, bool]:
    """(run id of an earlier import of `key`, whether it is unchanged)."""
    run_id = store.find_by_spec("$.import.key", key)
    if run_id is None:
        return None, False
    spec = store.get_run(run_id)["spec"]
    return run_id, spec.get("import", {}).get("signature") == signature


CHUNK = 50_000  # points per stored chunk of an imported series


def record(
    store,
    spec: dict,
    status: str,
    series: dict[str, tuple[list, list, list]],
    run_id: int | None,
    summary: dict | None = None,
    started: float | None = None,
    ended: float | None = None,
) -> tuple[int, int]:
    """Write one imported run (new, or rewritten as `run_id`) and its series: (id, points).
    Without `started`/`ended`, the run spans its points' wall times."""
    arrays = {
        k: (
            np.asarray(s, dtype=np.int64),
            np.asarray(v, dtype=np.float64),
            np.asarray(w, dtype=np.float64),
        )
        for k, (s, v, w) in series.items()
        if len(s)
    }
    walls = [w for _, _, w in arrays.values()]
    if started is None and walls:
        started = float(min(w.min() for w in walls))
    if ended is None and walls:
        ended = float(max(w.max() for w in walls))
    run_id = store.put_finished_run(spec, KIND, status, started, ended, summary, run_id=run_id)
    longest = max((len(a[0]) for a in arrays.values()), default=0)
    for start in range(0, longest, CHUNK):
        part = {k: tuple(x[start : start + CHUNK] for x in a) for k, a in arrays.items() if len(a[0]) > start}
        store.add_metrics(run_id, part)
    return run_id, sum(len(a[0]) for a in arrays.values())
