"""A full disk, for real and without root: the engine runs under a file size limit
(RLIMIT_FSIZE; Python ignores SIGXFSZ, so a write past it fails with EFBIG, as one on a full
disk fails with ENOSPC). A checkpoint save or a metric write that hits it says "no space left
on <that file>", the run is `failed`, the database stays intact, and the run resumes once
there is room."""

from __future__ import annotations

import json
import resource
import sqlite3
import subprocess
import sys

import pytest

from engine.store import RunStore
from tests.conftest import EXAMPLES, ROOT, TEMPLATES, trainbench

LIMIT = 150_000  # above the database of a short run, below the MLP's checkpoint (~210 kB)
pytestmark = pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")


def _run_limited(db, *sets: str) -> subprocess.CompletedProcess:
    def limit_file_sizes():
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))

    # The spec lives outside any git checkout: its capsule then holds no `git diff`, whose size
    # (up to a MiB of uncommitted edits) would decide where the limit is met.
    spec = json.loads((EXAMPLES / "digits_mlp.json").read_text())
    spec["model"] = str(TEMPLATES / "mlp.json")
    path = db.parent / "spec.json"
    path.write_text(json.dumps(spec))
    args = ["--db", str(db), "run", str(path), "--quiet"]
    args += [x for s in ("hardware.threads=1", *sets) for x in ("--set", s)]
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        preexec_fn=limit_file_sizes,
    )


def _one_line(out: subprocess.CompletedProcess) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def _intact(db) -> None:
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_checkpoint_save_that_finds_no_space_fails_the_run_and_resumes_later(db_path):
    out = _run_limited(db_path, "train.max_steps=200", "checkpoint.every=20")
    store = RunStore(db_path)
    folder = store.artifacts_dir(1) / "checkpoints"
    target = folder / "step-00000020.pt"
    assert _one_line(out) == (
        f"trainbench: error: run 1 failed: no space left on {target} (the file size limit "
        f"(ulimit -f, {LIMIT:,} bytes) is reached); free some space and resume the run"
    )
    run = store.get_run(1)
    assert run["status"] == "failed" and f"no space left on {target}" in run["error"]
    assert list(folder.iterdir()) == []  # neither a partial checkpoint nor its temporary file
    _intact(db_path)

    resumed = trainbench("run", "--resume", 1, "--quiet", db=db_path)
    assert resumed.returncode == 0, resumed.stderr
    assert store.get_run(1)["status"] == "completed"
    assert store.series(1, "train/loss")[0].tolist() == list(range(1, 201))


def test_a_metric_write_that_finds_no_space_fails_the_run_and_keeps_the_database(db_path):
    out = _run_limited(db_path, "train.max_steps=10000000", "checkpoint.every=10000000")
    assert _one_line(out) == (
        f"trainbench: error: run 1 failed: no space left on {db_path} (the file size limit "
        f"(ulimit -f, {LIMIT:,} bytes) is reached); free some space and resume the run"
    )
    _intact(db_path)
    store = RunStore(db_path)
    run = store.get_run(1)
    assert run["status"] == "failed" and run["error"].startswith(f"no space left on {db_path}")
    steps = store.series(1, "train/loss")[0]  # none, if the very first write found no room
    assert steps.tolist() == list(range(1, len(steps) + 1))  # what was stored is whole
