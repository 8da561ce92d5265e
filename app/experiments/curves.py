"""One metric of several runs, overlaid: the smoothed curve over the raw one (faint), hover
readout of every run's value under the cursor, log-y, and an x-axis by step, epoch, wall-clock
or relative time.

Stays fast with 20 runs × 100,000 points: peak-mode auto downsampling and clip-to-view on the
PlotItem (STYLE.md §5), so a redraw paints about one point per pixel column per curve.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel

from app import theme
from app.experiments.plot_export import save_plot
from app.plots.smoothing import debiased_ema

X_MODES = {"step": "Step", "epoch": "Epoch", "wall": "Wall time", "relative": "Relative time"}
RAW_ALPHA = 70  # of 255: the raw curve behind a smoothed one
MARK_POINTS_BELOW = 60  # series this short (evaluations) get a dot per point
THICK_BELOW = 2000  # series this short get a 2-px line
DOWNSAMPLE_FACTOR = 2.0  # peak downsampling keeps ~2 samples per pixel column (pyqtgraph: 5)
OVERVIEW_ABOVE = 16_384  # longer series are drawn from a peak-decimated overview when zoomed out
OVERVIEW_BINS = 2_048
DETAIL_BELOW = 0.2  # the full points go in once less than this share of them is in view


@dataclass
class RunSeries:
    """One run's points for one metric, and what the plot derives from them."""

    run_id: int
    name: str
    color: QColor
    steps: np.ndarray
    values: np.ndarray
    walls: np.ndarray
    epochs: np.ndarray | None = None  # fractional epoch at each step, when the run logged train/epoch
    start: float | None = None  # the run's start (relative time counts from here)
    x: np.ndarray = field(default=None, repr=False)
    smooth: np.ndarray = field(default=None, repr=False)

    def x_for(self, mode: str) -> np.ndarray:
        if mode == "epoch" and self.epochs is not None:
            return self.epochs
        if mode == "wall":
            return self.walls
        if mode == "relative":
            start = self.start if self.start is not None else (self.walls[0] if len(self.walls) else 0.0)
            return self.walls - start
        return self.steps.astype(np.float64)


class DurationAxis(pg.AxisItem):
    """Seconds written as 45 s, 12:30 or 2:05:00."""

    def tickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            s = int(round(v * scale))
            sign = "-" if s < 0 else ""
            s = abs(s)
            if spacing * scale < 60 and s < 60:
                out.append(f"{sign}{s} s")
            elif s < 3600:
                out.append(f"{sign}{s // 60}:{s % 60:02d}")
            else:
                out.append(f"{sign}{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}")
        return out


class ValueAxis(pg.AxisItem):
    """The y axis; on a log scale only 1, 2 and 5 × 10^k are labelled (pyqtgraph labels every
    minor tick when the range spans less than a few decades, which crowds a small plot)."""

    def tickStrings(self, values, scale, spacing):
        strings = super().tickStrings(values, scale, spacing)
        if not self.logMode:
            return strings
        out = []
        for v, text in zip(values, strings, strict=True):
            mantissa = 10 ** (v - np.floor(v))
            out.append(text if min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6 else "")
        return out


@dataclass
class _Curve:
    series: RunSeries
    raw: pg.PlotDataItem
    line: pg.PlotDataItem
    sorted_x: bool = True
    overview: tuple | None = None  # peak-decimated (x, raw, smooth) of a long series
    detailed: bool = True  # the items hold the full arrays (else the overview)

    @property
    def flat(self) -> bool:
        """Every point the same value (computed once per series)."""
        if self._flat is None or self._flat[0] is not self.series:
            v = self.series.values
            self._flat = (self.series, bool(len(v)) and bool(np.all(v == v[0])))
        return self._flat[1]

    _flat: tuple | None = None


