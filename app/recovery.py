"""Autosave to a recovery file while a document has unsaved changes, and offer it back after a crash.

Each running app holds a lock next to its recovery file. A recovery file whose lock nobody
holds belongs to a session that died; a clean exit deletes both. The lock (QLockFile) knows
a dead process from a live one on every platform.

Recovery files are read like any file a user opens (they may be damaged, or not ours): each is
read on its own, one that cannot be read is renamed `*.unreadable` and reported, never
deleted, and never stops the others from being offered.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QTimer, Signal

from app.designer.document import GraphDocument
from app.designer.files import read_failure, unopenable
from engine.graph import Graph

FORMAT = "trainbench.recovery"
INTERVAL_MS = 30_000  # at least this often while there are unsaved changes
AFTER_EDIT_MS = 2_000  # and this long after the last edit
UNREADABLE = ".unreadable"


@dataclass
class Recovery:
    file: Path
    original: Path | None  # the file the user was editing, if it had one
    saved_at: datetime
    graph: Graph

    def discard(self) -> None:
        self.file.unlink(missing_ok=True)
        self.file.with_suffix(".lock").unlink(missing_ok=True)


@dataclass
class Unreadable:
    file: Path  # where it is now (renamed *.unreadable when that was possible)
    reason: str


class Autosaver(QObject):
    failed = Signal(str)  # an autosave could not be written: why

    def __init__(self, doc: GraphDocument, folder: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.doc = doc
        self.folder = Path(folder)
        self.path = self.folder / f"autosave-{os.getpid()}.json"
        self._lock = QLockFile(str(self.path.with_suffix(".lock")))
        self._lock.setStaleLockTime(0)
        self._lock.tryLock(0)
        self._periodic = QTimer(self, interval=INTERVAL_MS)
        self._periodic.timeout.connect(self.save_now)
        self._periodic.start()
        self._debounce = QTimer(self, singleShot=True, interval=AFTER_EDIT_MS)
        self._debounce.timeout.connect(self.save_now)
        doc.edited.connect(self._debounce.start)
        doc.dirty_changed.connect(self._dirty_changed)

    def _dirty_changed(self, dirty: bool) -> None:
        if not dirty:
            self.discard()  # saved (or undone back to the file): nothing to recover

    def save_now(self) -> None:
        if not self.doc.dirty:
            self.discard()
            return
        record = {
            "format": FORMAT,
            "version": 1,
            "original": str(self.doc.path) if self.doc.path else None,
            "saved_at": datetime.now().isoformat(timespec="seconds"),
            "graph": self.doc.graph.to_dict(),
        }
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, self.path)  # never leave a half-written recovery file
        except (OSError, ValueError) as err:  # a full disk, a read-only folder; NaN in a graph
            tmp.unlink(missing_ok=True)
            self.failed.emit(f"Autosave failed: {getattr(err, 'strerror', None) or err}")

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """A clean exit: nothing to recover."""
        self._periodic.stop()
        self._debounce.stop()
        self.discard()
        self._lock.unlock()


def orphaned(folder: Path) -> tuple[list[Recovery], list[Unreadable]]:
    """Recovery files left by sessions that are no longer running (newest first), and those of
    them that could not be read."""
    found, unreadable = [], []
    for file in Path(folder).glob("autosave-*.json"):
        lock = QLockFile(str(file.with_suffix(".lock")))
        lock.setStaleLockTime(0)
        if not lock.tryLock(0):
            continue  # its session is still running
        lock.unlock()
        try:
            found.append(_read(file))
        except Exception as err:  # noqa: BLE001 - a damaged file; see read_failure
            unreadable.append(Unreadable(_set_aside(file), read_failure(file.name, err)))
    for lock_file in Path(folder).glob("autosave-*.lock"):
        if not lock_file.with_suffix(".json").exists():  # a dead session that never autosaved
            lock = QLockFile(str(lock_file))
            lock.setStaleLockTime(0)
            if lock.tryLock(0):
                lock.unlock()  # removes the file
    return sorted(found, key=lambda r: r.saved_at, reverse=True), unreadable


def _read(file: Path) -> Recovery:
    problem = unopenable(file)
    if problem is not None:
        raise OSError(problem.removeprefix(f"{file}: "))
    record = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError("not a Trainbench recovery file")
    original = record.get("original")
    if original is not None and not isinstance(original, str):
        raise ValueError("'original' must be a path")
    saved_at = datetime.fromisoformat(record["saved_at"])
    if saved_at.tzinfo is not None:  # ours are local and naive; others must sort among them
        saved_at = saved_at.astimezone().replace(tzinfo=None)
    return Recovery(file, Path(original) if original else None, saved_at, Graph.from_dict(record["graph"]))


def _set_aside(file: Path) -> Path:
    """Keep a file that could not be read, under a name that is not offered again."""
    aside = file.with_name(file.name + UNREADABLE)
    try:
        os.replace(file, aside)
    except OSError:
        return file
    file.with_suffix(".lock").unlink(missing_ok=True)
    return aside
