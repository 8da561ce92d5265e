"""One trained digits CNN per test session, shared by the prune and distill tests: training
it is most of their cost, and none of them changes it (each child run is a new row)."""

from __future__ import annotations

from pathlib import Path

from engine.runner import execute
from engine.store import RunStore
from tests.conftest import example

_trained: dict[str, tuple[Path, int]] = {}


def digits_cnn(tmp_path_factory) -> tuple[Path, int]:
    """(run database, run id) of a completed digits CNN run (~99% validation accuracy)."""
    if "digits_cnn" not in _trained:
        db = tmp_path_factory.mktemp("parent") / "runs.db"
        run_id, status = execute(db, example("digits_cnn"))
        assert status == "completed", RunStore(db).get_run(run_id)["error"]
        _trained["digits_cnn"] = (db, run_id)
    return _trained["digits_cnn"]
