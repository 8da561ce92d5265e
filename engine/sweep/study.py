"""The sweep's Optuna study, kept in a journal file in the sweep run's artifact folder.

Chosen by measurement (`python tests/benchmarks/bench_sweep.py storage --kills 30`: a writer
asks, reports and tells trials in a loop and is kill -9'd at a random moment, 30 times). Both
Optuna's SQLite storage and its journal file kept every acknowledged trial (968 and 2,293 of
them); the journal wrote ~3× faster (~120 vs ~39 trials/s) and opened faster (265 vs 340 ms),
with no SQLAlchemy schema to create. Its one failure after a kill: the lock file, left behind
by a kill inside a write (it happened once in 30 here), makes the next writer wait out Optuna's
30 s grace period (30.4 s measured); a torn last line (power loss) would make every later line
unreadable. Only the process holding the sweep run's claim writes the journal, so on open it
removes a stale lock and cuts a torn tail (`repair`: the first write then came 2.2 s after the writer started, imports included).
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
