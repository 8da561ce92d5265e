"""The example specs of each data family run from a fresh clone: their shipped data equals what
the seeded generator writes, `trainbench validate` accepts them, and each trains a few steps."""

from __future__ import annotations

import json
import runpy

import numpy as np
import pytest

from engine.runner import execute
from engine.store import RunStore
from tests.conftest import EXAMPLES, example, trainbench

FAMILIES = ["cifar10_cnn", "bpe_gpt", "mlp_regression"]


def test_the_shipped_example_data_is_what_the_generator_writes(tmp_path):
    runpy.run_path(str(EXAMPLES / "data" / "make_samples.py"))["write"](tmp_path)
    shipped = EXAMPLES / "data"
    for name in (
        "cifar10-sample/data_batch_1.bin",
        "cifar10-sample/test_batch.bin",
        "cifar10-sample/batches.meta.txt",
        "texts/part1.txt",
        "texts/part4.txt",
    ):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name
    made, ours = np.load(tmp_path / "regression.npz"), np.load(shipped / "regression.npz")
    assert all(np.array_equal(made[k], ours[k]) for k in ("x", "y"))


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_validates_and_trains(name, tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("TRAINBENCH_CACHE", str(tmp_path / "cache"))
    out = trainbench("validate", EXAMPLES / f"{name}.json", "--json", db=db_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["valid"]
    spec = example(name, train={"max_steps": 4, "eval_every": 2}, hardware={"threads": 1})
    rid, status = execute(db_path, spec)
    assert status == "completed", RunStore(db_path).get_run(rid)["error"]
