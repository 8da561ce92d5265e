"""File handling for the designer document: new, open, templates, recent files, save, save as,
export, and asking about unsaved changes. Its QActions and menus go into the main window.

A file someone opens is untrusted input. Before anything reads it, `unopenable` looks at it
with stat() alone: a FIFO blocks whoever opens it until a writer comes, /dev/zero never ends,
and a 2 GB file is no graph. Whatever reading and parsing then raise, the user gets one line
naming the file and the window keeps the model it had.
"""

from __future__ import annotations

import os
import stat
from html import escape
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThreadPool, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from app import icons, settings
from app.designer import commands
from app.designer.document import GraphDocument
from app.designer.export_job import FORMATS, ExportJob, ExportSignals
from app.designer.layout import arrange, layered_positions
from app.designer.scene import on_canvas
from app.designer.validation import snapshot
from engine import RESOURCES
from engine.errors import TrainbenchError
from engine.graph import Graph

TEMPLATES = RESOURCES / "templates"
TEMPLATE_TITLES = {
    "mlp": "MLP",
    "cnn": "CNN",
    "resnet_cnn": "ResNet-style CNN",
    "gpt": "GPT language model",
    "gpt2_small": "GPT-2 small (124M)",
    "gpt_1b": "GPT 1.2B",
}
TEMPLATE_VIEW = (930.0, 590.0)  # the canvas of a 1440×900 window
GRAPH_FILTER = "Trainbench graph (*.json);;All files (*)"
#: larger than any graph the designer can show (a 500-node model is ~150 kB)
MAX_GRAPH_BYTES = 64 * 2**20
Key = QKeySequence.StandardKey


