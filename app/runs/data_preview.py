"""The data preview beside the form's data section: a few rows, images or lines of the chosen
data, and the shape the engine detects (samples, input shape, classes, objective).

Loading goes through the engine's own loaders (`engine.data.load_dataset`, `read_csv`), so the
preview shows exactly what a run would train on, and a file the engine cannot read shows the
engine's message. It runs in a worker thread: scikit-learn alone takes ~0.5 s to import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.runs.background import LatestJob
from engine import format as fmt

ROWS = 8
COLUMNS = 8
IMAGES = 12
LINES = 14
DEBOUNCE_MS = 250


@dataclass
class Preview:
    summary: dict
    description: str = ""
    classes: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    images: list[QImage] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    dataset: object = None  # the engine's Dataset, for the memory estimate's data bytes


def load_preview(data: dict, objective: str) -> Preview:
    """Runs in a worker thread: the data set as the engine loads it, and a sample to show."""
    from engine.data import load_dataset
    from engine.data.files import read_csv

    ds = load_dataset(data, objective)
    out = Preview(ds.summary(), ds.description, list(ds.classes), dataset=ds)
    source = data["source"]
    if source == "csv":
        header, rows = read_csv(data["path"])
        out.header, out.rows = header, rows[:ROWS]
    elif source == "text":
        with open(data["path"], encoding="utf-8", errors="replace") as fh:
            out.lines = [line.rstrip("\n")[:200] for _, line in zip(range(LINES), fh, strict=False)]
    elif ds.x_train.ndim == 4:  # N × C × H × W images
        for x, y in zip(ds.x_train[:IMAGES], ds.y_train[:IMAGES], strict=False):
            out.images.append(_image(x))
            out.labels.append(ds.classes[int(y)] if ds.classes else str(y))
    else:
        x = ds.x_train.reshape(len(ds.x_train), -1)
        cols = min(COLUMNS, x.shape[1])
        out.header = [f"x{i}" for i in range(cols)] + (["…"] if x.shape[1] > cols else []) + ["target"]
        for xi, yi in zip(x[:ROWS], ds.y_train[:ROWS], strict=False):
            target = (
                ds.classes[int(yi)] if ds.classes else ", ".join(fmt.value(float(v)) for v in np.ravel(yi))
            )
            cells = [fmt.value(float(v)) for v in xi[:cols]]
            out.rows.append(cells + (["…"] if x.shape[1] > cols else []) + [target])
    return out


def _image(x: np.ndarray) -> QImage:
    """A C×H×W float sample as an 8-bit image, scaled to its own range."""
    lo, hi = float(x.min()), float(x.max())
    arr = ((x - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(x)).astype(np.uint8)
    c, h, w = arr.shape
    if c == 1:
        data = np.ascontiguousarray(arr[0])
        return QImage(data.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    data = np.ascontiguousarray(arr[:3].transpose(1, 2, 0))
    return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def describe_shape(summary: dict, classes: list[str]) -> str:
    shape = "×".join(str(d) for d in summary.get("input_shape", [])) or "?"
    parts = [
        f"{summary.get('train_samples', 0):,} train / {summary.get('val_samples', 0):,} validation",
        f"input {shape}",
    ]
    objective = summary.get("objective", "")
    if objective == "classification":
        parts.append(f"{len(classes)} classes")
    elif objective == "language_model":
        parts.append("byte vocabulary (256)")
    elif objective == "regression":
        parts.append(f"{summary.get('output_size', 1)} target(s)")
    return " · ".join(parts) + f" · {objective.replace('_', ' ')}"


class DataPreview(QWidget):
    """Shows the preview of a data section; `loaded` carries the engine's summary (or error)."""

    loaded = Signal(object, object)  # summary dict or None, error message or None

    def __init__(self, pool: QThreadPool, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("dataPreview")
        self._job = LatestJob(pool, self)
        self._job.finished.connect(self._show)
        self._pending: tuple[dict, str] | None = None
        self._shown_for: tuple | None = None
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self._start)
        self.summary: dict | None = None
        self.dataset = None

        self.shape = QLabel(objectName="dataShape", wordWrap=True)
        self.stack = QStackedWidget()
        self.message = QLabel(objectName="subtle", wordWrap=True, alignment=Qt.AlignmentFlag.AlignCenter)
        self.table = QTableWidget(objectName="previewTable")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setAlternatingRowColors(True)
        self.images = QWidget(objectName="previewImages")
        self.image_grid = QGridLayout(self.images)
        self.image_grid.setSpacing(6)
        self.text = QPlainTextEdit(objectName="previewText", readOnly=True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        for w in (self.message, self.table, self.images, self.text):
            self.stack.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.shape)
        layout.addWidget(self.stack, 1)
        self._say("Choose a data source to preview it.")

    def request(self, data: dict | None, objective: str) -> None:
        """Preview this (checked, normalised) data section, or say why there is nothing to show."""
        if data is None:
            self._pending, self._shown_for = None, None
            self._timer.stop()
            self._say("Fix the data fields to see a preview.")
            self.shape.clear()
            return
        key = (repr(sorted(data.items())), objective)
        if key == self._shown_for:
            return
        self._shown_for = key
        self._pending = (dict(data), objective)
        self._timer.start()

    @property
    def busy(self) -> bool:
        return self._timer.isActive() or self._job.busy

    def _start(self) -> None:
        if self._pending is None:
            return
        data, objective = self._pending
        self.shape.setText("Loading…")
        self._say("Loading the data the way a run will…")
        self._job.submit(lambda: load_preview(data, objective))

    def _show(self, preview: Preview | None, error) -> None:
        if error is not None or preview is None:
            self.summary = self.dataset = None
            self.shape.setText("")
            message = str(error) if error is not None else "no preview"
            self._say(f"The engine cannot load this data:\n{message}", error=True)
            self.loaded.emit(None, message)
            return
        self.summary, self.dataset = preview.summary, preview.dataset
        self.shape.setText(
            f"<b>{preview.summary.get('dataset', '')}</b> · {describe_shape(preview.summary, preview.classes)}"
        )
        self.shape.setToolTip(preview.description)
        if preview.images:
            self._show_images(preview)
        elif preview.lines:
            self.text.setPlainText("\n".join(preview.lines))
            self.stack.setCurrentWidget(self.text)
        elif preview.rows:
            self._show_table(preview.header, preview.rows)
        else:
            self._say("Nothing to show.")
        self.loaded.emit(preview.summary, None)

    def _show_table(self, header: list[str], rows: list[list[str]]) -> None:
        self.table.clear()
        self.table.setColumnCount(len(header))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(header)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        # every row shown without scrolling, also when the preview sits under the fields
        self.table.resizeRowsToContents()
        rows = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        bar = self.table.horizontalScrollBar().sizeHint().height()
        frame = 2 * self.table.frameWidth()
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height() + rows + bar + frame)
        self.stack.setCurrentWidget(self.table)

    def _show_images(self, preview: Preview) -> None:
        while self.image_grid.count():
            item = self.image_grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        columns = 6
        for i, (image, label) in enumerate(zip(preview.images, preview.labels, strict=True)):
            scale = max(1, 56 // max(image.width(), image.height()))
            pixmap = QPixmap.fromImage(image).scaled(
                image.width() * scale,
                image.height() * scale,
                Qt.AspectRatioMode.IgnoreAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
            cell = QLabel(objectName="previewImage", alignment=Qt.AlignmentFlag.AlignCenter)
            cell.setPixmap(pixmap)
            cell.setFixedSize(pixmap.size())
            cell.setToolTip(f"class {label}")
            caption = QLabel(label, objectName="subtle", alignment=Qt.AlignmentFlag.AlignCenter)
            self.image_grid.addWidget(cell, 2 * (i // columns), i % columns)
            self.image_grid.addWidget(caption, 2 * (i // columns) + 1, i % columns)
        self.stack.setCurrentWidget(self.images)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setObjectName("fieldError" if error else "subtle")
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.stack.setCurrentWidget(self.message)


def resolve_data_paths(data: dict, base_dir: Path | None) -> dict:
    """A data section with its path made absolute, as validation does for a run."""
    out = dict(data)
    if out.get("path"):
        out["path"] = str(((base_dir or Path.cwd()) / out["path"]).resolve())
    return out
