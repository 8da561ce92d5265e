"""The run form's LR finder: a button beside `optim.lr` that sweeps the learning rate on a
throwaway copy of the form's model and offers the suggestion to accept.

The sweep is `trainbench lr-find SPEC --json` in its own process (the GUI never imports torch),
recorded as a run of kind `lr_find`. The dialog plots the loss against the learning rate on a
log axis — the smoothed curve over the faint raw one — with the "valley" and "steepest"
suggestions marked; Accept puts the chosen one into the form's `optim.lr` (through the spec
model, like any edit).
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.plots import MetricPlot
from app.plots.axes import ValueAxis
from app.runs.launcher import spec_for_file
from engine.processes import command_line

LR_PATH = "optim.lr"
SUGGESTIONS = ("valley", "steepest")


class LrAxis(ValueAxis):
    """x is log10(lr); ticks read as learning rates: 1e-05, 0.001, 0.1."""

    def tickValues(self, minVal, maxVal, size):
        lo, hi = math.floor(min(minVal, maxVal)), math.ceil(max(minVal, maxVal))
        return [(1.0, [float(v) for v in range(lo, hi + 1)])]

    def tickStrings(self, values, scale, spacing):
        return [f"{10**v:g}" for v in values]


class LrPlot(MetricPlot):
    """A MetricPlot over log10(lr) whose readout names the learning rate, not a step."""

    def __init__(self):
        super().__init__("Loss vs learning rate")
        axis = LrAxis("bottom")
        self.plot_item.setAxisItems({"bottom": axis})
        self._prepare_axis(axis)
        self._theme_axis(axis, theme.current())
        self.plot_item.setMouseEnabled(x=False, y=False)
        self.marks: dict[str, pg.InfiniteLine] = {}

    def readout_html(self, anchor: float, hits) -> str:
        return super().readout_html(anchor, hits).replace(f"step {anchor:,.0f}", f"lr {10**anchor:.3g}", 1)

    def mark(self, name: str, lr: float | None) -> None:
        old = self.marks.pop(name, None)
        if old is not None:
            self.plot_item.removeItem(old)
        if lr is None:
            return
        pen = QPen(QColor(theme.current().ok if name == "valley" else theme.current().accent))
        pen.setStyle(Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        line = pg.InfiniteLine(
            pos=math.log10(lr),
            angle=90,
            pen=pen,
            label=f"{name} {lr:.2g}",
            labelOpts={"position": 0.9 if name == "valley" else 0.75, "color": theme.current().text},
        )
        self.marks[name] = line
        self.plot_item.addItem(line, ignoreBounds=True)


class LrFinderDialog(QDialog):
    accepted_lr = Signal(float)

    def __init__(self, spec: dict, db_path: Path | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("lrFinder")
        self.setWindowTitle("Learning-rate finder")
        self.resize(760, 520)
        self.spec, self.db_path = spec, db_path
        self.result: dict | None = None
        self.error: str | None = None
        self.plot = LrPlot()
        self.plot.add_curve("loss", "loss", smooth=True)
        self.plot.set_smoothing(0.9)
        self.progress = QProgressBar(objectName="lrFinderBusy", textVisible=False)
        self.progress.setRange(0, 0)
        self.status = QLabel("Sweeping the learning rate on a throwaway copy of the model…", wordWrap=True)
        self.choices = QButtonGroup(self)
        choice_row = QHBoxLayout()
        self.radios: dict[str, QRadioButton] = {}
        for name in SUGGESTIONS:
            radio = QRadioButton(name, objectName=f"lrChoice:{name}")
            radio.setEnabled(False)
            self.choices.addButton(radio)
            self.radios[name] = radio
            choice_row.addWidget(radio)
        self.radios["valley"].setChecked(True)
        choice_row.addStretch(1)
        self.accept_button = QPushButton("Accept", objectName="lrAccept", enabled=False)
        self.accept_button.setToolTip("Set optim.lr to the chosen suggestion")
        self.accept_button.setDefault(True)
        cancel = QPushButton("Close", objectName="lrClose")
        choice_row.addWidget(cancel)
        choice_row.addWidget(self.accept_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot, 1)
        layout.addLayout(choice_row)
        self.accept_button.clicked.connect(self._accept)
        cancel.clicked.connect(self.reject)
        self.proc = QProcess(self)
        self.proc.finished.connect(self._finished)

    def chosen(self) -> float | None:
        for name, radio in self.radios.items():
            if radio.isChecked() and self.result:
                return self.result.get(name)
        return None

    def start(self) -> None:
        folder = self._folder()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"spec-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(spec_for_file(self.spec)), encoding="utf-8")
        self._spec_file = path
        args = (["--db", str(self.db_path)] if self.db_path else []) + ["lr-find", str(path), "--json"]
        argv = command_line(*args)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("TQDM_DISABLE", "1")
        self.proc.setProcessEnvironment(env)
        self.proc.start(argv[0], argv[1:])

    def _folder(self) -> Path:
        if self.db_path is not None:
            return self.db_path.with_suffix("").parent / (self.db_path.stem + "-artifacts") / "lr-find"
        from engine.store import default_db_path

        db = default_db_path()
        return db.with_suffix("").parent / (db.stem + "-artifacts") / "lr-find"

    def _finished(self, code: int, _status) -> None:
        out = bytes(self.proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        err = bytes(self.proc.readAllStandardError().data()).decode("utf-8", "replace").strip()
        getattr(self, "_spec_file", Path()).unlink(missing_ok=True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        try:
            result = json.loads(out.strip().splitlines()[-1]) if code == 0 and out.strip() else None
        except ValueError:
            result = None
        if result is None:
            lines = err.splitlines() or [f"the sweep ended with exit code {code}"]
            self.error = lines[-1].removeprefix("trainbench: error: ")
            self.status.setText(f"The sweep failed: {self.error}")
            return
        self.show_result(result)

    def show_result(self, result: dict) -> None:
        self.result = result
        lrs = np.asarray(result["lr"], dtype=float)
        loss = np.asarray(result["loss"], dtype=float)
        keep = np.isfinite(loss)
        self.plot.set_data("loss", np.log10(lrs[keep]), loss[keep])
        for name in SUGGESTIONS:
            self.plot.mark(name, result.get(name))
            self.radios[name].setEnabled(result.get(name) is not None)
            if result.get(name) is not None:
                self.radios[name].setText(f"{name} {result[name]:.3g}")
        self.plot.auto_range()
        if keep.sum() > 10:  # the diverging tail can be orders above the start: keep the fall legible
            start, low = float(np.median(loss[keep][:10])), float(loss[keep].min())
            self.plot.plot_item.setYRange(low - 0.05 * (start - low), start + 0.6 * (start - low), padding=0)
        self.plot.refresh(force=True)
        valley = result.get("valley")
        self.accept_button.setEnabled(valley is not None or result.get("steepest") is not None)
        if valley is None:
            self.status.setText("The loss did not fall over the sweep: no suggestion.")
            return
        end = " (stopped when the loss diverged)" if result.get("stopped_early") else ""
        self.status.setText(
            f"{result['steps']} steps from {lrs[0]:.0e} to {lrs[-1]:.2g}{end}; stored as run "
            f"#{result['run_id']}. Suggested: valley {valley:.3g}."
        )

    def _accept(self) -> None:
        lr = self.chosen()
        if lr is not None:
            self.accepted_lr.emit(float(lr))
            self.accept()

    def done(self, r: int) -> None:
        if self.proc.state() != QProcess.ProcessState.NotRunning:
            self.proc.kill()
            self.proc.waitForFinished(3000)
        super().done(r)


class LrFinderButton(QPushButton):
    """ "LR finder…" beside the learning rate: sweeps the form's current spec."""

    def __init__(self, model, db_path=lambda: None, parent: QWidget | None = None):
        super().__init__("LR finder…", parent, objectName="lrFinderButton")
        self.model, self.db_path = model, db_path
        self.setToolTip("Sweep the learning rate on a throwaway copy of this model and pick a suggestion")
        self.dialog: LrFinderDialog | None = None
        self.clicked.connect(self.open)
        model.validated.connect(lambda: self.setEnabled(model.valid))

    def open(self) -> LrFinderDialog | None:
        spec = self.model.spec
        if spec is None or spec["task"]["kind"] != "train":
            return None
        self.dialog = LrFinderDialog(spec, self.db_path(), self.window())
        self.dialog.accepted_lr.connect(lambda lr: self.model.set(LR_PATH, lr))
        self.dialog.show()
        self.dialog.start()
        return self.dialog
