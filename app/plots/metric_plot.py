"""`MetricPlot`: one pyqtgraph plot of one or more metric curves, built to stay fast while the
curves grow to millions of points.

- Curves read `CurveBuffer`s (shared with whoever feeds them, or owned by the plot) and draw
  from each buffer's min/max pyramid: every redraw hands pyqtgraph about two points per pixel
  of width for the visible span, whatever the series' length. The PlotItem also has
  `setDownsampling(auto=True, mode='peak')` and `setClipToView(True)` as a second line.
- Nothing redraws by itself as data arrives: the owner calls `refresh()` from its one timer
  (≈10 Hz) and only curves whose buffers changed are redrawn. A zoom or pan re-renders the
  visible span at full detail at once.
- Smoothing is a debiased EMA (see `smoothing`), drawn over the raw curve, which stays visible
  but faint behind it, so a spike is never hidden and the start is never shifted.
- Hovering shows a crosshair, a dot on each curve and a readout of every curve's value there.

The Experiments area reuses it for overlaid comparisons: `add_curve(key, label, color)` per run,
`set_data(key, steps, values)`, `refresh()`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QFrame, QGraphicsItem, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app import theme
from app.plots.buffer import CurveBuffer
from app.plots.smoothing import EmaState, debiased_ema

# Colour cycle for curves given no colour (colour-blind-friendly, readable on light and dark).
PALETTE = ("#2f6fde", "#e0701e", "#2e9e5b", "#c8407f", "#7d5bd6", "#17998b", "#c28a0c", "#66758a")
RAW_ALPHA = 70  # the raw curve behind a smoothed one: visible, but clearly the background
# Pens measured for speed (1M points, 800 px): integer widths; antialiasing only on 1-px lines
# (an antialiased 2-px line of 2,000 points costs ~20 ms to stroke, a 1-px one ~3 ms).
LINE_WIDTH = 1
SMOOTH_LATER = 200_000  # a curve this long gets its smoothed line one event-loop turn after its raw one
AXIS_WIDTH = 58  # the y axis's width in pixels, the same on every plot
MIN_POINTS = 400  # never render a curve from fewer points than this, even in a narrow plot


def format_value(v: float) -> str:
    if v is None or not np.isfinite(v):
        return str(v)
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e6):
        return f"{v:.3e}"
    return f"{v:.4g}" if a < 1000 else f"{v:,.1f}"


def _set_data(item: pg.PlotDataItem, xs: np.ndarray, ys: np.ndarray) -> None:
    # pyqtgraph scans for NaN/inf on every setData; a screenful of points is cheaper to check here
    item.setData(xs, ys, skipFiniteCheck=bool(np.isfinite(ys).all() and np.isfinite(xs).all()))


@dataclass
class _Curve:
    key: str
    label: str
    color: QColor
    buffer: CurveBuffer
    smooth: bool
    raw: pg.PlotDataItem
    smoothed: pg.PlotDataItem
    smooth_buffer: CurveBuffer = field(default_factory=CurveBuffer)
    ema: EmaState | None = None
    ema_for: tuple = ()  # (buffer generation, weight) the smoothed buffer was built for
    drawn: tuple = ()  # (generation, n, smoothing) last drawn

    @property
    def smoothing_shown(self) -> bool:
        return self.smoothed.isVisible()


class MetricPlot(QFrame):
    """A titled plot of named curves; see the module docstring."""

    hover_changed = Signal(object)  # the step under the mouse, or None when it leaves

    def __init__(self, title: str = "", parent: QWidget | None = None, *, unit: str = ""):
        super().__init__(parent)
        self.setObjectName("metricPlot")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.unit = unit
        self._curves: dict[str, _Curve] = {}
        self._smoothing = 0.0
        self._log_y = False
        self._view_dirty = False
        self._smooth_pending = False

        self.title = QLabel(title, objectName="plotTitle")
        self.legend = QLabel(objectName="plotLegend")
        self.readout = QLabel(objectName="plotReadout")
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.readout.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        header = QHBoxLayout()
        header.setContentsMargins(8, 4, 8, 0)
        header.setSpacing(10)
        header.addWidget(self.title)
        header.addWidget(self.legend)
        header.addWidget(self.readout, 1)

        self.view = pg.PlotWidget()
        self.view.setMinimumHeight(120)
        item = self.plot_item
        # Second line of defence: the buffers already hand over ~2 points per pixel.
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        item.showGrid(x=False, y=True, alpha=0.1)  # horizontal lines only: they are what a reader needs
        item.setMenuEnabled(False)
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.enableAutoSIPrefix(False)
            # tick labels are the costliest thing pyqtgraph paints (~2 ms an axis, offscreen):
            # cached as a pixmap, an axis whose range did not change costs a blit
            axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        item.getAxis("left").setWidth(AXIS_WIDTH)  # equal widths: plots in a grid line up
        item.getViewBox().sigXRangeChanged.connect(self._on_x_range)
        self._crosshair = pg.InfiniteLine(angle=90, movable=False)
        self._crosshair.setZValue(20)
        self._dots = pg.ScatterPlotItem(size=7)  # not a PlotDataItem: those clip to the view
        self._dots.setZValue(30)
        for hover_item in (self._crosshair, self._dots):
            hover_item.hide()
            item.addItem(hover_item, ignoreBounds=True)
        self._mouse = pg.SignalProxy(item.scene().sigMouseMoved, rateLimit=60, slot=self._on_mouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        self.apply_theme(theme.current())
        theme.changed().connect(self.apply_theme)

    @property
    def plot_item(self) -> pg.PlotItem:
        return self.view.getPlotItem()

    # ------------------------------------------------------------ curves

    def add_curve(
        self,
        key: str,
        label: str | None = None,
        color: str | QColor | None = None,
        *,
        buffer: CurveBuffer | None = None,
        smooth: bool = True,
    ) -> CurveBuffer:
        """Add a curve drawn from `buffer` (shared: whoever owns it appends, `refresh` draws),
        or from a buffer of its own that `set_data`/`append` fill. Returns the buffer."""
        if key in self._curves:
            raise KeyError(f"curve {key!r} is already in the plot")
        color = QColor(color or PALETTE[len(self._curves) % len(PALETTE)])
        raw = pg.PlotDataItem(antialias=True)
        smoothed = pg.PlotDataItem(antialias=True)
        raw.setZValue(1 + 2 * len(self._curves))
        smoothed.setZValue(2 + 2 * len(self._curves))
        curve = _Curve(key, label or key, color, buffer or CurveBuffer(), smooth, raw, smoothed)
        self._curves[key] = curve
        self.plot_item.addItem(raw)
        self.plot_item.addItem(smoothed)
        self._style(curve)
        self._update_legend()
        return curve.buffer

    def remove_curve(self, key: str) -> None:
        curve = self._curves.pop(key)
        self.plot_item.removeItem(curve.raw)
        self.plot_item.removeItem(curve.smoothed)
        self._update_legend()

    def clear(self) -> None:
        for key in list(self._curves):
            self.remove_curve(key)

    def keys(self) -> list[str]:
        return list(self._curves)

    def buffer(self, key: str) -> CurveBuffer:
        return self._curves[key].buffer

    def has_curve(self, key: str) -> bool:
        return key in self._curves

    def set_data(self, key: str, x, y) -> None:
        """Replace a curve's points (drawn at the next `refresh`)."""
        self._curves[key].buffer.replace(x, y)

    def append(self, key: str, x, y) -> None:
        self._curves[key].buffer.extend(x, y)

    def raw_item(self, key: str) -> pg.PlotDataItem:
        return self._curves[key].raw

    def smoothed_item(self, key: str) -> pg.PlotDataItem:
        return self._curves[key].smoothed

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

    def auto_range(self) -> None:
        self.plot_item.enableAutoRange()
        self._view_dirty = True

    def link_x(self, other: MetricPlot) -> None:
        self.plot_item.setXLink(other.plot_item)

    # ------------------------------------------------------------ drawing

    def refresh(self, force: bool = False) -> bool:
        """Redraw the curves whose data (or the view) changed since the last call; returns
        whether anything was redrawn. Call it from a timer, not per point."""
        view_changed, self._view_dirty = self._view_dirty, False
        drawn = False
        for curve in self._curves.values():
            state = (curve.buffer.generation, curve.buffer.n, self._smoothing)
            if force or view_changed or state != curve.drawn:
                self._draw(curve)
                curve.drawn = state
                drawn = True
        return drawn

    def _span(self) -> tuple[float | None, float | None, int]:
        vb = self.plot_item.getViewBox()
        width = max(MIN_POINTS, 2 * int(vb.width() or 0))
        if vb.autoRangeEnabled()[0]:
            return None, None, width  # the view will fit the data: render all of it
        x0, x1 = vb.viewRange()[0]
        margin = (
            x1 - x0
        ) / 2  # drawn beyond the edges: a small pan or a linked plot's range update needs no redraw
        return x0 - margin, x1 + margin, width

    def _draw(self, curve: _Curve) -> None:
        x0, x1, points = self._span()
        _set_data(curve.raw, *curve.buffer.view(x0, x1, points))
        if not (curve.smooth and self._smoothing > 0):
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
            if curve.smooth and self._smoothing > 0 and self._smoothing_stale(curve):
                self._update_smoothed(curve)
                _set_data(curve.smoothed, *curve.smooth_buffer.view(x0, x1, points))

    def _smoothing_stale(self, curve: _Curve) -> bool:
        """Whether the smoothed copy must be rebuilt rather than extended."""
        src = curve.buffer
        return curve.ema_for != (src.generation, self._smoothing) or curve.smooth_buffer.n > src.n

    def _update_smoothed(self, curve: _Curve) -> None:
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
        if not self.plot_item.getViewBox().autoRangeEnabled()[0] and not self._view_dirty:
            self._view_dirty = True
            QTimer.singleShot(0, self.refresh)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._view_dirty = True

    # ------------------------------------------------------------ hover

    def _on_mouse(self, args) -> None:
        pos = args[0]
        vb = self.plot_item.getViewBox()
        if not self._curves or not vb.sceneBoundingRect().contains(pos):
            self._hide_hover()
            return
        x = vb.mapSceneToView(pos).x()
        self.show_hover(x)

    def show_hover(self, x: float) -> None:
        """Crosshair, dots and readout at the point of each curve nearest to step `x`."""
        hits = []
        for curve in self._curves.values():
            i = curve.buffer.nearest(x)
            if i is None:
                continue
            step, raw = float(curve.buffer.x[i]), float(curve.buffer.y[i])
            smoothed = None
            if curve.smooth and self._smoothing > 0 and i < curve.smooth_buffer.n:
                smoothed = float(curve.smooth_buffer.y[i])
            hits.append((curve, step, raw, smoothed))
        if not hits:
            self._hide_hover()
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
        parts = [f"<b>step {anchor:,.0f}</b>"]
        for curve, step, raw, smoothed in hits:
            value = format_value(smoothed if smoothed is not None else raw)
            extra = (
                f" <span style='color:{theme.current().subtext}'>raw {format_value(raw)}</span>"
                if smoothed is not None
                else ""
            )
            at = (
                f" <span style='color:{theme.current().subtext}'>@{step:,.0f}</span>"
                if step != anchor
                else ""
            )
            parts.append(
                f"<span style='color:{curve.color.name()}'>●</span> {html.escape(curve.label)} <b>{value}</b>{extra}{at}"
            )
        self.readout.setText("&nbsp;&nbsp;".join(parts))
        self.hover_changed.emit(anchor)

    def _hide_hover(self) -> None:
        if self._crosshair.isVisible():
            self._crosshair.hide()
            self._dots.hide()
            self.readout.clear()
            self.hover_changed.emit(None)

    def leaveEvent(self, event) -> None:
        self._hide_hover()
        super().leaveEvent(event)

    # ------------------------------------------------------------ look

    def _style(self, curve: _Curve) -> None:
        smoothing = curve.smooth and self._smoothing > 0
        faint = QColor(curve.color)
        if smoothing:
            faint.setAlpha(RAW_ALPHA)
        curve.raw.setPen(pg.mkPen(faint, width=LINE_WIDTH))
        curve.smoothed.setPen(pg.mkPen(curve.color, width=LINE_WIDTH))
        curve.smoothed.setVisible(smoothing)

    def _update_legend(self) -> None:
        if len(self._curves) < 2:
            self.legend.clear()
            return
        self.legend.setText(
            "&nbsp;&nbsp;".join(
                f"<span style='color:{c.color.name()}'>━</span>&nbsp;{html.escape(c.label)}"
                for c in self._curves.values()
            )
        )

    def apply_theme(self, t: theme.Theme) -> None:
        self.view.setBackground(t.panel)
        for name in ("left", "bottom"):
            axis = self.plot_item.getAxis(name)
            axis.setPen(pg.mkPen(t.border))
            axis.setTextPen(pg.mkPen(t.subtext))
        pen = QPen(QColor(t.subtext))
        pen.setStyle(Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._crosshair.setPen(pen)
