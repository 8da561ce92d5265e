"""File ▸ Import Model: a PyTorch model or an ONNX file into the designer.

The import is `trainbench import model … --json` in a process of its own (QProcess): it runs
the model's code and imports torch, neither of which the GUI process does. The dialog shows
the engine's import report — ops mapped, opaque modules and why, parameter counts before and
after, the numerical check — and opens the graph, laid out for the canvas, on request.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from PySide6.QtCore import QProcess, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app import richtext
from app.designer.layout import layered_positions
from engine import format as fmt
from engine.graph import Graph
from engine.processes import command_line

SOURCE_FILTER = "PyTorch or ONNX model (*.py *.onnx);;Python file (*.py);;ONNX model (*.onnx);;All files (*)"
TRUST = (
    "Importing a PyTorch model runs its code (in a separate process): import only code you trust. "
    "The graph that comes out references that code by import path; opening the graph later runs "
    "nothing, and the code is imported again only when a run or an export builds the model."
)


def source_argument(source: str, factory: str) -> str:
    """What `trainbench import model` takes: `file.py:factory`, `model.onnx`, or an installed
    library's `package.module:factory` typed as it is."""
    source = source.strip()
    if source.lower().endswith(".py"):
        return f"{source}:{factory.strip()}"
    return source


def report_html(report: dict) -> str:
    """The import report as the dialog shows it."""
    esc = richtext.html
    mapped = ", ".join(f"{esc(op)} {n}" for op, n in report["mapped"].items()) or "none"
    equal = report["params_before"] == report["params_after"]
    rows = [
        ("Source", esc(f"{report['source']} ({report['method']})")),
        ("Nodes", str(report["nodes"])),
        ("Mapped to ops", mapped),
        (
            "Parameters",
            f"{fmt.count(report['params_before'])} before, {fmt.count(report['params_after'])} after"
            + (" (equal)" if equal else " (they differ: see the notes)"),
        ),
        ("Numerical check", f"max abs difference {report['max_abs_diff']:.3g} on a random input"),
    ]
    if report["repeats"]:
        rows.append(("Repeat", ", ".join(f"{esc(r['node'])} × {r['copies']}" for r in report["repeats"])))
    html = (
        "<table cellspacing='0' cellpadding='3'>"
        + "".join(f"<tr><td style='padding-right:14px'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
        + "</table>"
    )
    if report["opaque"]:
        html += f"<p><b>Opaque ({len(report['opaque'])})</b> — kept as the original module:</p><ul>"
        html += "".join(
            f"<li><code>{esc(o['node'])}</code>: <code>{esc(o['target'])}</code> — {esc(o['why'])}</li>"
            for o in report["opaque"]
        )
        html += "</ul>"
    if report["warnings"]:
        html += (
            "<p><b>Notes</b></p><ul>" + "".join(f"<li>{esc(w)}</li>" for w in report["warnings"]) + "</ul>"
        )
    return html


class ImportModelDialog(QDialog):
    """Asks what to import, runs the import in an engine process, shows the report."""

    open_graph = Signal(str)  # the imported graph's path, laid out, to open in the designer
    finished_import = Signal(object, object)  # report or None, error or None

    def __init__(self, parent: QWidget | None = None, view_size=lambda: (930.0, 590.0), folder: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Import Model")
        self.setObjectName("importModelDialog")
        self.view_size, self.folder = view_size, folder
        self.report: dict | None = None
        self._proc: QProcess | None = None

        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.source = QLineEdit(
            objectName="importSource", placeholderText="models.py, model.onnx or package.module:factory"
        )
        browse = QPushButton("Browse…", objectName="importBrowse")
        browse.clicked.connect(self._browse_source)
        form.addRow("Model", _row(self.source, browse))
        self.factory = QLineEdit(objectName="importFactory", placeholderText="make_model")
        self.factory.setToolTip("The function or class in the Python file that builds the model")
        form.addRow("Factory", self.factory)
        self.kwargs = QLineEdit(objectName="importKwargs", placeholderText='{"num_classes": 10}')
        self.kwargs.setToolTip("The factory's keyword arguments, as a JSON object")
        form.addRow("Arguments", self.kwargs)
        self.input = QLineEdit(objectName="importInput", placeholderText="3,224,224")
        self.input.setToolTip("One sample's shape without the batch (not needed for ONNX)")
        self.dtype = QComboBox(objectName="importDtype")
        self.dtype.addItems(["float", "long"])
        self.dtype.setToolTip("float for images and features, long for token ids")
        form.addRow("Input shape", _row(self.input, self.dtype))
        self.out = QLineEdit(objectName="importOut", placeholderText="where the graph is written (.json)")
        save = QPushButton("Browse…", objectName="importSaveBrowse")
        save.clicked.connect(self._browse_out)
        form.addRow("Save graph as", _row(self.out, save))
        layout.addLayout(form)
        trust = QLabel(TRUST, objectName="subtle", wordWrap=True)
        layout.addWidget(trust)

        self.status = QLabel(objectName="importStatus", wordWrap=True)
        layout.addWidget(self.status)
        self.report_view = QTextBrowser(objectName="importReport")
        self.report_view.setOpenLinks(False)
        self.report_view.setMinimumHeight(220)
        self.report_view.hide()
        layout.addWidget(self.report_view, 1)

        buttons = QDialogButtonBox()
        self.import_button = buttons.addButton("Import", QDialogButtonBox.ButtonRole.ActionRole)
        self.import_button.setObjectName("importRun")
        self.open_button = buttons.addButton("Open in Designer", QDialogButtonBox.ButtonRole.AcceptRole)
        self.open_button.setObjectName("importOpen")
        self.open_button.setEnabled(False)
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.import_button.clicked.connect(self.start)
        self.open_button.clicked.connect(self._open)
        close.clicked.connect(self.reject)
        layout.addWidget(buttons)
        self.source.textChanged.connect(self._source_changed)
        self.resize(640, 300)

    # ------------------------------------------------------------ asking

    def _browse_source(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model to import", self.folder, SOURCE_FILTER)
        if path:
            self.source.setText(path)

    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the graph as", self.out.text() or self.folder, "Graph (*.json)"
        )
        if path:
            self.out.setText(path if path.endswith(".json") else f"{path}.json")

    def _source_changed(self, text: str) -> None:
        text = text.strip()
        is_file = text.lower().endswith((".py", ".onnx"))
        self.factory.setEnabled(text.lower().endswith(".py"))
        for w in (self.kwargs, self.input, self.dtype):
            w.setEnabled(not text.lower().endswith(".onnx"))
        if is_file and not self.out.text():
            stem = Path(text).stem
            self.out.setText(str(Path(text).with_name(f"{stem}_graph.json")))

    def argv(self) -> list[str] | None:
        """The import's command line, or None with the reason shown."""
        source = self.source.text().strip()
        if not source:
            return self._refuse("Choose the model to import.")
        if source.lower().endswith(".py") and not self.factory.text().strip():
            return self._refuse("Name the factory: the function or class in the file that builds the model.")
        if not self.out.text().strip():
            return self._refuse("Choose where to save the graph.")
        args = [
            "import",
            "model",
            source_argument(source, self.factory.text()),
            "-o",
            self.out.text().strip(),
        ]
        if not source.lower().endswith(".onnx"):
            if self.kwargs.text().strip():
                try:
                    if not isinstance(json.loads(self.kwargs.text()), dict):
                        raise ValueError("not an object")
                except ValueError:
                    return self._refuse('Arguments must be a JSON object, e.g. {"num_classes": 10}.')
                args += ["--kwargs", self.kwargs.text().strip()]
            if not self.input.text().strip():
                return self._refuse("Give one sample's input shape, e.g. 3,224,224.")
            args += ["--input", self.input.text().strip(), "--dtype", self.dtype.currentText()]
        return command_line(*args, "--json")

    def _refuse(self, message: str) -> None:
        self.status.setText(message)
        return None

    # ------------------------------------------------------------ running

    def start(self) -> bool:
        argv = self.argv()
        if argv is None or (
            self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning
        ):
            return False
        self.report = None
        self.open_button.setEnabled(False)
        self.import_button.setEnabled(False)
        self.status.setText("Importing… (the model is built, traced and checked in an engine process)")
        self.status.setToolTip(shlex.join(argv))
        proc = self._proc = QProcess(self)
        proc.setProgram(argv[0])
        proc.setArguments(argv[1:])
        proc.finished.connect(lambda code, _status: self._done(code))
        proc.errorOccurred.connect(self._failed_to_start)
        proc.start()
        return True

    def _failed_to_start(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._show_error(f"the engine could not be started ({self._proc.errorString()})")

    def _done(self, code: int) -> None:
        out = bytes(self._proc.readAllStandardOutput()).decode(errors="replace")
        err = bytes(self._proc.readAllStandardError()).decode(errors="replace").strip()
        self.import_button.setEnabled(True)
        if code != 0:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            self._show_error(lines[-1].removeprefix("trainbench: error: ") if lines else f"exit code {code}")
            return
        try:
            self.report = json.loads(out)
        except ValueError:
            self._show_error("the engine's report could not be read")
            return
        self.status.setText(f"Imported into {self.report['graph']}")
        self.report_view.setHtml(report_html(self.report))
        self.report_view.show()
        self.open_button.setEnabled(True)
        self.finished_import.emit(self.report, None)

    def _show_error(self, message: str) -> None:
        self.import_button.setEnabled(True)
        self.status.setText(f"<span style='color:#c0392b'>Not imported: {richtext.html(message)}</span>")
        self.finished_import.emit(None, message)

    def _open(self) -> None:
        """Lay the graph out for the canvas (and its Repeat bodies), save that, open it."""
        path = self.report["graph"]
        graph = Graph.load(path)
        for nid, pos in layered_positions(graph, self.view_size()).items():
            graph.nodes[nid].pos = pos
        graph.save(path)
        self.open_graph.emit(path)
        self.accept()

    def done(self, result: int) -> None:
        if self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning:
            self._proc.kill()
            self._proc.waitForFinished(2000)
        super().done(result)


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    for i, w in enumerate(widgets):
        row.addWidget(w, 1 if i == 0 else 0)
    return box
