"""Shared fixtures: a real run database in a temporary folder, the examples, and the
environment every test runs in (offscreen Qt, no user settings or data touched)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "resources" / "examples"
TEMPLATES = ROOT / "resources" / "templates"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def wait_for(predicate, what: str, timeout: float = 120.0):
    """Poll `predicate` until it gives something true, and return that. The timeout detects a
    hang on a busy machine; it bounds nothing measured."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"hang: {what} did not happen within {timeout} s")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Each test gets its own database and data folders; the user's are never touched."""
    monkeypatch.setenv("TRAINBENCH_DB", str(tmp_path / "runs.db"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture
def one_thread():
    """Torch on one intra-op thread while the test trains in this process: two test workers
    share two cores, and each thread count is the test's own."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def store(db_path):
    from engine.store import RunStore

    s = RunStore(db_path)
    yield s
    s.close()


def example(name: str, **overrides) -> dict:
    """A validated example spec, with `section={field: value}` overrides."""
    from engine.spec import validate_spec

    doc = json.loads((EXAMPLES / f"{name}.json").read_text())
    for section, values in overrides.items():
        doc.setdefault(section, {}).update(values) if isinstance(values, dict) else doc.__setitem__(
            section, values
        )
    return validate_spec(doc, base_dir=EXAMPLES)


def start_run(*args, db, **env) -> subprocess.Popen:
    """A real `trainbench run ARGS --events -` process on `db` (extra environment in `env`), its
    event stream on stdout."""
    env = {**os.environ, "TRAINBENCH_DB": str(db), "PYTHONUNBUFFERED": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", *map(str, args), "--events", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def trainbench(*args, db=None, check=False, timeout=300, **kw) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess."""
    env = {**os.environ, **({"TRAINBENCH_DB": str(db)} if db else {}), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=check,
        cwd=ROOT,
        **kw,
    )
