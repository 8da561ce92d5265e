"""Parallel coordinates: one vertical axis per hyperparameter and a last one for a chosen metric,
one line per run coloured by that metric (bright = best). Drag along an axis to brush a range:
only runs inside every brush stay in the table. Click an axis without dragging to clear its
brush; click a line to select its run (Ctrl: add to the selection).

Lines are drawn in a dozen colour bins (one NaN-separated curve each), so 10,000 runs cost a
dozen draw calls, not 10,000.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QMenu,
    QToolButton,
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
from app.plots.export import export_button, save_plot
from app.plots.ticks import nice_ticks, tick_labels
from engine import format as fmt
from engine.compare import metric_goal

BINS = 12
MAX_HIGHLIGHT = 60  # selected runs drawn in their own colour, on top
PICK_DISTANCE = 0.035  # of the axis height
TICKS = 5  # about this many labels on a numeric axis
TITLE_Y = 1.02  # the axis titles' baseline, just above the axes' tops
TEXT_MARGIN = 4  # pixels around a pg.TextItem's text (its QTextDocument's margin)


def axis_ticks(axis: fields.Axis) -> list[tuple[float, str]]:
    """(position in [0, 1], label) along an axis: every category; for numbers, round values
    (`ticks.nice_ticks`) labelled so that no two read alike, or on a log axis the powers of ten;
    one tick where every run has the same value."""
    if axis.categories is not None:
        return axis.ticks()
    lo, hi = axis.lo, axis.hi
    if hi == lo:
        return [(0.5, fmt.value(10**lo if axis.log else lo))]
    if axis.log:
        decades = list(range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1))
        thin = max(1, -(-len(decades) // TICKS))
        return [((k - lo) / (hi - lo), tick_labels([10.0**k], 10.0**k)[0]) for k in decades[::thin]]
    step, values = nice_ticks(lo, hi, TICKS)
    return [((v - lo) / (hi - lo), label) for v, label in zip(values, tick_labels(values, step), strict=True)]


class _BrushBox(pg.ViewBox):
    """No pan or zoom: a drag along an axis brushes it, a click picks a line or clears a brush."""

    def __init__(self, owner: ParallelCoordinates):
        super().__init__(enableMenu=False)
        self.owner = owner
        self.setMouseEnabled(False, False)

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        start = self.mapSceneToView(ev.buttonDownScenePos())
        now = self.mapSceneToView(ev.scenePos())
        self.owner.drag_brush(start.x(), start.y(), now.y(), ev.isFinish())

    def mouseClickEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        additive = bool(
            ev.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        )
        self.owner.click(p.x(), p.y(), additive)

    def wheelEvent(self, ev, axis=None):
        ev.ignore()


class ParallelCoordinates(DeferredRows, QWidget):
    brush_changed = Signal(object)  # set of run ids inside every brush, or None without brushes
    run_clicked = Signal(int, bool)  # run id, add to the selection

    def __init__(self, catalog: RunCatalog, parent=None):
        super().__init__(parent)
        self.setObjectName("parallelCoordinates")
        self.catalog = catalog
        self.rows: list[int] = []
        self.ids: np.ndarray = np.empty(0, dtype=np.int64)
        self.columns: list[str] | None = None  # None: pick the varying hyperparameters
        self.metric_column: str | None = None
        self.axes: list[fields.Axis] = []
        self.brushes: dict[int, tuple[float, float]] = {}
        self.selected: set[int] = set()
        self._dirty = True
        self._items: list = []
        self._highlight: list = []
        self._brush_items: dict[int, QGraphicsRectItem] = {}

        self.metric_box = QComboBox(objectName="parallelMetric")
        self.metric_box.setMinimumContentsLength(16)
        self.axes_button = QToolButton(text="Axes", objectName="parallelAxes")
        self.axes_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.axes_button.setMenu(QMenu(self.axes_button, aboutToShow=self._fill_axes_menu))
        self.clear_button = QToolButton(text="Clear brushes", objectName="clearBrushes")
        self.clear_button.clicked.connect(self.clear_brushes)
        self.hint = ElidedLabel(objectName="subtle")  # elided when narrow, never pushing the controls
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("Colour by"))
        bar.addWidget(self.metric_box)
        bar.addWidget(self.axes_button)
        bar.addWidget(self.clear_button)
        bar.addWidget(self.hint, 1, Qt.AlignmentFlag.AlignRight)
        bar.addWidget(export_button(self, self.export, "parallel-coordinates"))

        self.view = _BrushBox(self)
        self.view.sigResized.connect(self._fit_range)
        self.plot = pg.PlotWidget(viewBox=self.view)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMinimumHeight(200)
        self.plot.setBackground(theme.current().panel)  # before the first (deferred) build
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(self.plot, 1)
        self.metric_box.currentIndexChanged.connect(self._metric_chosen)
        theme.changed().connect(self._theme_changed)

    # ------------------------------------------------------------ data

    def set_selected(self, run_ids) -> None:
        self.selected = set(run_ids)
        if not self._dirty:
            self._draw_highlight()

    def rebuild(self) -> None:
        """Re-read the columns for the current rows and draw everything."""
        self._dirty = False
        choices = fields.metric_choices(self.catalog)
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        for c in choices:
            self.metric_box.addItem(column_title(c) if not c.startswith("best:") else f"best {c[5:]}", c)
        if self.metric_column not in choices:
            self.metric_column = fields.default_metric(choices)
        self.metric_box.setCurrentIndex(max(0, self.metric_box.findData(self.metric_column)))
        self.metric_box.blockSignals(False)
        columns = (
            self.columns
            if self.columns is not None
            else fields.varying_hyperparameters(self.catalog, self.rows)
        )
        if self.metric_column:
            columns = [c for c in columns if c != self.metric_column] + [self.metric_column]
        self.catalog.ensure(columns)  # one query per kind of column, not one per axis
        self.axes = [fields.make_axis(c, self.catalog.values(c, self.rows)) for c in columns]
        had_brushes = bool(self.brushes)
        self.brushes = {}
        self.redraw()
        if had_brushes:
            self.brush_changed.emit(None)

    def _metric_chosen(self, _index: int) -> None:
        self.metric_column = self.metric_box.currentData()
        self.rebuild()

    def _fill_axes_menu(self) -> None:
        menu = self.axes_button.menu()
        menu.clear()
        shown = {a.column for a in self.axes}
        auto = menu.addAction("Hyperparameters that vary")
        auto.setCheckable(True)
        auto.setChecked(self.columns is None)
        auto.triggered.connect(lambda: self.set_columns(None))
        menu.addSeparator()
        for column in fields.hyperparameter_choices(self.catalog):
            action = menu.addAction(column.split(":", 1)[1])
            action.setCheckable(True)
            action.setChecked(column in shown)
            action.toggled.connect(lambda on, c=column: self._toggle_axis(c, on))

    def _toggle_axis(self, column: str, on: bool) -> None:
        current = [a.column for a in self.axes if a.column != self.metric_column]
        if on and column not in current:
            current.append(column)
        elif not on:
            current = [c for c in current if c != column]
        self.set_columns(current)

    def set_columns(self, columns: list[str] | None) -> None:
        self.columns = None if columns is None else list(columns)
        self.rebuild()

    # ------------------------------------------------------------ drawing

    def positions(self) -> np.ndarray:
        """runs × axes, each in [0, 1] or NaN."""
        if not self.axes:
            return np.empty((len(self.rows), 0))
        return np.column_stack([a.positions for a in self.axes])

    def inside(self) -> np.ndarray:
        """Per run: inside every brush."""
        pos = self.positions()
        keep = np.ones(len(self.rows), dtype=bool)
        for k, (lo, hi) in self.brushes.items():
            with np.errstate(invalid="ignore"):
                keep &= (pos[:, k] >= lo) & (pos[:, k] <= hi)
        return keep

    def redraw(self) -> None:
        for item in self._items + self._highlight + list(self._brush_items.values()):
            self.plot.removeItem(item)
        self._items, self._highlight, self._brush_items = [], [], {}
        t = theme.current()
        self.plot.setBackground(t.panel)
        n = len(self.axes)
        if n:
            hint = "Drag along an axis to filter the table · click a line to select"
        else:
            hint = "No hyperparameter varies among these runs" if len(self.rows) else "No runs to plot"
        self.hint.set_full_text(hint)
        self.hint.setToolTip(hint)
        if n == 0:
            return
        pos = self.positions()
        keep = self.inside()
        goodness = pos[:, -1] if self.metric_column else np.full(len(self.rows), np.nan)
        if self.metric_column and metric_goal(self.metric_column.split(":", 1)[1]) == "min":
            goodness = 1 - goodness
        # faint grey: outside a brush; then colour bins by metric, best drawn last (on top)
        self._add_lines(pos[~keep], QColor(t.subtext), alpha=35)
        cmap = pg.colormap.get("viridis")
        missing = keep & ~np.isfinite(goodness)
        self._add_lines(pos[missing], QColor(t.subtext), alpha=110)
        bins = np.clip((np.nan_to_num(goodness, nan=0) * BINS).astype(int), 0, BINS - 1)
        alpha = 150 if keep.sum() < 500 else 70
        for b in range(BINS):
            mask = keep & np.isfinite(goodness) & (bins == b)
            if mask.any():
                self._add_lines(pos[mask], cmap.map((b + 0.5) / BINS, mode="qcolor"), alpha=alpha)
        # axes: a line each, ticks and a title
        ax_x = np.repeat(np.arange(n, dtype=float), 3)
        ax_y = np.tile([0.0, 1.0, np.nan], n)
        axis_line = pg.PlotCurveItem(ax_x, ax_y, pen=pg.mkPen(t.text, width=1.2), connect="finite")
        axis_line.setZValue(20)
        self._add(axis_line)
        for k, axis in enumerate(self.axes):
            title = pg.TextItem(axis.title + (" (log)" if axis.log else ""), color=t.text, anchor=(0.5, 1.0))
            title.setPos(k, TITLE_Y)
            self._add(title)
            for y, label in axis_ticks(axis):
                fill = QColor(t.panel)
                fill.setAlpha(200)
                tick = pg.TextItem(label, color=t.subtext, anchor=(1.0, 0.5), fill=fill)
                tick.setPos(k - 0.015, y)
                tick.setZValue(22)
                self._add(tick)
        for k in self.brushes:
            self._draw_brush(k)
        self._fit_range()
        self._draw_highlight()

    def _fit_range(self) -> None:
        """The view's range, with room in pixels for the titles above the axes, the first
        axis's tick labels on its left, the last title's right half and half a label below 0:
        margins in data units shrank with the plot and cut the titles off."""
        n = len(self.axes)
        w, h = self.view.width(), self.view.height()
        if n == 0 or w < 1 or h < 1:
            return
        metrics = QFontMetricsF(self.plot.font())
        titles = [a.title + (" (log)" if a.log else "") for a in self.axes]
        labels = [label for _y, label in axis_ticks(self.axes[0])]
        pad = 2 * TEXT_MARGIN  # a TextItem's document margin, on each side of its text
        left = max(
            max(map(metrics.horizontalAdvance, labels), default=0.0) + pad + 4,
            metrics.horizontalAdvance(titles[0]) / 2,
        )
        right = max(metrics.horizontalAdvance(titles[-1]) / 2, 12.0) + pad / 2 + 2
        top, below = metrics.height() + pad + 2, (metrics.height() + pad) / 2 + 1
        # margins as fractions of the view, at most 80 % of it together
        fl, fr = _share(left / w, right / w)
        ft, fb = _share(top / h, below / h)
        x_span = max(n - 1, 0.5) / (1 - fl - fr)
        y_span = TITLE_Y / (1 - ft - fb)
        self.view.setRange(
            xRange=(-fl * x_span, n - 1 + fr * x_span),
            yRange=(-fb * y_span, TITLE_Y + ft * y_span),
            padding=0,
        )

    def _add(self, item) -> None:
        self.plot.addItem(item)
        self._items.append(item)

    def _add_lines(self, pos: np.ndarray, color: QColor, alpha: int) -> None:
        if not len(pos):
            return
        m, n = pos.shape
        x = np.tile(np.append(np.arange(n, dtype=float), np.nan), m)
        y = np.column_stack([pos, np.full(m, np.nan)]).ravel()
        c = QColor(color)
        c.setAlpha(alpha)
        item = pg.PlotCurveItem(x, y, pen=pg.mkPen(c, width=1), connect="finite")
        self._add(item)

    def _draw_highlight(self) -> None:
        for item in self._highlight:
            self.plot.removeItem(item)
        self._highlight = []
        if not self.axes or not self.selected:
            return
        pos = self.positions()
        for i in np.flatnonzero(np.isin(self.ids, list(self.selected)))[:MAX_HIGHLIGHT]:
            rid = int(self.ids[i])
            item = pg.PlotCurveItem(
                np.arange(len(self.axes), dtype=float),
                pos[i],
                pen=pg.mkPen(run_color(rid), width=3),
                connect="finite",
            )
            item.setZValue(30)
            self.plot.addItem(item)
            self._highlight.append(item)

    def _draw_brush(self, k: int) -> None:
        lo, hi = self.brushes[k]
        item = self._brush_items.get(k)
        if item is None:
            item = QGraphicsRectItem()
            accent = QColor(theme.current().accent)
            item.setPen(QPen(accent, 0))
            accent.setAlpha(60)
            item.setBrush(QBrush(accent))
            item.setZValue(25)
            self.plot.addItem(item)
            self._brush_items[k] = item
        item.setRect(QRectF(k - 0.05, lo, 0.1, hi - lo))

    # ------------------------------------------------------------ brushing and picking

    def _axis_at(self, x: float) -> int | None:
        k = int(round(x))
        return k if 0 <= k < len(self.axes) and abs(x - k) < 0.2 else None

    def drag_brush(self, x: float, y0: float, y1: float, finished: bool) -> None:
        k = self._axis_at(x)
        if k is None:
            return
        lo, hi = sorted((min(1.0, max(0.0, y0)), min(1.0, max(0.0, y1))))
        if hi - lo < 0.005:
            return
        self.brushes[k] = (lo, hi)
        self._draw_brush(k)
        if finished:
            self.redraw()
            self._emit_brush()

    def set_brush(self, axis: int, lo: float, hi: float) -> None:
        """Brush axis `axis` to [lo, hi] (positions in [0, 1]), as a drag does."""
        self.brushes[axis] = (lo, hi)
        self.redraw()
        self._emit_brush()

    def clear_brushes(self) -> None:
        if self.brushes:
            self.brushes = {}
            self.redraw()
            self._emit_brush()

    def _emit_brush(self) -> None:
        self.brush_changed.emit(None if not self.brushes else {int(i) for i in self.ids[self.inside()]})

    def click(self, x: float, y: float, additive: bool) -> None:
        k = self._axis_at(x)
        if k is not None and k in self.brushes and not (self.brushes[k][0] <= y <= self.brushes[k][1]):
            del self.brushes[k]
            self.redraw()
            self._emit_brush()
            return
        rid = self.run_at(x, y)
        if rid is not None:
            self.run_clicked.emit(rid, additive)

    def run_at(self, x: float, y: float) -> int | None:
        """The run whose line passes nearest to (x, y), within PICK_DISTANCE, among those shown."""
        n = len(self.axes)
        if n == 0 or not len(self.rows):
            return None
        pos = self.positions()
        a = int(np.clip(np.floor(x), 0, max(0, n - 2)))
        b = min(a + 1, n - 1)
        f = float(np.clip(x - a, 0, 1)) if b != a else 0.0
        at = pos[:, a] * (1 - f) + pos[:, b] * f
        distance = np.abs(at - y)
        distance[~self.inside() | ~np.isfinite(distance)] = np.inf
        i = int(np.argmin(distance))
        return int(self.ids[i]) if distance[i] <= PICK_DISTANCE else None

    def export(self, path: str) -> None:
        save_plot(self.plot, path)


def _share(a: float, b: float, most: float = 0.8) -> tuple[float, float]:
    """Two margins (fractions of a length), scaled down together to leave the plot 1 - most."""
    scale = min(1.0, most / (a + b)) if a + b > 0 else 1.0
    return a * scale, b * scale
