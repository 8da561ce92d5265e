"""A scatter of any two run fields (parameters, FLOPs, latency, a hyperparameter, a metric),
one dot per run in its colour, with the Pareto front marked when both fields have a better
direction: fewer parameters and higher accuracy, say, for a prune/distill family.

Click a dot to select its run (Ctrl: add); drag a rectangle to select the runs inside it.
Runs outside the parallel coordinates' brushes stay, faded.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.elided import ElidedLabel
from app.experiments import fields
from app.experiments.catalog import RunCatalog
from app.experiments.colors import run_color
from app.experiments.columns import column_title
from app.experiments.deferred import DeferredRows
from app.plots.axes import PaddedViewBox, ValueAxis
from app.plots.export import export_button, save_plot
from engine import format as fmt
from engine.compare import metric_goal, pareto_front

DOT = 9
DOT_SELECTED = 14
X_DEFAULTS = ("summary:params", "summary:flops", "summary:latency_ms", "spec:optim.lr")


class _SelectBox(PaddedViewBox):
    """Left-drag draws a selection rectangle (instead of panning); the wheel still zooms. Runs
    that all share a value (every pruned child's parameter count) get a padded range around it."""

    def __init__(self, owner: TradeoffScatter):
        super().__init__()
        self.owner = owner
        self._band: QGraphicsRectItem | None = None

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() != Qt.MouseButton.LeftButton or axis is not None:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        a = self.mapSceneToView(ev.buttonDownScenePos())
        b = self.mapSceneToView(ev.scenePos())
        rect = QRectF(a, b).normalized()
        if self._band is None:
            self._band = QGraphicsRectItem()
            accent = QColor(theme.current().accent)
            self._band.setPen(QPen(accent, 0))
            accent.setAlpha(40)
            self._band.setBrush(QBrush(accent))
            self.addItem(self._band, ignoreBounds=True)
        self._band.setRect(rect)
        if ev.isFinish():
            self.removeItem(self._band)
            self._band = None
            additive = bool(
                ev.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
            )
            self.owner.select_rect(rect, additive)


class TradeoffScatter(DeferredRows, QWidget):
    runs_selected = Signal(list, bool)  # run ids, add to the selection

    def __init__(self, catalog: RunCatalog, parent=None):
        super().__init__(parent)
        self.setObjectName("tradeoffScatter")
        self.catalog = catalog
        self.rows: list[int] = []
        self.ids = np.empty(0, dtype=np.int64)
        self.xs = np.empty(0)
        self.ys = np.empty(0)
        self.inside: set[int] | None = None  # the brushed runs; None: all
        self.selected: set[int] = set()
        self.front: list[int] = []  # indices into ids
        self._dirty = True

        self.x_box = QComboBox(objectName="scatterX")
        self.y_box = QComboBox(objectName="scatterY")
        for box in (self.x_box, self.y_box):
            box.setMinimumContentsLength(10)
        self.log_x = QCheckBox("log x", objectName="scatterLogX")
        self.log_y = QCheckBox("log y", objectName="scatterLogY")
        self.show_front = QCheckBox("Pareto front", objectName="showFront", checked=True)
        self.hint = ElidedLabel(objectName="subtle")  # elided when narrow, never pushing the controls
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("x"))
        bar.addWidget(self.x_box)
        bar.addWidget(self.log_x)
        bar.addSpacing(8)
        bar.addWidget(QLabel("y"))
        bar.addWidget(self.y_box)
        bar.addWidget(self.log_y)
        bar.addSpacing(8)
        bar.addWidget(self.show_front)
        bar.addWidget(self.hint, 1, Qt.AlignmentFlag.AlignRight)
        bar.addWidget(export_button(self, self.export, "scatter"))

        self.view = _SelectBox(self)
        self.plot = pg.PlotWidget(
            viewBox=self.view, axisItems={"left": ValueAxis("left"), "bottom": ValueAxis("bottom")}
        )
        self.plot.setMinimumHeight(200)
        self.plot.setBackground(theme.current().panel)  # before the first (deferred) build
        self.plot.showGrid(x=True, y=True, alpha=0.12)
        self.dots = pg.ScatterPlotItem(hoverable=True, tip=self._tip)
        self.dots.setZValue(10)
        self.dots.sigClicked.connect(self._dot_clicked)
        self.front_line = pg.PlotDataItem(
            pen=pg.mkPen(theme.current().text, width=1.5, style=Qt.PenStyle.DashLine)
        )
        self.front_line.setZValue(5)
        self.front_rings = pg.ScatterPlotItem(size=DOT + 8, brush=None, pxMode=True)
        self.front_rings.setZValue(9)
        for item in (self.front_line, self.front_rings, self.dots):
            self.plot.addItem(item)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(self.plot, 1)
        self.x_box.currentIndexChanged.connect(lambda _i: self.reload())
        self.y_box.currentIndexChanged.connect(lambda _i: self.reload())
        self.log_x.toggled.connect(lambda on: self.plot.setLogMode(x=on))
        self.log_y.toggled.connect(lambda on: self.plot.setLogMode(y=on))
        self.show_front.toggled.connect(lambda _on: self.redraw())
        theme.changed().connect(self._theme_changed)

    # ------------------------------------------------------------ data

    def rebuild(self) -> None:
        """Refill the field choices and re-read both columns."""
        self._dirty = False
        metrics = fields.metric_choices(self.catalog)
        hps = [c for c in fields.hyperparameter_choices(self.catalog)]
        choices = [c for c in metrics if c.startswith("summary:")] + [
            c for c in metrics if not c.startswith("summary:")
        ]
        choices += hps
        x_now, y_now = self.x_box.currentData(), self.y_box.currentData()
        for box in (self.x_box, self.y_box):
            box.blockSignals(True)
            box.clear()
            for c in choices:
                box.addItem(_title(c), c)
        x = (
            x_now
            if x_now in choices
            else next((c for c in X_DEFAULTS if c in choices), choices[0] if choices else None)
        )
        y = y_now if y_now in choices else fields.default_metric(metrics)
        self.x_box.setCurrentIndex(max(0, self.x_box.findData(x)))
        self.y_box.setCurrentIndex(max(0, self.y_box.findData(y)))
        for box in (self.x_box, self.y_box):
            box.blockSignals(False)
        self.reload()

    def set_fields(self, x: str, y: str) -> None:
        self.x_box.setCurrentIndex(self.x_box.findData(x))
        self.y_box.setCurrentIndex(self.y_box.findData(y))

    def reload(self) -> None:
        xc, yc = self.x_box.currentData(), self.y_box.currentData()
        if not xc or not yc:
            self.xs = self.ys = np.full(len(self.rows), np.nan)
        else:
            self.xs = fields.numeric(self.catalog.values(xc, self.rows))
            self.ys = fields.numeric(self.catalog.values(yc, self.rows))
        color = theme.current().subtext
        self.plot.setLabel("bottom", _title(xc) if xc else "", color=color)
        self.plot.setLabel("left", _title(yc) if yc else "", color=color)
        self.redraw()
        self.plot.enableAutoRange()

    def set_inside(self, run_ids: set[int] | None) -> None:
        """The runs inside the parallel coordinates' brushes (others fade); None: all."""
        self.inside = None if run_ids is None else set(run_ids)
        if not self._dirty:
            self.redraw()

    def set_selected(self, run_ids) -> None:
        self.selected = set(run_ids)
        if not self._dirty:
            self.redraw()

    # ------------------------------------------------------------ drawing

    def goals(self) -> tuple[str | None, str | None]:
        xc, yc = self.x_box.currentData(), self.y_box.currentData()
        return (
            metric_goal(xc.split(":", 1)[1]) if xc else None,
            metric_goal(yc.split(":", 1)[1]) if yc else None,
        )

    def redraw(self) -> None:
        t = theme.current()
        self.plot.setBackground(t.panel)
        for name in ("left", "bottom"):
            # in this order: pyqtgraph colours the axis title with the last pen set
            self.plot.getAxis(name).setPen(pg.mkPen(t.border))
            self.plot.getAxis(name).setTextPen(pg.mkPen(t.subtext))
        finite = np.isfinite(self.xs) & np.isfinite(self.ys)
        if self.log_x.isChecked():
            finite &= self.xs > 0
        if self.log_y.isChecked():
            finite &= self.ys > 0
        idx = np.flatnonzero(finite)
        spots = []
        edge = pg.mkPen(t.text, width=2)
        for i in idx:
            rid = int(self.ids[i])
            color = run_color(rid)
            faded = self.inside is not None and rid not in self.inside
            if faded:
                color = QColor(color)
                color.setAlpha(45)
            chosen = rid in self.selected
            spots.append(
                {
                    "pos": (self.xs[i], self.ys[i]),
                    "data": rid,
                    "brush": pg.mkBrush(color),
                    "pen": edge if chosen else pg.mkPen(None),
                    "size": DOT_SELECTED if chosen else DOT,
                }
            )
        self.dots.setData(spots)
        xg, yg = self.goals()
        self.front = []
        if self.show_front.isChecked() and xg and yg and len(idx):
            among = [i for i in idx if self.inside is None or int(self.ids[i]) in self.inside]
            front = pareto_front(self.xs[among], self.ys[among], xg, yg)
            self.front = [among[j] for j in front]
        if self.front:
            fx, fy = self.xs[self.front], self.ys[self.front]
            self.front_line.setData(
                fx, fy, pen=pg.mkPen(t.text, width=1.5, style=Qt.PenStyle.DashLine), stepMode=None
            )
            self.front_rings.setData(fx, fy, pen=pg.mkPen(t.text, width=1.2), brush=None)
        else:
            self.front_line.setData([], [])
            self.front_rings.setData([], [])
        missing = len(self.rows) - len(idx)
        if not (xg and yg):
            text = "Pareto front: pick two fields with a better direction (e.g. params and accuracy)"
        else:
            text = f"Pareto front: {len(self.front)} run{'s' if len(self.front) != 1 else ''} ({_better(xg)} x, {_better(yg)} y)"
        if missing:
            text += f" · {missing} without both fields"
        self.hint.set_full_text(text)
        self.hint.setToolTip(text)

    def front_ids(self) -> list[int]:
        return [int(self.ids[i]) for i in self.front]

    def _tip(self, x, y, data):
        c = self.catalog
        row = c.index.get(int(data))
        name = c.rows["name"][row] if row is not None else ""
        xc, yc = self.x_box.currentData(), self.y_box.currentData()
        return f"#{data} {html.escape(name)}\n{_title(xc)}: {fmt.value(x)}\n{_title(yc)}: {fmt.value(y)}"

    # ------------------------------------------------------------ selecting

    def _dot_clicked(self, _item, points, ev) -> None:
        if len(points):
            additive = bool(
                ev.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
            )
            self.runs_selected.emit([int(points[0].data())], additive)

    def select_rect(self, rect: QRectF, additive: bool) -> None:
        x, y = self.xs, self.ys
        if self.log_x.isChecked():
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.log10(x)
        if self.log_y.isChecked():
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.log10(y)
        with np.errstate(invalid="ignore"):
            inside = (x >= rect.left()) & (x <= rect.right()) & (y >= rect.top()) & (y <= rect.bottom())
        ids = [int(i) for i in self.ids[inside] if self.inside is None or int(i) in self.inside]
        self.runs_selected.emit(ids, additive)

    def export(self, path: str) -> None:
        save_plot(self.plot, path)


def _title(column: str | None) -> str:
    if not column:
        return ""
    return f"best {column[5:]}" if column.startswith("best:") else column_title(column)


def _better(goal: str) -> str:
    return "higher" if goal == "max" else "lower"
