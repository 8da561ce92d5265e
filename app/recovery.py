"""Autosave to a recovery file while a document has unsaved changes, and offer it back after a crash.

Each running app holds a lock next to its recovery file. A recovery file whose lock nobody
holds belongs to a session that died; a clean exit deletes both. The lock (QLockFile) knows
a dead process from a live one on every platform.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QTimer

from app.designer.document import GraphDocument
from engine.errors import GraphError
from engine.graph import Graph

FORMAT = "trainbench.recovery"
INTERVAL_MS = 30_000  # at least this often while there are unsaved changes
AFTER_EDIT_MS = 2_000  # and this long after the last edit


@dataclass
class Recovery:
    file: Path
    original: Path | None  # the file the user was editing, if it had one
    saved_at: datetime
    graph: Graph

    def discard(self) -> None:
        self.file.unlink(missing_ok=True)
        self.file.with_suffix(".lock").unlink(missing_ok=True)


class Autosaver(QObject):
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
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, self.path)  # never leave a half-written recovery file

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """A clean exit: nothing to recover."""
        self._periodic.stop()
        self._debounce.stop()
        self.discard()
        self._lock.unlock()


def orphaned(folder: Path) -> list[Recovery]:
    """Recovery files left by sessions that are no longer running, newest first."""
    found = []
    for file in Path(folder).glob("autosave-*.json"):
        lock = QLockFile(str(file.with_suffix(".lock")))
        lock.setStaleLockTime(0)
        if not lock.tryLock(0):
            continue  # its session is still running
        lock.unlock()
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
            found.append(
                Recovery(
                    file,
                    Path(record["original"]) if record.get("original") else None,
                    datetime.fromisoformat(record["saved_at"]),
                    Graph.from_dict(record["graph"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError, GraphError):
            file.unlink(missing_ok=True)  # unreadable: nothing we could offer
    for lock_file in Path(folder).glob("autosave-*.lock"):
        if not lock_file.with_suffix(".json").exists():  # a dead session that never autosaved
            lock = QLockFile(str(lock_file))
            lock.setStaleLockTime(0)
            if lock.tryLock(0):
                lock.unlock()  # removes the file
    return sorted(found, key=lambda r: r.saved_at, reverse=True)
