"""The sweep's Optuna study, kept in a journal file in the sweep run's artifact folder.

Chosen by measurement (tests/benchmarks/bench_sweep.py --storage): both Optuna's SQLite
storage and its journal file kept every acknowledged trial through repeated kill -9 of the
writing process, but the journal opens and writes several times faster and needs no schema
(SQLAlchemy and alembic); its two failure modes after a kill are a lock file left behind, which
would make the next writer wait out Optuna's 30 s grace period, and, on power loss, a torn
last line, which would make every later line unreadable. Only the process holding the sweep
run's claim writes the journal, so on open it may remove the stale lock and cut a torn tail.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from engine.sweep.space import make_pruner, make_sampler

STUDY_FILE = "study.journal"
STUDY_NAME = "sweep"
LOCK_SUFFIX = ".lock"  # optuna.storages.journal's lock file: the journal's name plus this

optuna.logging.set_verbosity(logging.WARNING)  # the sweep's table reports trials, not Optuna's log
# A resumed trial replays the steps after its checkpoint; their evaluations were reported already.
warnings.filterwarnings("ignore", message="The reported value is ignored because")


def repair(path: Path) -> None:
    """Undo what a killed writer can leave: the lock file and a last line without its end.
    Call only while holding the sweep's claim (no other writer exists)."""
    Path(str(path) + LOCK_SUFFIX).unlink(missing_ok=True)
    if not path.exists():
        return
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return
        f.seek(0)
        keep = f.read().rfind(b"\n") + 1  # a journal's lines are small; the file is read once
        f.truncate(keep)


def open_study(folder: Path, sweep: dict) -> optuna.Study:
    """Create or reopen the sweep's study in `folder` (the sweep run's artifact folder)."""
    path = folder / STUDY_FILE
    repair(path)
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    study = optuna.create_study(
        storage=JournalStorage(backend),
        study_name=STUDY_NAME,
        direction=sweep["objective"]["direction"],
        sampler=optuna.samplers.RandomSampler(),  # replaced below, once the trials are counted
        pruner=make_pruner(sweep),
        load_if_exists=True,
    )
    study.sampler = make_sampler(sweep, already=len(study.get_trials(deepcopy=False)))
    return study
