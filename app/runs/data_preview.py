"""The data preview beside the form's data section: what a run will train on, shown the way
the run will see it — a grid of training images with the training augmentations applied
(*Re-roll* draws them again), a few token windows decoded back to text with the vocabulary,
table rows after dialect detection, missing-value handling and one-hot encoding — and the
detected shapes and class counts.

Everything goes through the engine's own readers (`engine.data`), so a file the engine cannot
read shows the engine's message. They import no torch, and run in a worker thread (scikit-
learn alone takes ~0.5 s to import; an image folder's headers a second or two). Text is never
tokenized here: the windows come from the run's cached token file when there is one, else
from the text's first bytes (a BPE tokenizer is trained when the run starts).
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
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
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
WINDOWS = 6
DEBOUNCE_MS = 250


@dataclass
class Preview:
    summary: dict
    description: str = ""
    classes: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # training samples per class
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    images: list[QImage] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    vocab_size: int = 0
    augmented: bool = False
    dataset: object = None  # what the memory estimate counts: the engine's data set or its DataInfo
    source: object = None  # the loaded images, kept to re-roll their augmentations


def load_preview(data: dict, objective: str) -> Preview:
    """Runs in a worker thread: the data set as the engine loads it, and a sample to show."""
    from engine.data import describe, load_dataset

    source = data["source"]
    if source == "text" or (source in ("parquet", "hf_disk") and objective == "language_model"):
        return _text_preview(data, describe(data, objective))
    ds = load_dataset(data, objective)
    out = Preview(ds.summary(), ds.description, list(ds.classes), dataset=ds)
    labels = _train_labels(ds)
    if ds.classes and labels is not None:
        counts = np.bincount(labels, minlength=len(ds.classes))
        out.counts = counts.tolist()
    if len(ds.input_shape) == 3:  # C × H × W images
        out.source = ds
        out.images, out.labels, out.augmented = sample_images(ds, 0)
    elif source in ("csv", "parquet", "hf_disk"):
        out.header, out.rows = _table_rows(data, objective)
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


def _train_labels(ds) -> np.ndarray | None:
    from engine.data.sources import ImageData

    if isinstance(ds, ImageData):
        return ds.train.labels
    y = getattr(ds, "y_train", None)
    return y if y is not None and y.ndim == 1 and y.dtype.kind in "iu" else None


def sample_images(ds, roll: int) -> tuple[list[QImage], list[str], bool]:
    """The first training images as a run's step would see them: augmented with a generator
    seeded by `roll` (Re-roll draws again), shown before normalization."""
    from engine.data.sources import ImageData

    if isinstance(ds, ImageData):
        split, pipeline = ds.train, ds.train.pipeline
        picks = range(min(IMAGES, len(split)))
        xs, ys = [], []
        for i in picks:
            rng = np.random.default_rng([roll, i]) if pipeline.augment else None
            x, y, _ = split.sample(i, rng)
            xs.append(x)
            ys.append(y)
        norm = (pipeline.mean, pipeline.std) if pipeline.mean else None
        augmented = bool(pipeline.augment)
    else:
        xs, ys = list(ds.x_train[:IMAGES]), [int(v) for v in ds.y_train[:IMAGES]]
        n = ds.normalization
        norm = (n["mean"], n["std"]) if n else None
        augmented = False
    images = [_image(_shown(x, norm)) for x in xs]
    return images, [ds.classes[y] if ds.classes else str(y) for y in ys], augmented


def _shown(x: np.ndarray, norm) -> np.ndarray:
    """Pixels back in [0, 1]: normalization undone, so a jitter's brightness shows."""
    if norm is None:
        return x
    mean, std = (np.asarray(v, np.float32)[:, None, None] for v in norm)
    return np.clip(x * std + mean, 0.0, 1.0)


def _table_rows(data: dict, objective: str) -> tuple[list[str], list[list[str]]]:
    """The first rows as the model gets them: numbers parsed in the detected dialect, missing
    values dropped or imputed, categories one-hot (before standardization)."""
    from engine.data import tables
    from engine.data.sources import _arrow

    if data["source"] == "csv":
        table = tables.build_table(tables.read_csv(data), data, objective)
    else:
        _kind, table = _arrow(data, objective)
    cols = min(COLUMNS, len(table.features))
    more = ["…"] if len(table.features) > cols else []
    header = table.features[:cols] + more + [table.target]
    rows = [
        [fmt.value(float(v)) for v in table.x[r, :cols]] + more + [table.raw_y[r]]
        for r in range(min(ROWS, len(table.x)))
    ]
    return header, rows


