"""One trained digits CNN per test session, shared by the prune and distill tests: training
it is most of their cost, and none of them changes it (each child run is a new row)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models here are tiny: one thread trains them about as fast as two on an idle
    machine, and 3× faster when another process holds one of the two cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def parent_fixture(name: str):
    """A module fixture, called `name`, giving (store, run id) of the shared trained CNN."""

    @pytest.fixture(scope="module", name=name)
    def opened(tmp_path_factory):
        db, run_id = digits_cnn(tmp_path_factory)
        store = RunStore(db)
        yield store, run_id
        store.close()

    return opened