def unopenable(path: str | Path, limit: int = MAX_GRAPH_BYTES) -> str | None:
    """Why `path` cannot be read as a JSON document, from stat() alone; None when it can be."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        return f"{path}: {getattr(err, 'strerror', None) or err}"
    if stat.S_ISDIR(info.st_mode):
        return f"{path}: is a folder, not a graph file"
    if not stat.S_ISREG(info.st_mode):
        return f"{path}: is not a regular file (a pipe, a device or a socket)"
    if info.st_size > limit:
        return f"{path}: is {info.st_size / 2**20:,.0f} MB, too large for a graph file (at most {limit // 2**20} MB)"
    return None


def read_failure(path: str | Path, err: BaseException) -> str:
    """One line naming the file and what is wrong with it, whatever reading it raised."""
    if isinstance(err, TrainbenchError | OSError | UnicodeError):
        text = str(err) if not isinstance(err, OSError) else (err.strerror or str(err))
    elif isinstance(err, RecursionError):
        text = "nested too deeply to be a graph"
    elif isinstance(err, MemoryError):
        text = "too large to read"
    else:  # the reader met a value of a type it did not expect
        text = f"not a valid Trainbench graph ({type(err).__name__}: {err})"
    text = " ".join(text.split())[:600]
    return text if text.startswith(str(path)) else f"{path}: {text}"


def template_path(name: str) -> Path:
    return TEMPLATES / f"{name}.json"


def load_template(name: str, view: tuple[float, float] = TEMPLATE_VIEW) -> Graph:
    """A template, laid out to fit the canvas (its file stores one plain row)."""
    return arrange(Graph.load(template_path(name)), view)


def templates() -> list[str]:
    found = sorted(p.stem for p in TEMPLATES.glob("*.json"))
    known = [n for n in TEMPLATE_TITLES if n in found]
    return known + [n for n in found if n not in known]


class FileActions(QObject):
    status = Signal(str)
    exported = Signal(str, str, object, object)  # format, path, error or None, the files written

    def __init__(self, doc: GraphDocument, window: QWidget, view_size=lambda: TEMPLATE_VIEW):
        super().__init__(window)
        self.doc, self.window = doc, window
        self.view_size = view_size  # () -> the canvas size, to lay templates out for it
        self.new = self._act("&New", self.new_document, Key.New, "new", "Start an empty model")
        self.open = self._act("&Open…", self.open_file, Key.Open, "open", "Open a graph file")
        self.save = self._act("&Save", self.save_file, Key.Save, "save", "Save the model")
        self.save_as = self._act("Save &As…", self.save_file_as, Key.SaveAs, None, "Save under another name")
        self.templates_menu = QMenu("Open &Template", window)
        for name in templates():
            self.templates_menu.addAction(
                TEMPLATE_TITLES.get(name, name.replace("_", " ").title()),
                lambda n=name: self.open_template(n),
            )
        self.recent_menu = QMenu("Open &Recent", window)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.export_menu = QMenu("&Export", window)
        self.export_menu.setIcon(icons.icon("export"))
        self.export_actions = {}
        self._export_signals = ExportSignals(self)
        self._export_signals.finished.connect(self._export_finished)
        for fmt, (title, _filter, _suffix) in FORMATS.items():
            action = self.export_menu.addAction(f"{title}…", lambda f=fmt: self.export(f))
            self.export_actions[fmt] = action

    def _act(self, text, slot, key, icon, tip) -> QAction:
        action = QAction(text, self.window)
        action.setShortcuts(QKeySequence.keyBindings(key))
        if icon:
            action.setIcon(icons.icon(icon))
        action.setStatusTip(tip)
        action.setToolTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def refresh_icons(self) -> None:
        for action, name in ((self.new, "new"), (self.open, "open"), (self.save, "save")):
            action.setIcon(icons.icon(name))
        self.export_menu.setIcon(icons.icon("export"))

    # ------------------------------------------------------------ opening

    def new_document(self) -> None:
        if self.maybe_save():
            self.doc.replace(Graph(name="model"))

    def open_file(self, path: str | Path | None = None) -> bool:
        if not self.maybe_save():
            return False
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self.window, "Open model", self._folder(), GRAPH_FILTER)
            if not path:
                return False
        return self.load(path)

    def load(self, path: str | Path) -> bool:
        """Open without asking about unsaved changes (start-up, recent files after asking).
        A file that cannot be opened is reported and changes nothing."""
        problem, graph = unopenable(path), None
        if problem is None:
            try:
                graph = Graph.load(path)
            except Exception as err:  # noqa: BLE001 - an untrusted file; see read_failure
                problem = read_failure(path, err)
        if graph is None:
            QMessageBox.warning(self.window, "Cannot open the model", problem)
            if not os.path.lexists(path):
                settings.remove_recent_file(str(path))
            return False
        self.doc.replace(graph, Path(path))
        settings.add_recent_file(path)
        self.status.emit(f"Opened {path}")
        self._lay_out_unplaced()
        return True

    def _lay_out_unplaced(self) -> None:
        """A file whose positions cannot be drawn (NaN, infinite, far off the canvas) gets a fresh
        layout, as one undoable step: the model is what matters, the positions are the designer's."""
        graph = self.doc.graph
        if all(on_canvas(*node.pos) for node in graph.nodes.values()):
            return
        positions = layered_positions(graph, self.view_size())
        self.doc.push(commands.MoveNodes(self.doc, positions, text="Lay out"))
        self.status.emit("Some positions in the file could not be shown: the model was laid out afresh")

    def open_template(self, name: str) -> None:
        """A template opens as an untitled copy, so Save asks where to put it."""
        if self.maybe_save():
            viewport = self.view_size()
            self.doc.replace(load_template(name, viewport))
            self.status.emit(f"Opened the {TEMPLATE_TITLES.get(name, name)} template")

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        files = settings.recent_files()
        for path in files:
            self.recent_menu.addAction(Path(path).name, lambda p=path: self.open_file(p)).setToolTip(path)
        if not files:
            self.recent_menu.addAction("No recent files").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", lambda: settings.settings().setValue("recent_files", []))

    # ------------------------------------------------------------ saving

    def save_file(self) -> bool:
        if self.doc.path is None:
            return self.save_file_as()
        return self._save(self.doc.path)

    def save_file_as(self) -> bool:
        suggested = str(Path(self._folder()) / f"{self.doc.graph.name}.json")
        path, _ = QFileDialog.getSaveFileName(self.window, "Save model as", suggested, GRAPH_FILTER)
        if not path:
            return False
        if not Path(path).suffix:
            path += ".json"
        return self._save(Path(path))

    def _save(self, path: Path) -> bool:
        try:
            self.doc.save(path)
        except OSError as err:
            QMessageBox.warning(self.window, "Cannot save the model", f"{path}: {err.strerror or err}")
            return False
        settings.add_recent_file(path)
        self.status.emit(f"Saved {path}")
        return True

    def maybe_save(self) -> bool:
        """Ask about unsaved changes; False when the user cancels (or the save fails)."""
        if not self.doc.dirty:
            return True
        answer = QMessageBox.warning(
            self.window,
            "Unsaved changes",
            f"Save the changes to {self.doc.title} first?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save_file()
        return answer == QMessageBox.StandardButton.Discard

    def _folder(self) -> str:
        if self.doc.path:
            return str(self.doc.path.parent)
        recent = settings.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    # ------------------------------------------------------------ export

    def export(self, fmt: str) -> None:
        analysis = self.doc.analysis
        if analysis is None or analysis.problems:
            found = analysis.problems if analysis else []
            problems = "\n".join(f"• {n}: {m}" if n else f"• {m}" for n, m in found[:8])
            if len(found) > 8:  # the model summary lists them all
                problems += f"\n… and {len(found) - 8} more, listed in the model summary"
            QMessageBox.warning(
                self.window, "The model has problems", f"Fix these before exporting:\n{problems}"
            )
            return
        title, file_filter, suffix = FORMATS[fmt]
        suggested = str(Path(self._folder()) / f"{self.doc.graph.name}{suffix}")
        path, _ = QFileDialog.getSaveFileName(self.window, f"Export as {title}", suggested, file_filter)
        if not path:
            return
        path = Path(path) if Path(path).suffix else Path(path + suffix)
        job = ExportJob(snapshot(self.doc.graph), fmt, path, self._export_signals)
        self.export_menu.setEnabled(False)
        self.status.emit(f"Exporting {title} to {path}…")
        QThreadPool.globalInstance().start(job)

    def _export_finished(self, fmt: str, path: str, error: str | None, written: list[str]) -> None:
        self.export_menu.setEnabled(True)
        title = FORMATS[fmt][0]
        if error:
            QMessageBox.warning(self.window, f"{title} export failed", error)
            self.status.emit(f"{title} export failed")
        else:
            self.status.emit(f"Exported {title}: {', '.join(Path(p).name for p in written)}")
            self._show_exported(title, [Path(p) for p in written])
        self.exported.emit(fmt, path, error, written)

    def _show_exported(self, title: str, files: list[Path]) -> None:
        """Say what was written and where, with a way to get there; it does not block the window."""
        what = {".py": "the model's code", ".pt": "its weights, as initialised (untrained)"}
        items = "".join(
            f"<li><code>{escape(str(f))}</code> — {what.get(f.suffix, title)}</li>"
            if len(files) > 1
            else f"<li><code>{escape(str(f))}</code></li>"
            for f in files
        )
        text = f"<p>Wrote:</p><ul>{items}</ul>"
        if len(files) > 1 and files[0].suffix == ".py":
            text += (
                f"<p>Run <code>python {escape(files[0].name)}</code> beside the weights, or load them with "
                f'<code>model.load_state_dict(torch.load("{escape(files[1].name)}", weights_only=True))</code>.</p>'
            )
        box = QMessageBox(
            QMessageBox.Icon.Information, f"{title} export", text, QMessageBox.StandardButton.Ok, self.window
        )
        box.setObjectName("exportedBox")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setEscapeButton(QMessageBox.StandardButton.Ok)  # else it refuses to close, and the app to quit
        folder = box.addButton("Show in Folder", QMessageBox.ButtonRole.ActionRole)
        folder.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(files[0].parent))))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
