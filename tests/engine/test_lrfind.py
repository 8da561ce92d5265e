"""The LR finder on the digits MLP: its suggestion lies where that model trains well, accepting
it trains to 95%, and the sweep is a run of kind lr_find in the store."""

import json

import pytest

from engine.lrfind import smooth, suggest
from engine.runner import execute
from engine.store import RunStore
from tests.conftest import EXAMPLES, example, trainbench


def test_lr_finder_on_the_digits_mlp_suggests_a_rate_that_trains_it(db_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    found = trainbench("lr-find", EXAMPLES / "digits_mlp.json", "--json", db=db_path)
    assert found.returncode == 0, found.stderr
    sweep = json.loads(found.stdout)
    assert 1e-3 <= sweep["valley"] <= 3e-2
    assert sweep["steepest"] is not None and len(sweep["lr"]) == len(sweep["loss"]) == sweep["steps"] > 100
    store = RunStore(db_path)
    run = store.get_run(sweep["run_id"])
    assert run["kind"] == "lr_find" and run["status"] == "completed"
    assert run["summary"]["valley"] == sweep["valley"]
    assert store.series_summaries(run["id"])["lr_find/loss"]["count"] == sweep["steps"]
    assert store.checkpoints(run["id"]) == []  # a throwaway copy: nothing kept
    # accepting the suggestion: the run form sets optim.lr to it
    rid, status = execute(db_path, example("digits_mlp", optim={"lr": sweep["valley"]}))
    assert status == "completed"
    assert store.get_run(rid)["summary"]["val/accuracy"] >= 0.95
    text = trainbench("lr-find", EXAMPLES / "digits_mlp.json", "--steps", "60", db=db_path)
    assert text.returncode == 0 and "valley" in text.stdout and "(suggested optim.lr)" in text.stdout


def test_suggestions_on_a_known_curve():
    lrs = [10 ** (-6 + 6 * i / 199) for i in range(200)]
    # flat, falling from 1e-4 to 1e-2, then rising
    loss = [
        2.0 if lr < 1e-4 else max(0.3, 2.0 - 0.85 * (lr / 1e-4 - 1) ** 0.25) if lr < 1e-2 else 3.0
        for lr in lrs
    ]
    s = suggest(lrs, smooth(loss, 0.0))
    assert 1e-4 < s["valley"] < 1e-2 and 1e-4 < s["steepest"] < 1e-2
    assert suggest(lrs, [2.0] * 200) == {"valley": None, "steepest": None}  # flat: no suggestion


def test_only_train_specs_are_swept(db_path):
    from engine.errors import SpecError
    from engine.lrfind import lr_find

    spec = example("digits_cnn_prune", prune={"parent": 1})
    with pytest.raises(SpecError, match="task.kind: the LR finder sweeps a train spec"):
        lr_find(spec)
