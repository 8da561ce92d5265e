"""`MetricPlot`: one pyqtgraph plot of one or more metric curves — a live run's loss and
validation loss in the Runs monitor, one metric of twenty runs in the Experiments comparison,
the learning-rate schedule beside the run form. One class, so every plot draws, smooths, marks
and ranges a series the same way:

- Curves read `CurveBuffer`s (shared with whoever feeds them, or owned by the plot) and draw
  from each buffer's min/max pyramid: every redraw hands pyqtgraph about two points per pixel
  of width for the visible span, whatever the series' length. The PlotItem also has
  `setDownsampling(auto=True, mode='peak')` and `setClipToView(True)` as a second line.
- Nothing redraws by itself as data arrives: the owner calls `refresh()` (the monitor from its
  one ≈10 Hz timer, the comparison once after loading) and only curves whose buffers changed
  are redrawn. A zoom, pan or resize re-renders the visible span at full detail at once.
- `_look` alone decides how a series is drawn. Smoothing is a debiased EMA (see `smoothing`)
  over the raw curve, which stays visible but faint behind it, so a spike is never hidden and
  the start is never shifted; it applies only to curves added with `smooth=True` that have at
  least `DENSE_POINTS` points. Sparser series are drawn raw, with a marker on every point, so
  one point is a dot and eight evaluations are never reordered by their average.
- A range without width (one point, a constant learning rate) is padded around its value and
  ticks are labelled with the digits their spacing needs (`ticks`, `axes`).
- The x axis is by step, epoch, wall-clock or relative time (`set_x_mode`; the caller puts x
  in that unit into the buffers). Hovering shows a crosshair, a dot on each curve and a readout
  that names each value's curve, highest first; `hover_changed` lets sibling plots follow.
"""

from __future__ import annotations

import html
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QFrame, QGraphicsItem, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app import theme
from app.plots.axes import X_MODES, PaddedViewBox, ValueAxis, format_x, x_axis
from app.plots.buffer import CurveBuffer
from app.plots.export import save_plot
from app.plots.smoothing import DENSE_POINTS, EmaState, debiased_ema
from engine import format as fmt

# Colour cycle for curves given no colour (colour-blind-friendly, readable on light and dark).
PALETTE = ("#2f6fde", "#e0701e", "#2e9e5b", "#c8407f", "#7d5bd6", "#17998b", "#c28a0c", "#66758a")
RAW_ALPHA = 70  # the raw curve behind a smoothed one: visible, but clearly the background
# Pens measured for speed (1M points, 800 px): integer widths; antialiasing only on 1-px lines
# (an antialiased 2-px line of 2,000 points costs ~20 ms to stroke, a 1-px one ~3 ms). Sparse
# series have too few points for that to matter and get a 2-px line.
LINE_WIDTH, SPARSE_WIDTH = 1, 2
MARKER_SIZE = 6
SMOOTH_LATER = 200_000  # a curve this long gets its smoothed line one event-loop turn after its raw one
AXIS_WIDTH = 58  # the y axis's width in pixels, the same on every plot
MIN_POINTS = 400  # never render a curve from fewer points than this, even in a narrow plot
BEHIND_Z, LINES_Z, HOVER_Z = 0, 500, 10_000  # faint raw curves below every line a reader follows
READOUT_ROWS = 24  # the hover readout lists at most this many curves
READOUT_OFFSET = QPoint(16, 12)  # from the cursor


