"""MLflow tracking stores: every run of every experiment, with its params (the run's `config`),
its tags and its metric histories (steps and timestamps kept).

Read through MLflow's own client, so both stores MLflow writes locally work: a folder
(`./mlruns`, `file:///…/mlruns`) and a database (`sqlite:///mlflow.db`). Params are strings
in MLflow; those that read as JSON numbers or booleans are stored as such, so parallel
coordinates can place them on an axis.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.errors import DataError
from engine.importers import Imported, Progress, existing, import_spec, record

STATUS = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "stopped"}  # RUNNING, SCHEDULED: stopped
PAGE = 1000


def tracking_uri(uri: str) -> str:
    """A store as MLflow's client takes it: a folder or a `.db` file path becomes a URI."""
    if "://" in uri:
        return uri
    path = Path(uri).expanduser().resolve()
    if path.is_file():
        return f"sqlite:///{path}"
    if path.is_dir():
        return path.as_uri()
    raise DataError(
        f"{uri}: no such MLflow store (give its folder, a .db file, or a URI such as sqlite:///mlflow.db)"
    )


def _param(text: str):
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        return text
    return value if isinstance(value, int | float | bool) else text


def import_store(store, uri: str, progress: Progress | None = None) -> Imported:
    """Import every run of the MLflow store at `uri`; see `engine.importers`."""
    try:
        from mlflow.entities import ViewType
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise DataError("importing from MLflow needs the mlflow package: pip install mlflow") from None
    resolved = tracking_uri(uri)
    # MLflow 3 refuses its folder store unless asked; reading an old store is what this is for.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=resolved)
    try:
        experiments = _all(lambda token: client.search_experiments(view_type=ViewType.ALL, page_token=token))
        runs = [
            (e, r)
            for e in experiments
            for r in _all(
                lambda token, e=e: client.search_runs(
                    [e.experiment_id], run_view_type=ViewType.ALL, max_results=PAGE, page_token=token
                )
            )
        ]
    except Exception as err:  # noqa: BLE001 - MLflow's errors are many; one line names the store
        raise DataError(f"{uri}: cannot be read as an MLflow tracking store ({err})") from None
    result = Imported([], [], [])
    if progress:
        progress(0, len(runs), resolved)
    for i, (experiment, run) in enumerate(runs):
        info, data = run.info, run.data
        key = f"mlflow:{resolved}#{info.run_id}"
        signature = [info.status, info.end_time, data.metrics, data.params, data.tags]
        run_id, unchanged = existing(store, key, json.loads(json.dumps(signature)))
        name = info.run_name or data.tags.get("mlflow.runName") or info.run_id
        if unchanged:
            result.unchanged.append(run_id)
        else:
            series = {}
            for metric in data.metrics:
                history = sorted(
                    client.get_metric_history(info.run_id, metric), key=lambda m: (m.step, m.timestamp)
                )
                series[metric] = (
                    [m.step for m in history],
                    [m.value for m in history],
                    [m.timestamp / 1000 for m in history],
                )
            spec = import_spec(
                name,
                "mlflow",
                key,
                signature,
                config={k: _param(v) for k, v in sorted(data.params.items())},
                store=resolved,
                experiment=experiment.name,
                run=info.run_id,
                tags=dict(sorted(data.tags.items())),
            )
            spec["tags"] = [f"mlflow:{experiment.name}"]
            started = info.start_time / 1000 if info.start_time else None
            ended = info.end_time / 1000 if info.end_time else None
            status = STATUS.get(info.status, "stopped")
            new_id, points = record(store, spec, status, series, run_id, started=started, ended=ended)
            (result.updated if run_id else result.created).append(new_id)
            result.points += points
        if progress:
            progress(i + 1, len(runs), name)
    return result


def _all(page):
    """Every item of a paged MLflow listing."""
    items, token = [], None
    while True:
        batch = page(token)
        items.extend(batch)
        token = batch.token
        if not token:
            return items
