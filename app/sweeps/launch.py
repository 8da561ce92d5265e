"""Starting a sweep from the GUI: the spec goes to a file, `trainbench sweep FILE` runs as
its own engine process (as every run does, so the sweep outlives the window), and a
`SweepWindow` follows it through the store once its row exists."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.runs.launcher import spec_for_file
from app.runs.process import EngineProcess
from app.sweeps.view import SweepView
from engine.processes import command_line
from engine.store import RunStore

FIND_MS = 200  # how often the window looks for the sweep's row while the process starts


def write_sweep_spec(db_path: Path, spec: dict) -> Path:
    """The sweep's spec file, beside the runs' artifacts."""
    folder = RunStore(db_path, readonly=True).artifacts_root / "sweep-specs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{spec.get('name', 'sweep')}.json"
    path.write_text(json.dumps(spec_for_file(spec), indent=2), encoding="utf-8")
    return path


class SweepWindow(QWidget):
    """A window for one sweep: a started one (`start`) or a stored one (`open`)."""

    promote_requested = Signal(dict)
    open_run_requested = Signal(int)

    def __init__(self, db_path: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.db_path = Path(db_path)
        self.process: EngineProcess | None = None
        self.view: SweepView | None = None
        self.message = QLabel("Starting the sweep…", objectName="subtle", wordWrap=True)
        self.layout_ = QVBoxLayout(self)
        self.layout_.addWidget(self.message)
        self._finder = QTimer(self, interval=FIND_MS)
        self._finder.timeout.connect(self._find_sweep)
        self.resize(1200, 820)

    def start(self, spec: dict) -> None:
        path = write_sweep_spec(self.db_path, spec)
        self.setWindowTitle(f"Sweep — {spec.get('name', 'sweep')}")
        self._run("sweep", str(path))
        self._finder.start()

    def resume(self, sweep_id: int) -> None:
        """Continue a stopped or crashed sweep in a new engine process."""
        self._run("sweep", "--resume", str(sweep_id))
        QTimer.singleShot(FIND_MS * 5, lambda: self.view is not None and self.view.reload())

    def _run(self, *args: str) -> None:
        if self.process is not None:
            self.process.release()
        self.process = EngineProcess(command_line("--db", str(self.db_path), *args, "--quiet"), self)
        self.process.finished.connect(self._on_finished)
        self.process.start()

    def open(self, sweep_id: int) -> None:
        self._show_view(sweep_id)

    def _find_sweep(self) -> None:
        pid = self.process.pid if self.process else None
        if pid is None:
            return
        with_store = RunStore(self.db_path, readonly=True)
        try:
            found = [r["id"] for r in with_store.list_runs(kind="sweep", limit=20) if r["pid"] == pid]
        finally:
            with_store.close()
        if found:
            self._finder.stop()
            self._show_view(found[0])

    def _show_view(self, sweep_id: int) -> None:
        self.view = SweepView(self.db_path, sweep_id, self)
        self.view.promote_requested.connect(self.promote_requested)
        self.view.open_run_requested.connect(self.open_run_requested)
        self.view.resume_requested.connect(self.resume)
        self.message.hide()
        self.layout_.addWidget(self.view, 1)
        self.setWindowTitle(f"Sweep #{sweep_id} — {self.view.results.sweep['name']}")

    def _on_finished(self, code: int, _crashed: bool) -> None:
        self._finder.stop()
        if self.view is None:  # refused before it started: the engine's line says why
            lines = self.process.stderr_tail or [f"the sweep exited with code {code}"]
            self.message.setText(lines[-1])
        else:
            self.view.reload()

    def closeEvent(self, event) -> None:
        if self.process is not None:
            self.process.release()  # the sweep goes on; reopen it from Experiments
        if self.view is not None:
            self.view.close()
        super().closeEvent(event)