@dataclass
class Curve:
    """One curve of a plot: its points (`buffer`) and the two items drawn from them."""

    key: Hashable
    label: str
    color: QColor
    buffer: CurveBuffer
    smooth: bool  # may be smoothed (when dense enough)
    raw: pg.PlotDataItem
    smoothed: pg.PlotDataItem
    visible: bool = True
    order: int = 0  # added as the plot's order-th curve: later ones are drawn on top
    look: tuple = ()  # (sparse, smoothed, visible) it is styled for
    smooth_buffer: CurveBuffer = field(default_factory=CurveBuffer)
    ema: EmaState | None = None
    ema_for: tuple = ()  # (buffer generation, weight) the smoothed buffer was built for
    drawn: tuple = ()  # (generation, n, smoothing) last drawn

    @property
    def is_smoothed(self) -> bool:
        return bool(self.look) and self.look[1]

    @property
    def line(self) -> pg.PlotDataItem:
        """The item a reader follows: the smoothed line when there is one, else the raw one."""
        return self.smoothed if self.is_smoothed else self.raw


def _set_data(item: pg.PlotDataItem, xs: np.ndarray, ys: np.ndarray) -> None:
    # pyqtgraph scans for NaN/inf on every setData; a screenful of points is cheaper to check here
    item.setData(xs, ys, skipFiniteCheck=bool(np.isfinite(ys).all() and np.isfinite(xs).all()))