def peak_decimate(x: np.ndarray, ys: list[np.ndarray], bins: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each of `ys` as the minimum and maximum of `bins` equal runs of points (the tail kept
    whole), so every spike survives; x at each run's first point, twice."""
    k = len(x) // bins
    m = k * bins
    x2 = np.concatenate([np.repeat(x[:m:k], 2), x[m:]])
    out = []
    for y in ys:
        yb = y[:m].reshape(bins, k)
        y2 = np.empty(2 * bins)
        y2[0::2] = np.fmin.reduce(yb, axis=1)  # fmin/fmax skip NaN
        y2[1::2] = np.fmax.reduce(yb, axis=1)
        out.append(np.concatenate([y2, y[m:]]))
    return x2, out


class MetricPlot(pg.PlotWidget):
    """Curves of one metric for several runs. `hovered` carries the x under the cursor (or
    None on leaving), so sibling plots can draw the same vertical line."""

    hovered = Signal(object)

    def __init__(self, key: str, parent=None):
        super().__init__(parent, axisItems={"left": ValueAxis("left")})
        self.key = key
        self.setObjectName("metricPlot")
        self.curves: dict[int, _Curve] = {}
        self.x_mode = "step"
        self.weight = 0.6
        self.plotItem.setDownsampling(auto=True, mode="peak")
        self.plotItem.setClipToView(True)
        self.plotItem.showGrid(x=True, y=True, alpha=0.12)
        self.plotItem.setMenuEnabled(True)
        self.plotItem.hideButtons()
        self.setMinimumHeight(220)
        self.crosshair = pg.InfiniteLine(angle=90, movable=False)
        self.crosshair.setZValue(50)
        self.crosshair.hide()
        self.addItem(self.crosshair, ignoreBounds=True)
        self.markers = pg.PlotDataItem(pen=None, symbol="o", symbolSize=7)
        self.markers.setZValue(60)
        self.addItem(self.markers, ignoreBounds=True)
        self.readout = QLabel(self, objectName="plotReadout")
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.readout.hide()
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.plotItem.vb.sigXRangeChanged.connect(self._range_changed)
        self.apply_theme(theme.current())
        theme.changed().connect(self.apply_theme)

    # ------------------------------------------------------------ data

    def set_series(self, series: list[RunSeries]) -> None:
        """Replace the curves (one per run, in legend order); a run already shown keeps its items."""
        keep = {s.run_id for s in series}
        for rid in [r for r in self.curves if r not in keep]:
            curve = self.curves.pop(rid)
            self.removeItem(curve.raw)
            self.removeItem(curve.line)
        for s in series:
            curve = self.curves.get(s.run_id)
            if curve is None:
                raw = pg.PlotDataItem(skipFiniteCheck=False)
                line = pg.PlotDataItem(name=s.name, antialias=True)
                for item in (raw, line):
                    item.opts["autoDownsampleFactor"] = DOWNSAMPLE_FACTOR
                raw.setZValue(1)
                line.setZValue(10)
                self.addItem(raw)
                self.addItem(line)
                curve = self.curves[s.run_id] = _Curve(s, raw, line)
            curve.series = s
            self._style(curve)
        self._update_data()

    def _style(self, curve: _Curve) -> None:
        s = curve.series
        # Qt strokes wide antialiased paths ~100x slower than 1-px ones (11 s against 0.1 s
        # for 20 noisy 100k-point curves, measured): long curves get a 1-px line.
        short = len(s.values) <= THICK_BELOW
        curve.raw.setPen(pg.mkPen(_alpha(s.color, RAW_ALPHA), width=1))
        curve.line.setPen(pg.mkPen(s.color, width=2 if short else 1))
        if len(s.values) <= MARK_POINTS_BELOW:
            curve.line.setSymbol("o")
            curve.line.setSymbolSize(5)
            curve.line.setSymbolPen(None)
            curve.line.setSymbolBrush(s.color)
        else:
            curve.line.setSymbol(None)

    def set_x_mode(self, mode: str) -> None:
        if mode == self.x_mode:
            return
        self.x_mode = mode
        axis = {"wall": pg.DateAxisItem, "relative": DurationAxis}.get(mode, pg.AxisItem)(
            orientation="bottom"
        )
        self.plotItem.setAxisItems({"bottom": axis})
        self.apply_theme(theme.current())
        self._update_data()
        self.plotItem.enableAutoRange()

    def set_smoothing(self, weight: float) -> None:
        self.weight = weight
        self._update_data(x_changed=False)

    def set_log_y(self, on: bool) -> None:
        self.plotItem.setLogMode(y=on)

    def set_run_visible(self, run_id: int, visible: bool) -> None:
        curve = self.curves.get(run_id)
        if curve:
            curve.line.setVisible(visible)
            curve.raw.setVisible(visible and self._smoothed(curve))

    def _update_data(self, x_changed: bool = True) -> None:
        for curve in self.curves.values():
            s = curve.series
            if x_changed or s.x is None:
                s.x = s.x_for(self.x_mode)
                curve.sorted_x = bool(len(s.x) < 2 or np.all(np.diff(s.x) >= 0))
            # a flat series (a constant learning rate) smooths to itself: no EMA, no raw curve
            s.smooth = debiased_ema(s.values, self.weight)[0] if self._smoothed(curve) else s.values
            curve.overview = None
            if curve.sorted_x and len(s.x) > OVERVIEW_ABOVE:
                x2, (raw2, smooth2) = peak_decimate(s.x, [s.values, s.smooth], OVERVIEW_BINS)
                curve.overview = (x2, raw2, smooth2)
            curve.detailed = not self._wants_overview(curve)
            self._show_level(curve)
            curve.raw.setVisible(curve.line.isVisible() and self._smoothed(curve))
        self.setLabel("bottom", X_MODES[self.x_mode])

    def _smoothed(self, curve: _Curve) -> bool:
        return self.weight > 0 and len(curve.series.values) > 1 and not curve.flat

    # A long series is drawn from its overview (OVERVIEW_BINS min/max pairs) while most of it
    # is in view: pyqtgraph would otherwise re-bin all its points for every new view range.
    # Zoomed in further, the full points go in and pyqtgraph clips and downsamples them.

    def _wants_overview(self, curve: _Curve) -> bool:
        if curve.overview is None:
            return False
        x = curve.series.x
        span = x[-1] - x[0]
        x0, x1 = self.plotItem.vb.viewRange()[0]
        if self.plotItem.vb.autoRangeEnabled()[0] or span <= 0:
            return True
        i0, i1 = np.searchsorted(x, [x0, x1])
        return (i1 - i0) > len(x) * DETAIL_BELOW

    def _show_level(self, curve: _Curve) -> None:
        s = curve.series
        if curve.detailed or curve.overview is None:
            curve.raw.setData(s.x, s.values)
            curve.line.setData(s.x, s.smooth)
        else:
            x2, raw2, smooth2 = curve.overview
            curve.raw.setData(x2, raw2)
            curve.line.setData(x2, smooth2)

    def _range_changed(self, *_args) -> None:
        for curve in self.curves.values():
            detailed = not self._wants_overview(curve)
            if curve.overview is not None and detailed != curve.detailed:
                curve.detailed = detailed
                self._show_level(curve)

    # ------------------------------------------------------------ hover

    def _mouse_moved(self, pos) -> None:
        vb = self.plotItem.vb
        if not vb.sceneBoundingRect().contains(pos):
            self.hide_cursor()
            self.hovered.emit(None)
            return
        x = vb.mapSceneToView(pos).x()
        if self.plotItem.ctrl.logXCheck.isChecked():
            x = 10**x
        self.show_cursor(x, readout_at=self.mapFromScene(pos))
        self.hovered.emit(x)

    def leaveEvent(self, event) -> None:
        self.hide_cursor()
        self.hovered.emit(None)
        super().leaveEvent(event)

    def hide_cursor(self) -> None:
        self.crosshair.hide()
        self.markers.setData([], [])
        self.readout.hide()

    def values_at(self, x: float) -> list[tuple[RunSeries, float, float, float]]:
        """(series, x, smoothed, raw) of each visible run at the point nearest to `x`."""
        out = []
        for curve in self.curves.values():
            s = curve.series
            if not curve.line.isVisible() or s.x is None or len(s.x) == 0:
                continue
            if curve.sorted_x:
                i = int(np.searchsorted(s.x, x))
                if i == len(s.x) or (i > 0 and x - s.x[i - 1] < s.x[i] - x):
                    i -= 1
            else:
                i = int(np.nanargmin(np.abs(s.x - x)))
            out.append((s, float(s.x[i]), float(s.smooth[i]), float(s.values[i])))
        return out

    def show_cursor(self, x: float | None, readout_at: QPoint | None = None) -> None:
        """The vertical line at `x`, dots on each run's curve and, when hovered here, the values."""
        if x is None:
            self.hide_cursor()
            return
        self.crosshair.setPos(x)
        self.crosshair.show()
        hits = self.values_at(x)
        self.markers.setData(
            [h[1] for h in hits],
            [h[2] for h in hits],
            symbolBrush=[h[0].color for h in hits],
            symbolPen=[pg.mkPen(theme.current().panel, width=1.5)] * len(hits),
        )
        if readout_at is None or not hits:
            self.readout.hide()
            return
        self.readout.setText(self.readout_html(x, hits))
        self.readout.adjustSize()
        at = readout_at + QPoint(16, 12)
        if at.x() + self.readout.width() > self.width():
            at.setX(readout_at.x() - self.readout.width() - 16)
        if at.y() + self.readout.height() > self.height():
            at.setY(max(0, self.height() - self.readout.height()))
        self.readout.move(at)
        self.readout.show()
        self.readout.raise_()

    def readout_html(self, x: float, hits) -> str:
        t = theme.current()
        head = _format_x(self.x_mode, x)
        rows = sorted(hits, key=lambda h: -h[2])
        body = "".join(
            f"<tr><td><span style='color:{s.color.name()}'>●</span> {html.escape(s.name[:28])}"
            f" <span style='color:{t.subtext}'>#{s.run_id}</span></td>"
            f"<td align='right'>&nbsp;<b>{smooth:.4g}</b></td>"
            + (f"<td align='right' style='color:{t.subtext}'>&nbsp;{raw:.4g}</td>" if self.weight > 0 else "")
            + "</tr>"
            for s, _x, smooth, raw in rows
        )
        return f"<div style='color:{t.subtext}'>{html.escape(self.key)} · {head}</div><table cellspacing='0'>{body}</table>"

    # ------------------------------------------------------------ look and export

    def apply_theme(self, t) -> None:
        self.setBackground(t.panel)
        for name in ("left", "bottom"):
            axis = self.plotItem.getAxis(name)
            axis.setPen(pg.mkPen(t.border))
            axis.setTextPen(pg.mkPen(t.subtext))
        self.plotItem.setTitle(self.key, color=t.text, size="10pt", bold=True)
        self.crosshair.setPen(pg.mkPen(t.subtext, width=1, style=Qt.PenStyle.DashLine))

    def export(self, path: str) -> None:
        """PNG or SVG, by the file's suffix."""
        save_plot(self, path, self.key)


def _format_x(mode: str, x: float) -> str:
    if mode == "wall":
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(x))
    if mode == "relative":
        return DurationAxis(orientation="bottom").tickStrings([x], 1, 1)[0]
    if mode == "epoch":
        return f"epoch {x:.3g}"
    return f"step {x:,.0f}"


def _alpha(color: QColor, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c
