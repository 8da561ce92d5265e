"""What a trained run gets wrong, and why: the evaluation and explanations `trainbench explain`
writes beside the run, shown — confusion matrix (counts or normalised), per-class precision,
recall and F1, the most confused samples with predicted vs true label and confidence;
predicted-vs-true scatter and residual histogram for regression; text sampled from each
checkpoint for language models; saliency, integrated gradients and Grad-CAM maps over the
samples; attention maps per layer and head.

Nothing here computes: *Compute* runs `trainbench explain RUN --json` as its own process (torch
never enters the GUI) and the view reads the files it wrote — JSON, PNGs, and `.npz` arrays
loaded with `allow_pickle=False`, so nothing in them is executed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.plots import MetricPlot
from engine import format as fmt
from engine.processes import command_line

METHOD_TITLES = {
    "input": "Sample",
    "saliency": "Saliency",
    "integrated_gradients": "Integrated gradients",
    "gradcam": "Grad-CAM",
}


def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {k: arrays[k] for k in arrays.files}
    except (OSError, ValueError):
        return {}


class EvaluationView(QWidget):
    computed = Signal(bool)  # a computation ended: whether it succeeded

    def __init__(self, db_path: Path, run_id: int, parent: QWidget | None = None):
        super().__init__(parent, objectName="evaluationView")
        self.db_path, self.run_id = Path(db_path), run_id
        self.folder = (
            self.db_path.with_suffix("").parent / (self.db_path.stem + "-artifacts") / f"run-{run_id}"
        )
        self.evaluation: dict | None = None
        self.explained: dict | None = None
        self.error: str | None = None
        self.compute_button = QPushButton("Compute", objectName="computeEvaluation")
        self.compute_button.setToolTip("Run `trainbench explain` on the run's newest checkpoint")
        self.samples = QLineEdit(objectName="explainSamples", placeholderText="samples: first 4")
        self.samples.setToolTip("Validation sample indices to explain, e.g. 0,3,17")
        self.prompt = QLineEdit(objectName="lmPrompt", placeholderText="prompt (language models)")
        self.status = QLabel(objectName="subtle", wordWrap=True)
        top = QHBoxLayout()
        top.addWidget(self.samples)
        top.addWidget(self.prompt, 1)
        top.addWidget(self.compute_button)
        self.tabs = QTabWidget(objectName="evaluationTabs", documentMode=True)
        self._build_tabs()
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)
        self.compute_button.clicked.connect(self.compute)
        self.proc = QProcess(self)
        self.proc.finished.connect(self._finished)
        self.load()

    # ------------------------------------------------------------ building

    def _build_tabs(self) -> None:
        confusion = QWidget()
        cl = QVBoxLayout(confusion)
        self.normalised = QCheckBox("Normalised by true class", objectName="confusionNormalised")
        self.accuracy = QLabel(objectName="subtle")
        row = QHBoxLayout()
        row.addWidget(self.accuracy, 1)
        row.addWidget(self.normalised)
        self.confusion = QTableWidget(objectName="confusionTable")
        self.confusion.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        cl.addLayout(row)
        cl.addWidget(QLabel("rows: true class · columns: predicted class", objectName="subtle"))
        cl.addWidget(self.confusion, 1)
        self.normalised.toggled.connect(lambda _on: self._show_confusion())
        self.per_class = QTableWidget(objectName="perClassTable")
        self.per_class.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.confused = QListWidget(objectName="mostConfused")
        self.confused.setViewMode(QListWidget.ViewMode.IconMode)
        self.confused.setIconSize(QSize(96, 96))
        self.confused.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.confused.setWordWrap(True)
        self.confused.setGridSize(QSize(150, 150))
        regression = QWidget()
        rl = QHBoxLayout(regression)
        self.scatter_plot = MetricPlot("Predicted vs true", legend=False)
        self.residual_plot = MetricPlot("Residuals (predicted − true)", legend=False)
        rl.addWidget(self.scatter_plot, 1)
        rl.addWidget(self.residual_plot, 1)
        self.lm_text = QPlainTextEdit(objectName="lmSamples", readOnly=True)
        self.explain_grid = QWidget(objectName="explainGrid")
        self.explain_layout = QGridLayout(self.explain_grid)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.explain_grid)
        attention = QWidget()
        al = QVBoxLayout(attention)
        pick = QHBoxLayout()
        self.layer = QComboBox(objectName="attentionLayer")
        self.head = QSpinBox(objectName="attentionHead")
        self.sample = QComboBox(objectName="attentionSample")
        for label, w in (("Layer", self.layer), ("Head", self.head), ("Sample", self.sample)):
            pick.addWidget(QLabel(label, objectName="fieldLabel"))
            pick.addWidget(w)
        pick.addStretch(1)
        self.attention_image = QLabel(objectName="attentionImage", alignment=Qt.AlignmentFlag.AlignCenter)
        self.tokens = QLabel(objectName="subtle", wordWrap=True)
        al.addLayout(pick)
        al.addWidget(self.attention_image, 1)
        al.addWidget(self.tokens)
        for w in (self.layer, self.sample):
            w.currentIndexChanged.connect(lambda _i: self._show_attention())
        self.head.valueChanged.connect(lambda _v: self._show_attention())
        self.pages = {
            "confusion": (confusion, "Confusion"),
            "per_class": (self.per_class, "Per class"),
            "confused": (self.confused, "Most confused"),
            "regression": (regression, "Predicted vs true"),
            "lm": (self.lm_text, "Samples"),
            "explain": (scroll, "Explanations"),
            "attention": (attention, "Attention"),
        }

    def _show_pages(self, names: list[str]) -> None:
        self.tabs.clear()
        for name in names:
            widget, title = self.pages[name]
            self.tabs.addTab(widget, title)

    # ------------------------------------------------------------ computing

    def compute(self) -> None:
        if self.proc.state() != QProcess.ProcessState.NotRunning:
            return
        args = ["--db", str(self.db_path), "explain", str(self.run_id), "--json"]
        if self.samples.text().strip():
            args += ["--samples", self.samples.text().strip()]
        if self.prompt.text():
            args += ["--prompt", self.prompt.text()]
        argv = command_line(*args)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("TQDM_DISABLE", "1")
        self.proc.setProcessEnvironment(env)
        self.compute_button.setEnabled(False)
        self.status.setText("Computing in the engine (trainbench explain)…")
        self.proc.start(argv[0], argv[1:])

    def _finished(self, code: int, _status) -> None:
        self.compute_button.setEnabled(True)
        err = bytes(self.proc.readAllStandardError().data()).decode("utf-8", "replace").strip()
        if code != 0:
            lines = err.splitlines() or [f"exit code {code}"]
            self.error = lines[-1].removeprefix("trainbench: error: ")
            self.status.setText(f"Could not evaluate: {self.error}")
            self.computed.emit(False)
            return
        self.error = None
        self.load()
        self.computed.emit(True)

    # ------------------------------------------------------------ showing

    def load(self) -> bool:
        """Show what was computed before (the files beside the run); False when there is none."""
        self.evaluation = _read_json(self.folder / "evaluation" / "evaluation.json")
        self.explained = _read_json(self.folder / "explain" / "explain.json")
        if self.evaluation is None:
            self.status.setText("Not evaluated yet: Compute runs the engine on the run's newest checkpoint.")
            self._show_pages([])
            return False
        ev = self.evaluation
        pages = []
        if ev["objective"] == "classification":
            pages += ["confusion", "per_class", "confused"]
            self._show_confusion()
            self._show_per_class()
            self._show_confused()
        elif ev["objective"] == "regression":
            pages.append("regression")
            self._show_regression()
        else:
            pages.append("lm")
            self._show_lm()
        if self.explained:
            if any(m != "attention" for m in self.explained.get("methods", [])):
                pages.append("explain")
                self._show_explanations()
            if self.explained.get("attention"):
                pages.append("attention")
                self._fill_attention()
        self._show_pages(pages)
        self.status.setText(f"Run #{self.run_id} at step {ev.get('step', 0):,} ({ev['objective']}).")
        self.compute_button.setText("Recompute")
        return True

    def _show_confusion(self) -> None:
        ev = self.evaluation
        if not ev or "confusion" not in ev:
            return
        classes = ev["classes"]
        counts = np.asarray(ev["confusion"])
        share = np.asarray(ev["confusion_normalised"])
        shown = share if self.normalised.isChecked() else counts
        t = self.confusion
        t.setRowCount(len(classes))
        t.setColumnCount(len(classes))
        t.setHorizontalHeaderLabels(classes)
        t.setVerticalHeaderLabels(classes)
        accent = QColor(theme.current().accent)
        for i in range(len(classes)):
            for j in range(len(classes)):
                v = shown[i, j]
                item = QTableWidgetItem(f"{v:.2f}" if self.normalised.isChecked() else f"{int(v):,}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                color = QColor(accent)
                color.setAlphaF(float(min(1.0, share[i, j])) * 0.8)
                item.setBackground(color)
                item.setToolTip(
                    f"true {classes[i]}, predicted {classes[j]}: {int(counts[i, j]):,} ({share[i, j]:.1%})"
                )
                t.setItem(i, j, item)
        t.resizeColumnsToContents()
        self.accuracy.setText(f"accuracy {ev['accuracy']:.2%} on {int(counts.sum()):,} validation samples")

    def _show_per_class(self) -> None:
        ev = self.evaluation
        pc, classes = ev["per_class"], ev["classes"]
        t = self.per_class
        cols = ("precision", "recall", "f1", "support")
        t.setRowCount(len(classes))
        t.setColumnCount(len(cols))
        t.setHorizontalHeaderLabels(["Precision", "Recall", "F1", "Support"])
        t.setVerticalHeaderLabels(classes)
        for i in range(len(classes)):
            for j, c in enumerate(cols):
                v = pc[c][i]
                item = QTableWidgetItem(f"{v:,}" if c == "support" else f"{v:.3f}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                t.setItem(i, j, item)

    def _show_confused(self) -> None:
        self.confused.clear()
        folder = self.folder / "evaluation"
        for c in self.evaluation["most_confused"]:
            text = f"#{c['index']}: {c['true']} → {c['predicted']}\n{c['confidence']:.0%} sure"
            item = QListWidgetItem(text)
            if c.get("thumbnail"):
                item.setIcon(QIcon(QPixmap(str(folder / c["thumbnail"]))))
            else:
                item.setToolTip(", ".join(fmt.value(v) for v in c.get("values", [])))
            item.setData(Qt.ItemDataRole.UserRole, c["index"])
            self.confused.addItem(item)

    def _show_regression(self) -> None:
        arrays = _read_npz(self.folder / "evaluation" / "arrays.npz")
        pred, true = arrays.get("predicted"), arrays.get("true")
        ev = self.evaluation
        for plot in (self.scatter_plot, self.residual_plot):
            plot.plot_item.clear()
        if pred is None or true is None or not len(pred):
            return
        color = QColor(theme.current().accent)
        color.setAlpha(150)
        dots = pg.ScatterPlotItem(true[:, 0], pred[:, 0], size=5, pen=None, brush=color)
        lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
        ideal = pg.PlotDataItem(
            [lo, hi], [lo, hi], pen=pg.mkPen(theme.current().subtext, style=Qt.PenStyle.DashLine)
        )
        self.scatter_plot.plot_item.addItem(ideal)
        self.scatter_plot.plot_item.addItem(dots)
        self.scatter_plot.title.setText(
            f"Predicted vs true · RMSE {fmt.value(ev['rmse'])} · R² {ev['r2']:.3f}"
        )
        hist = ev["residual_histogram"]
        edges, counts = np.asarray(hist["edges"]), np.asarray(hist["counts"])
        if len(counts):
            bars = pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts, brush=color, pen=None)
            self.residual_plot.plot_item.addItem(bars)

    def _show_lm(self) -> None:
        lm = self.evaluation.get("lm_samples") or {}
        parts = [
            f"prompt {lm.get('prompt', '')!r} · temperature {lm.get('temperature')} · top-k {lm.get('top_k')}\n"
        ]
        for s in lm.get("samples", []):
            body = s.get("text", f"(could not sample: {s.get('error')})")
            parts.append(f"── step {s['step']:,} ({s['tag']}) ──\n{lm.get('prompt', '')}{body}\n")
        self.lm_text.setPlainText("\n".join(parts))

    def _show_explanations(self) -> None:
        grid = self.explain_layout
        while grid.count():
            w = grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        methods = ["input", *[m for m in self.explained["methods"] if m != "attention"]]
        for j, m in enumerate(methods):
            grid.addWidget(QLabel(METHOD_TITLES.get(m, m), objectName="fieldLabel"), 0, j + 1)
        folder = self.folder / "explain"
        arrays = None
        for i, s in enumerate(self.explained["samples"]):
            caption = f"#{s['index']}"
            if "predicted" in s:
                caption += f"\ntrue {s['true']}\npredicted {s['predicted']}"
                if "confidence" in s:
                    caption += f" ({s['confidence']:.0%})"
            grid.addWidget(QLabel(caption), i + 1, 0)
            files = s.get("files") or {}
            for j, m in enumerate(methods):
                label = QLabel(objectName=f"explain:{s['index']}:{m}")
                if m in files:
                    label.setPixmap(QPixmap(str(folder / files[m])))
                elif m != "input":  # rows of features: one value per feature, listed
                    if arrays is None:
                        arrays = _read_npz(folder / "attributions.npz")
                    values = arrays.get(m)
                    if values is not None and i < len(values):
                        top = np.argsort(-values[i])[:5]
                        label.setText(
                            "\n".join(f"feature {k}: {fmt.value(float(values[i][k]))}" for k in top)
                        )
                grid.addWidget(label, i + 1, j + 1)

    def _fill_attention(self) -> None:
        layers = self.explained["attention"]
        for w in (self.layer, self.sample):
            w.blockSignals(True)
            w.clear()
        for layer in layers:
            self.layer.addItem(layer["layer"], layer)
        for s in self.explained["samples"]:
            self.sample.addItem(f"#{s['index']}", s["index"])
        self.head.setRange(0, max(0, layers[0]["heads"] - 1))
        for w in (self.layer, self.sample):
            w.blockSignals(False)
        self._show_attention()

    def _show_attention(self) -> None:
        layer = self.layer.currentData()
        k = self.sample.currentIndex()
        if not layer or k < 0:
            return
        self.head.setMaximum(layer["heads"] - 1)
        h = min(self.head.value(), layer["heads"] - 1)
        name = layer["files"][k][h]
        self.attention_image.setPixmap(QPixmap(str(self.folder / "explain" / name)))
        tokens = (self.explained.get("tokens") or [[]])[k] if self.explained.get("tokens") else []
        shape = "×".join(map(str, layer["shape"]))
        self.tokens.setText(
            f"{layer['layer']}, head {h}: {shape} (rows attend to columns)"
            + (f" · tokens: {''.join(tokens)!r}" if tokens else "")
        )

    def shutdown(self) -> None:
        if self.proc.state() != QProcess.ProcessState.NotRunning:
            self.proc.kill()
            self.proc.waitForFinished(3000)


class EvaluationDialog(QDialog):
    def __init__(self, db_path: Path, run_id: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("evaluationDialog")
        self.setWindowTitle(f"Run #{run_id}: evaluation and explanations")
        self.resize(980, 700)
        self.view = EvaluationView(db_path, run_id, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.view)

    def done(self, r: int) -> None:
        self.view.shutdown()
        super().done(r)