class MetricPlot(QFrame):
    """A titled plot of keyed curves; see the module docstring."""

    hover_changed = Signal(object)  # the x under the mouse, or None when it leaves

    def __init__(
        self,
        title: str = "",
        parent: QWidget | None = None,
        *,
        x_mode: str = "step",
        legend: bool = True,
    ):
        super().__init__(parent)
        self.setObjectName("metricPlot")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._curves: dict[Hashable, Curve] = {}
        self._smoothing = 0.0
        self._log_y = False
        self._x_mode = "step"
        self._inline_legend = legend
        self._view_dirty = False
        self._refresh_pending = False
        self._smooth_pending = False

        self.title = QLabel(title, objectName="plotTitle")
        self.legend = QLabel(objectName="plotLegend")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        header = QHBoxLayout()
        header.setContentsMargins(8, 4, 8, 0)
        header.setSpacing(10)
        header.addWidget(self.title)
        header.addWidget(self.legend, 1)

        self.view = pg.PlotWidget(
            viewBox=PaddedViewBox(), axisItems={"left": ValueAxis("left"), "bottom": x_axis("step")}
        )
        self.view.setMinimumHeight(120)
        item = self.plot_item
        # Second line of defence: the buffers already hand over ~2 points per pixel.
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        item.showGrid(x=False, y=True, alpha=0.1)  # horizontal lines only: they are what a reader needs
        item.setMenuEnabled(False)
        item.hideButtons()
        for name in ("left", "bottom"):
            self._prepare_axis(item.getAxis(name))
        item.getAxis("left").setWidth(AXIS_WIDTH)  # equal widths: plots in a grid line up
        item.getViewBox().sigXRangeChanged.connect(self._on_x_range)
        self._crosshair = pg.InfiniteLine(angle=90, movable=False)
        self._crosshair.setZValue(HOVER_Z)
        self._dots = pg.ScatterPlotItem(size=7)  # not a PlotDataItem: those clip to the view
        self._dots.setZValue(HOVER_Z + 1)
        for hover_item in (self._crosshair, self._dots):
            hover_item.hide()
            item.addItem(hover_item, ignoreBounds=True)
        self._mouse = pg.SignalProxy(item.scene().sigMouseMoved, rateLimit=60, slot=self._on_mouse)
        self.readout = QLabel(self.view, objectName="plotReadout")
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.readout.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        self.set_x_mode(x_mode)
        self.apply_theme(theme.current())
        theme.changed().connect(self.apply_theme)

    @property
    def plot_item(self) -> pg.PlotItem:
        return self.view.getPlotItem()

    # ------------------------------------------------------------ curves

    def add_curve(
        self,
        key: Hashable,
        label: str | None = None,
        color: str | QColor | None = None,
        *,
        buffer: CurveBuffer | None = None,
        smooth: bool = True,
    ) -> CurveBuffer:
        """Add a curve drawn from `buffer` (shared: whoever owns it appends, `refresh` draws),
        or from a buffer of its own that `set_data`/`append` fill. `smooth`: the curve may be
        smoothed (a noisy per-step signal; see `smoothing.noisy`). Returns the buffer."""
        if key in self._curves:
            raise KeyError(f"curve {key!r} is already in the plot")
        color = QColor(color or PALETTE[len(self._curves) % len(PALETTE)])
        raw = pg.PlotDataItem(antialias=True)
        smoothed = pg.PlotDataItem(antialias=True)
        curve = Curve(key, label or str(key), color, buffer or CurveBuffer(), smooth, raw, smoothed)
        curve.order = len(self._curves)
        self._curves[key] = curve
        self.plot_item.addItem(raw)
        self.plot_item.addItem(smoothed)
        self._style(curve)
        self._update_legend()
        return curve.buffer

    def remove_curve(self, key: Hashable) -> None:
        curve = self._curves.pop(key)
        self.plot_item.removeItem(curve.raw)
        self.plot_item.removeItem(curve.smoothed)
        self._update_legend()

    def clear(self) -> None:
        for key in list(self._curves):
            self.remove_curve(key)

    @property
    def curves(self) -> Mapping[Hashable, Curve]:
        """The curves by key, in the order they were added (read-only)."""
        return MappingProxyType(self._curves)

    def keys(self) -> list:
        return list(self._curves)

    def buffer(self, key: Hashable) -> CurveBuffer:
        return self._curves[key].buffer

    def has_curve(self, key: Hashable) -> bool:
        return key in self._curves

    def set_data(self, key: Hashable, x, y) -> None:
        """Replace a curve's points (drawn at the next `refresh`)."""
        self._curves[key].buffer.replace(x, y)

    def append(self, key: Hashable, x, y) -> None:
        self._curves[key].buffer.extend(x, y)

    def raw_item(self, key: Hashable) -> pg.PlotDataItem:
        return self._curves[key].raw

    def smoothed_item(self, key: Hashable) -> pg.PlotDataItem:
        return self._curves[key].smoothed

    def set_curve_visible(self, key: Hashable, visible: bool) -> None:
        """Hide or show a curve (a run switched off in a comparison's legend): a hidden curve is
        left out of the view's range and of the hover readout."""
        curve = self._curves.get(key)
        if curve is not None and curve.visible != visible:
            curve.visible = visible
            self._style(curve)
            if visible:
                curve.drawn = ()  # not redrawn while hidden
                self._schedule_refresh()

    # ------------------------------------------------------------ view options

    @property
    def smoothing(self) -> float:
        return self._smoothing

    def set_smoothing(self, weight: float) -> None:
        """EMA weight in [0, 1): 0 shows the raw curves only."""
        weight = max(0.0, min(float(weight), 0.999))
        if weight != self._smoothing:
            self._smoothing = weight
            for curve in self._curves.values():
                self._style(curve)
            self._view_dirty = True

    @property
    def log_y(self) -> bool:
        return self._log_y

    def set_log_y(self, on: bool) -> None:
        if on != self._log_y:
            self._log_y = on
            self.plot_item.setLogMode(x=False, y=on)
            self._view_dirty = True

    @property
    def x_mode(self) -> str:
        return self._x_mode

    def set_x_mode(self, mode: str) -> None:
        """Label the x axis as steps, epochs, wall-clock or relative time (`axes.X_MODES`). The
        buffers' x must be in that unit: the caller replaces them."""
        if mode not in X_MODES:
            raise ValueError(f"x mode {mode!r}: one of {', '.join(X_MODES)}")
        if mode != self._x_mode:
            self._x_mode = mode
            axis = x_axis(mode)
            self.plot_item.setAxisItems({"bottom": axis})
            self._prepare_axis(axis)
            self._theme_axis(axis, theme.current())
            self._view_dirty = True
        # the step axis needs no name (every plot has one); the others say what they count
        if mode == "step":
            self.plot_item.getAxis("bottom").showLabel(False)
        else:
            self.plot_item.setLabel("bottom", X_MODES[mode])

    def auto_range(self) -> None:
        self.plot_item.enableAutoRange()
        self._view_dirty = True

    # ------------------------------------------------------------ drawing

    def refresh(self, force: bool = False) -> bool:
        """Redraw the curves whose data (or the view) changed since the last call; returns
        whether anything was redrawn. Call it from a timer, not per point."""
        view_changed, self._view_dirty = self._view_dirty, False
        drawn = False
        for curve in self._curves.values():
            if self._look(curve) != curve.look:
                self._style(curve)
            if not curve.visible:
                continue
            state = (curve.buffer.generation, curve.buffer.n, self._smoothing)
            if force or view_changed or state != curve.drawn:
                self._draw(curve)
                curve.drawn = state
                drawn = True
        return drawn

    def _schedule_refresh(self) -> None:
        self._view_dirty = True
        if not self._refresh_pending:
            self._refresh_pending = True
            QTimer.singleShot(0, self._scheduled_refresh)

    def _scheduled_refresh(self) -> None:
        self._refresh_pending = False
        self.refresh()

    def _span(self) -> tuple[float | None, float | None, int]:
        vb = self.plot_item.getViewBox()
        width = max(MIN_POINTS, 2 * int(vb.width() or 0))
        if vb.autoRangeEnabled()[0]:
            return None, None, width  # the view will fit the data: render all of it
        x0, x1 = vb.viewRange()[0]
        # drawn beyond the edges: a small pan or a linked plot's range update needs no redraw
        margin = (x1 - x0) / 2
        return x0 - margin, x1 + margin, width

    def _draw(self, curve: Curve) -> None:
        x0, x1, points = self._span()
        _set_data(curve.raw, *curve.buffer.view(x0, x1, points))
        if not curve.is_smoothed:
            if curve.smoothed.xData is not None and len(curve.smoothed.xData):
                curve.smoothed.setData([], [])
            return
        if self._smoothing_stale(curve) and curve.buffer.n > SMOOTH_LATER:
            # a long curve just opened (or re-weighted): show the raw points now, the smoothed
            # line a moment later, so opening a million-point run is not held up by the EMA
            if not self._smooth_pending:
                self._smooth_pending = True
                QTimer.singleShot(0, self._smooth_later)
            return
        self._update_smoothed(curve)
        _set_data(curve.smoothed, *curve.smooth_buffer.view(x0, x1, points))

    def _smooth_later(self) -> None:
        self._smooth_pending = False
        x0, x1, points = self._span()
        for curve in self._curves.values():
            if curve.is_smoothed and self._smoothing_stale(curve):
                self._update_smoothed(curve)
                _set_data(curve.smoothed, *curve.smooth_buffer.view(x0, x1, points))

    def _smoothing_stale(self, curve: Curve) -> bool:
        """Whether the smoothed copy must be rebuilt rather than extended."""
        src = curve.buffer
        return curve.ema_for != (src.generation, self._smoothing) or curve.smooth_buffer.n > src.n

    def _update_smoothed(self, curve: Curve) -> None:
        """Bring the curve's smoothed copy up to date: extend it by the new points, or rebuild
        it when points were removed or the weight changed."""
        src, out, w = curve.buffer, curve.smooth_buffer, self._smoothing
        if self._smoothing_stale(curve):
            values, curve.ema = debiased_ema(src.y, w)
            out.replace(src.x, values)
            curve.ema_for = (src.generation, w)
        elif out.n < src.n:
            values, curve.ema = debiased_ema(src.y[out.n :], w, curve.ema)
            out.extend(src.x[out.n :], values)

    def _on_x_range(self, *_args) -> None:
        # A zoom or pan shows another span: render it at full detail now, not at the next tick.
        if not self.plot_item.getViewBox().autoRangeEnabled()[0]:
            self._schedule_refresh()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._curves:
            self._schedule_refresh()  # two points per pixel of the new width

    # ------------------------------------------------------------ hover

    def _on_mouse(self, args) -> None:
        pos = args[0]
        vb = self.plot_item.getViewBox()
        if not self._curves or not vb.sceneBoundingRect().contains(pos):
            self._mouse_left()
            return
        x = vb.mapSceneToView(pos).x()
        self.show_hover(x, at=self.view.mapFromScene(pos))
        self.hover_changed.emit(x)

    def values_at(self, x: float) -> list[tuple[Curve, float, float, float | None]]:
        """(curve, its x, raw value, smoothed value or None) of each visible curve at its point
        nearest to `x`."""
        hits = []
        for curve in self._curves.values():
            i = curve.buffer.nearest(x) if curve.visible else None
            if i is None:
                continue
            smoothed = None
            if curve.is_smoothed and i < curve.smooth_buffer.n:
                smoothed = float(curve.smooth_buffer.y[i])
            hits.append((curve, float(curve.buffer.x[i]), float(curve.buffer.y[i]), smoothed))
        return hits

    def show_hover(
        self, x: float | None, *, readout: bool = True, at: QPoint | QPointF | None = None
    ) -> None:
        """Crosshair and a dot on each curve at its point nearest to `x`; with `readout`, the
        values too, beside `at` (the cursor, in `view` coordinates) or at the top of the plot.
        None hides them."""
        hits = self.values_at(x) if x is not None else []
        if not hits:
            self.hide_hover()
            return
        anchor = min(hits, key=lambda h: abs(h[1] - x))[1]
        self._crosshair.setPos(anchor)
        self._crosshair.show()
        xs = np.array([h[1] for h in hits])
        ys = np.array([h[3] if h[3] is not None else h[2] for h in hits])
        if self._log_y:  # a ScatterPlotItem is not log-mapped by the plot: map it here
            with np.errstate(divide="ignore", invalid="ignore"):
                ys = np.log10(ys)
        brushes = [pg.mkBrush(h[0].color) for h in hits]
        self._dots.setData(xs, ys, brush=brushes, pen=pg.mkPen(theme.current().panel, width=1.5))
        self._dots.show()
        if not readout:
            self.readout.hide()
            return
        self.readout.setText(self.readout_html(anchor, hits))
        self.readout.adjustSize()
        self._place_readout(at)
        self.readout.show()
        self.readout.raise_()

    def readout_html(self, anchor: float, hits) -> str:
        """The readout's table: where, then one row per curve — its colour, its label, the value
        shown (smoothed when smoothed, with the raw value beside it), highest first."""
        sub = theme.current().subtext
        rows = sorted(hits, key=lambda h: -(h[3] if h[3] is not None else h[2])) if len(hits) > 1 else hits
        body = []
        for curve, at_x, raw, smoothed in rows[:READOUT_ROWS]:
            shown = smoothed if smoothed is not None else raw
            extra = f"raw {fmt.value(raw)}" if smoothed is not None else ""
            if at_x != anchor:
                extra += f" @{format_x(self._x_mode, at_x)}"
            body.append(
                f"<tr><td><span style='color:{curve.color.name()}'>●</span> {html.escape(curve.label)}</td>"
                f"<td align='right'>&nbsp;<b>{fmt.value(shown)}</b></td>"
                f"<td style='color:{sub}'>&nbsp;{extra.strip()}</td></tr>"
            )
        if len(rows) > READOUT_ROWS:
            body.append(
                f"<tr><td colspan='3' style='color:{sub}'>… {len(rows) - READOUT_ROWS} more</td></tr>"
            )
        head = html.escape(f"{self.title.text()} · {format_x(self._x_mode, anchor)}".lstrip(" ·"))
        return f"<div style='color:{sub}'>{head}</div><table cellspacing='0'>{''.join(body)}</table>"

    def _place_readout(self, at: QPoint | QPointF | None) -> None:
        view = self.view
        if at is None:
            vb = self.plot_item.getViewBox()
            top = view.mapFromScene(vb.sceneBoundingRect().topLeft())
            at = view.mapFromScene(vb.mapViewToScene(QPointF(self._crosshair.value(), 0)))
            at.setY(top.y())
        at = QPoint(int(at.x()), int(at.y()))
        pos = at + READOUT_OFFSET
        if pos.x() + self.readout.width() > view.width():
            pos.setX(max(0, at.x() - self.readout.width() - READOUT_OFFSET.x()))
        if pos.y() + self.readout.height() > view.height():
            pos.setY(max(0, view.height() - self.readout.height()))
        self.readout.move(pos)

    def hide_hover(self) -> None:
        self._crosshair.hide()
        self._dots.hide()
        self.readout.hide()

    def _mouse_left(self) -> None:
        if self._crosshair.isVisible():
            self.hide_hover()
            self.hover_changed.emit(None)

    def leaveEvent(self, event) -> None:
        self._mouse_left()
        super().leaveEvent(event)

    # ------------------------------------------------------------ look

    def _look(self, curve: Curve) -> tuple[bool, bool, bool]:
        """(sparse, smoothed, visible): the one place that decides how a series is drawn."""
        sparse = curve.buffer.n < DENSE_POINTS
        return sparse, curve.smooth and self._smoothing > 0 and not sparse, curve.visible

    def _style(self, curve: Curve) -> None:
        curve.look = sparse, smoothed, visible = self._look(curve)
        color = QColor(curve.color)
        if smoothed:
            color.setAlpha(RAW_ALPHA)
        curve.raw.setPen(pg.mkPen(color, width=SPARSE_WIDTH if sparse else LINE_WIDTH))
        if sparse:
            curve.raw.setSymbol("o")
            curve.raw.setSymbolSize(MARKER_SIZE)
            curve.raw.setSymbolPen(None)
            curve.raw.setSymbolBrush(curve.color)
        else:
            curve.raw.setSymbol(None)
        curve.smoothed.setPen(pg.mkPen(curve.color, width=LINE_WIDTH))
        curve.raw.setZValue((BEHIND_Z if smoothed else LINES_Z) + curve.order)
        curve.smoothed.setZValue(LINES_Z + curve.order)
        curve.raw.setVisible(visible)
        curve.smoothed.setVisible(visible and smoothed)

    def _update_legend(self) -> None:
        if not self._inline_legend or len(self._curves) < 2:
            self.legend.clear()
            return
        self.legend.setText(
            "&nbsp;&nbsp;".join(
                f"<span style='color:{c.color.name()}'>━</span>&nbsp;{html.escape(c.label)}"
                for c in self._curves.values()
            )
        )

    @staticmethod
    def _prepare_axis(axis: pg.AxisItem) -> None:
        axis.enableAutoSIPrefix(False)
        # tick labels are the costliest thing pyqtgraph paints (~2 ms an axis, offscreen):
        # cached as a pixmap, an axis whose range did not change costs a blit
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    @staticmethod
    def _theme_axis(axis: pg.AxisItem, t: theme.Theme) -> None:
        axis.setPen(pg.mkPen(t.border))
        axis.setTextPen(pg.mkPen(t.subtext))

    def apply_theme(self, t: theme.Theme) -> None:
        self.view.setBackground(t.panel)
        for name in ("left", "bottom"):
            self._theme_axis(self.plot_item.getAxis(name), t)
        pen = QPen(QColor(t.subtext))
        pen.setStyle(Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._crosshair.setPen(pen)
        self.readout.setStyleSheet(
            f"QLabel {{ background: {t.panel}; color: {t.text}; border: 1px solid {t.border};"
            " border-radius: 5px; padding: 5px 7px; }"
        )

    def export(self, path: str | Path) -> Path:
        """PNG or SVG, by the file's suffix, titled with the plot's title."""
        return save_plot(self.view, path, self.title.text())