def _text_preview(data: dict, info) -> Preview:
    from engine.data import tokens

    tokenizer = data.get("tokenizer") or "byte"
    summary = {
        "dataset": info.name,
        "objective": info.objective,
        "train_samples": info.train_samples,
        "val_samples": info.val_samples,
        "input_shape": list(info.input_shape),
        "output_size": info.output_size,
        "tokenizer": {"kind": "file" if tokenizer not in ("byte", "bpe") else tokenizer},
    }
    out = Preview(summary, info.description, dataset=info, vocab_size=info.output_size)
    ctx = data["context"]
    c = tokens.corpus(data)
    lines = []
    cached = tokens.cached_file(data, c)
    if cached is not None:
        ids, tokenizer = cached
        for w in range(min(WINDOWS, len(ids) // ctx)):
            lines.append(f"[{w * ctx:,}] " + _one_line(tokenizer.decode(ids[w * ctx : (w + 1) * ctx])))
        out.lines = lines
        return out
    text = b"".join(piece or b"\n\n" for piece in tokens.first_bytes(c, WINDOWS * ctx * 4))
    note = (
        ""
        if (data.get("tokenizer") or "byte") == "byte"
        else " (text; the tokenizer is trained when the run starts)"
    )
    step = ctx if note == "" else ctx * 4
    for w in range(min(WINDOWS, max(1, len(text) // step))):
        lines.append(
            f"[{w * step:,}] " + _one_line(text[w * step : (w + 1) * step].decode("utf-8", "replace"))
        )
    out.lines = lines + ([note.strip()] if note else [])
    return out


def _one_line(text: str) -> str:
    return text.replace("\n", "⏎").replace("\t", "→")


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


def describe_shape(summary: dict, classes: list[str], counts: list[int] | None = None) -> str:
    shape = "×".join(str(d) for d in summary.get("input_shape", [])) or "?"
    parts = [
        f"{summary.get('train_samples', 0):,} train / {summary.get('val_samples', 0):,} validation",
        f"input {shape}",
    ]
    objective = summary.get("objective", "")
    if objective == "classification":
        spread = f" ({min(counts):,}–{max(counts):,} training samples each)" if counts else ""
        parts.append(f"{len(classes)} classes{spread}")
    elif objective == "language_model":
        tok = summary.get("tokenizer", {}).get("kind", "")
        parts.append(f"vocabulary {summary.get('output_size', 0):,}" + (f" ({tok})" if tok else ""))
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
        self.reroll = QPushButton("Re-roll", objectName="rerollAugment")
        self.reroll.setToolTip("Draw the training augmentations again")
        self.reroll.clicked.connect(self._reroll)
        self.reroll.hide()
        self._roll = 0
        self._source = None  # the loaded images, while they are shown
        self._roll_job = LatestJob(pool, self)
        self._roll_job.finished.connect(self._rolled)
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
        top = QHBoxLayout()
        top.addWidget(self.shape, 1)
        top.addWidget(self.reroll, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
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

    def _reroll(self) -> None:
        if self._source is None:
            return
        self._roll += 1
        source, roll = self._source, self._roll
        self._roll_job.submit(lambda: sample_images(source, roll))

    def _rolled(self, result, error) -> None:
        if error is None and result is not None and self._source is not None:
            images, labels, _ = result
            self._show_images(images, labels)

    def _start(self) -> None:
        if self._pending is None:
            return
        data, objective = self._pending
        self.shape.setText("Loading…")
        self._say("Loading the data the way a run will…")
        self._job.submit(lambda: load_preview(data, objective))

    def _show(self, preview: Preview | None, error) -> None:
        self._source = preview.source if error is None and preview is not None else None
        self.reroll.setVisible(bool(self._source is not None and preview.augmented))
        if error is not None or preview is None:
            self.summary = self.dataset = None
            self.shape.setText("")
            message = str(error) if error is not None else "no preview"
            self._say(f"The engine cannot load this data:\n{message}", error=True)
            self.loaded.emit(None, message)
            return
        self.summary, self.dataset = preview.summary, preview.dataset
        self.shape.setText(
            f"<b>{preview.summary.get('dataset', '')}</b> · "
            + describe_shape(preview.summary, preview.classes, preview.counts)
        )
        self.shape.setToolTip(preview.description)
        if preview.images:
            self._show_images(preview.images, preview.labels)
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

    def _show_images(self, images: list[QImage], labels: list[str]) -> None:
        while self.image_grid.count():
            item = self.image_grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        columns = 6
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
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
        rows = 2 * -(-len(images) // columns)
        for r in range(self.image_grid.rowCount()):
            self.image_grid.setRowStretch(r, 0)
        self.image_grid.setRowStretch(rows, 1)  # the grid packed at the top, captions under their images
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
