"""File ▸ Import: TensorBoard logs and MLflow stores into the run store, with a progress dialog.

The import is the engine's (`trainbench import tensorboard|mlflow … --events -`, see
`engine.importers`), run as its own process like a run: reading event files and MLflow's
database is seconds of work, the GUI process never loads tensorboard or mlflow, and Cancel
ends it between runs (what was imported stays; importing again skips it). The Experiments
browser picks the new runs up on its next look at the store.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QWidget

from app.runs.process import EngineProcess
from engine.processes import command_line

#: (menu text, `trainbench import` source, what the file dialog asks for)
SOURCES = (
    ("TensorBoard logs (folder)…", "tensorboard", "folder"),
    ("MLflow store (mlruns folder)…", "mlflow", "folder"),
    ("MLflow database (.db)…", "mlflow", "file"),
)


class ImportJob(QObject):
    """One `trainbench import` process and the dialog that shows its progress."""

    finished = Signal(bool, str)  # whether it succeeded, and its summary line or error

    def __init__(self, source: str, target: str, db_path: Path | None, parent: QWidget | None = None):
        super().__init__(parent)
        db = ["--db", str(db_path)] if db_path else []
        self.process = EngineProcess(command_line(*db, "import", source, target, "--events", "-"), self)
        self.summary = ""
        self.dialog = QProgressDialog(f"Importing {target}…", "Cancel", 0, 0, parent)
        self.dialog.setWindowTitle("Import runs")
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(300)
        self.dialog.canceled.connect(self.process.terminate)
        self.process.event.connect(self._on_event)
        self.process.finished.connect(self._on_finished)

    def start(self) -> None:
        self.process.start()

    def _on_event(self, ev: dict) -> None:
        if ev["event"] == "progress" and ev.get("total_steps"):
            self.dialog.setMaximum(int(ev["total_steps"]))
            self.dialog.setValue(int(ev["step"]))
        elif ev["event"] == "log":
            self.summary = ev.get("message", "")
            self.dialog.setLabelText(self.summary)

    def _on_finished(self, code: int, _crashed: bool) -> None:
        self.dialog.reset()
        if code == 0:
            self.finished.emit(True, self.summary)
        else:
            lines = [line for line in self.process.stderr_tail if line.startswith("trainbench: error:")]
            tail = self.process.stderr_tail[-1:] or [f"the import ended with exit code {code}"]
            self.finished.emit(False, (lines or tail)[-1].removeprefix("trainbench: error: "))


def import_runs(parent: QWidget, source: str, ask: str, db_path: Path | None) -> ImportJob | None:
    """Ask for the folder or file, then import it; the result is told in a message box."""
    title = "Import TensorBoard logs" if source == "tensorboard" else "Import an MLflow store"
    if ask == "folder":
        target = QFileDialog.getExistingDirectory(parent, title)
    else:
        target, _ = QFileDialog.getOpenFileName(parent, title, "", "MLflow database (*.db);;All files (*)")
    if not target:
        return None
    job = ImportJob(source, target, db_path, parent)

    def done(ok: bool, message: str) -> None:
        if ok:
            QMessageBox.information(parent, title, message)
        else:
            QMessageBox.warning(parent, title, message)
        job.deleteLater()

    job.finished.connect(done)
    job.start()
    return job
