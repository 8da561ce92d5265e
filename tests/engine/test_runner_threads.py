"""CPU threads: `hardware.threads`, or the machine's cores shared among the runs live on this
host, taken up again as runs start and end; logged in the run log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from engine.runner import CpuShare, cpu_cores
from engine.store import RunStore
from tests.conftest import ROOT, TEMPLATES, example

HANG_S = 180


def test_the_share_is_the_cores_over_the_live_runs_and_the_runs_processes():
    cores = cpu_cores()
    assert CpuShare(None).choose(live_runs=1) == (cores, f"{cores} cores shared by 1 run live on this host")
    assert CpuShare(None).choose(live_runs=cores * 2)[0] == 1  # never 0
    n, why = CpuShare(None, local_procs=2).choose(live_runs=1)
    assert n == max(1, cores // 2) and why.endswith("and this run's 2 processes here")
    assert CpuShare(3, local_procs=2).choose(live_runs=5) == (3, "hardware.threads")


def test_an_environment_that_sets_omp_num_threads_is_obeyed(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert CpuShare.of({"threads": None}).choose(live_runs=1) == (1, "OMP_NUM_THREADS")
    assert CpuShare.of({"threads": 2}).choose(live_runs=1) == (2, "hardware.threads")  # the spec first
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert CpuShare.of({"threads": None}).asked is None


def test_an_explicit_count_is_used_and_logged(db_path):
    from engine.runner import execute

    rid, status = execute(db_path, example("wine_csv", train={"epochs": 1}, hardware={"threads": 1}))
    assert status == "completed"
    log = (RunStore(db_path).artifacts_dir(rid) / "run.log").read_text()
    assert "using 1 CPU thread (hardware.threads)" in log


def _start(spec, db) -> subprocess.Popen:
    env = {**os.environ, "TRAINBENCH_DB": str(db)}
    env.pop("OMP_NUM_THREADS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", str(spec), "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _log_until(path, pattern: str, proc) -> str:
    """The run log once it has a line matching `pattern` (a generous hang detector only)."""
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if re.search(pattern, text):
            return text
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} in {path} after {HANG_S} s:\n{text}")


@pytest.mark.skipif(cpu_cores() < 2, reason="needs cores to share")
def test_two_concurrent_runs_share_the_cores_and_take_them_back(tmp_path, db_path):
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "model": str(TEMPLATES / "mlp.json"),
                "data": {"source": "digits"},
                "train": {"max_steps": 10_000_000, "batch_size": 16},
                "checkpoint": {"every": 1_000_000},
            }
        )
    )
    cores, half = cpu_cores(), max(1, cpu_cores() // 2)
    thread = f"using {half} CPU threads? \\({cores} cores shared by 2 runs live on this host\\)"
    a = _start(spec, db_path)
    logs = RunStore(db_path).artifacts_root
    try:
        alone = _log_until(logs / "run-1" / "run.log", r"parameters", a)  # training
        assert f"using {cores} CPU threads ({cores} cores shared by 1 run live on this host)" in alone
        b = _start(spec, db_path)
        try:
            _log_until(logs / "run-2" / "run.log", thread, b)  # B starts with its share ...
            _log_until(logs / "run-1" / "run.log", thread, a)  # ... and A gives one back
        finally:
            b.send_signal(signal.SIGTERM)
            assert b.wait(HANG_S) == 130
        back = f"using {cores} CPU threads \\({cores} cores shared by 1 run live on this host\\)"
        assert (
            len(re.findall(back, _log_until(logs / "run-1" / "run.log", f"{thread}[\\s\\S]*{back}", a))) == 2
        )
    finally:
        a.send_signal(signal.SIGTERM)
        assert a.wait(HANG_S) == 130
