"""Damaged, foreign, locked and read-only databases through the real command line: every
command that reads or writes the store answers what it cannot use with one line naming the
file — exit 1, no traceback, no hang, and `run` refuses before any training — while a store
locked by a writer or kept on a read-only medium can still be listed and shown."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.runner import execute
from engine.store import RunStore
from tests.conftest import EXAMPLES, ROOT, example

HANG_S = 120  # a generous hang detector, not a speed bound


@pytest.fixture(scope="module")
def good_db(tmp_path_factory) -> Path:
    """Two short completed runs, vacuumed so that every page of the file is in use."""
    db = tmp_path_factory.mktemp("good") / "runs.db"
    for lr in (0.01, 0.02):
        _, status = execute(db, example("wine_csv", train={"epochs": 1}, optim={"lr": lr}))
        assert status == "completed"
    conn = sqlite3.connect(db)
    conn.execute("VACUUM")
    conn.close()
    return db


def _truncated(db: Path) -> Path:
    with db.open("r+b") as fh:
        fh.truncate(db.stat().st_size // 2)
    return db


def _pages_overwritten(db: Path) -> Path:
    rng = random.Random(12)  # seeded: the same pages, the same bytes, every time
    pages = db.stat().st_size // 4096
    with db.open("r+b") as fh:
        for page in rng.sample(range(1, pages), 3):  # page 0 keeps the header
            fh.seek(page * 4096)
            fh.write(rng.randbytes(4096))
    return db


def _sql(*statements: str):
    def damage(db: Path) -> Path:
        conn = sqlite3.connect(db)
        for s in statements:
            conn.execute(s)
        conn.commit()
        conn.close()
        return db

    return damage


def _replaced(make):
    def damage(db: Path) -> Path:
        db.unlink()
        make(db)
        return db

    return damage


def _under_a_file(db: Path) -> Path:
    return db.parent / "runs.db" / "inside.db"  # runs.db is a regular file


DAMAGE = {
    "truncated": (_truncated, "damaged"),
    "pages overwritten": (_pages_overwritten, "damaged"),
    "table dropped": (_sql("DROP TABLE checkpoints"), "table checkpoints is missing"),
    "schema newer": (_sql("PRAGMA user_version=99"), "database schema 99 is newer"),
    "schema negative": (_sql("PRAGMA user_version=-3"), "not a Trainbench database"),
    "another program's": (_sql("PRAGMA user_version=0"), "not a Trainbench database"),
    "not SQLite": (_replaced(lambda p: p.write_bytes(b"not a database\n" * 500)), "not an SQLite database"),
    "zero-length": (_replaced(lambda p: p.write_bytes(b"")), "is an empty file"),
    "a folder": (_replaced(lambda p: p.mkdir()), "is a folder"),
    "a FIFO": (_replaced(lambda p: os.mkfifo(p)), "is not a regular file"),
    "under a file": (_under_a_file, "is a file, not a folder"),
}


def _commands(tmp: Path) -> dict[str, list[str]]:
    spec = EXAMPLES / "wine_csv.json"
    return {
        "runs": ["runs"],
        "show": ["show", "1"],
        "compare": ["compare", "1", "2"],
        "export": ["export", "1", "--format", "csv", "--out", str(tmp / "m.csv")],
        "run": ["run", str(spec), "--quiet", "--set", "train.epochs=1"],
    }


def _cli(db: Path, args: list[str], env: dict | None = None, prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "engine.cli", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=HANG_S,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _one_line(out: subprocess.CompletedProcess) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1, (out.returncode, out.stdout[-500:], out.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_store_is_one_clear_line_for_every_command(damage, good_db, tmp_path):
    make, reason = DAMAGE[damage]
    db = make(Path(shutil.copy(good_db, tmp_path / "runs.db")))
    commands = _commands(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        outs = dict(zip(commands, pool.map(lambda a: _cli(db, a), commands.values()), strict=True))
    for name, out in outs.items():
        line = _one_line(out)
        assert line.startswith(f"trainbench: error: {db}: ") and reason in line, (name, line)
    assert not (tmp_path / "runs-artifacts").exists()  # `run` refused before it made anything
    assert not (tmp_path / "m.csv").exists()


def _hold_lock(db: Path, exclusive_mode: bool) -> subprocess.Popen:
    code = (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        + ("c.execute('PRAGMA locking_mode=EXCLUSIVE')\n" if exclusive_mode else "")
        + "c.execute('BEGIN EXCLUSIVE')\n"
        "c.execute('UPDATE runs SET notes=notes')\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.parametrize("exclusive_mode", [False, True], ids=["writer", "exclusive-mode"])
def test_a_lock_held_beyond_the_busy_timeout(exclusive_mode, good_db, tmp_path):
    """A writer holding the lock: readers go on (WAL), `run` gives up after the busy timeout
    with one line. A connection in exclusive locking mode shuts readers out too: one line."""
    db = Path(shutil.copy(good_db, tmp_path / "runs.db"))
    holder = _hold_lock(db, exclusive_mode)
    try:
        env = {"TRAINBENCH_BUSY_TIMEOUT": "0.5"}
        outs = {name: _cli(db, args, env) for name, args in _commands(tmp_path).items()}
    finally:
        holder.kill()
        holder.wait()
    locked = f"trainbench: error: {db}: locked by another process for more than 0.5 s"
    for name, out in outs.items():
        if name == "run" or exclusive_mode:
            assert _one_line(out).startswith(locked), (name, out.stderr)
        else:
            assert out.returncode == 0, (name, out.stderr)
    if not exclusive_mode:
        assert "wine-csv" in outs["runs"].stdout and (tmp_path / "m.csv").exists()


def _without_root_powers() -> list[str]:
    """A command prefix under which even root obeys file permissions (or [] when not root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file read-only for this process")
    caps = "-dac_override,-dac_read_search,-fowner,-linux_immutable"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_a_read_only_store_can_be_listed_and_shown_but_not_run(good_db):
    folder = Path(tempfile.mkdtemp(prefix="trainbench-ro-"))
    try:
        db = Path(shutil.copy(good_db, folder / "runs.db"))
        store = RunStore(db)  # a run whose process is gone, for the reap on a read-only store
        rid = store.create_run({"name": "gone"})
        store.start_run(rid, pid=_dead_pid())
        store.close()
        db.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        prefix = _without_root_powers()
        listed = _cli(db, ["runs", "--json"], prefix=prefix)
        assert listed.returncode == 0, listed.stderr
        assert [(r["id"], r["status"]) for r in json.loads(listed.stdout)] == [
            (3, "running"),  # nothing could record its end here
            (2, "completed"),
            (1, "completed"),
        ]
        shown = _cli(db, ["show", "1"], prefix=prefix)
        assert shown.returncode == 0 and "train/loss" in shown.stdout, shown.stderr
        refused = _one_line(_cli(db, ["run", str(EXAMPLES / "wine_csv.json"), "--quiet"], prefix=prefix))
        assert refused.startswith(f"trainbench: error: {db}: read-only"), refused
    finally:
        folder.chmod(stat.S_IRWXU)
        shutil.rmtree(folder)


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_open_is_checked_in_the_store_api_too(tmp_path):
    from engine.errors import StoreError

    empty = RunStore(tmp_path / "missing.db", readonly=True)  # nothing has run yet
    assert empty.list_runs() == [] and empty.reap() == []
    with pytest.raises(StoreError, match=f"no run 1 in {tmp_path / 'missing.db'}"):
        empty.get_run(1)
    with pytest.raises(StoreError, match="opened read-only"):
        empty.create_run({"name": "r"})
    assert list(tmp_path.iterdir()) == []  # a reader creates nothing
    RunStore(tmp_path / "new" / "runs.db").close()  # a writer creates it, folders included
    assert oct((tmp_path / "new" / "runs.db").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["runs.db"]  # no temporary left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
