"""The pieces of a plot around its curves: axes labelled from `ticks`, a view box that gives a
degenerate range some room, and the x-axis modes a comparison offers (step, epoch, wall-clock,
relative time)."""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg

from app.plots.ticks import nice_step, nice_ticks, padded_range, tick_labels
from engine import format as fmt

X_MODES = {"step": "Step", "epoch": "Epoch", "wall": "Wall time", "relative": "Relative time"}
PIXELS_PER_TICK = {"horizontal": 90, "vertical": 40}
DURATION_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)  # seconds


class PaddedViewBox(pg.ViewBox):
    """A ViewBox whose auto-range widens a data range without width (one point, a constant
    series) around its value (`ticks.padded_range`), instead of keeping whatever scale it had."""

    def childrenBounds(self, frac=None, orthoRange=(None, None), items=None):
        bounds = super().childrenBounds(frac=frac, orthoRange=orthoRange, items=items)
        for ax in (0, 1):
            if bounds[ax] is not None:
                bounds[ax] = list(padded_range(*bounds[ax], log=self.state["logMode"][ax]))
        return bounds


class ValueAxis(pg.AxisItem):
    """Round ticks (`ticks.nice_ticks`) with labels that differ (`ticks.tick_labels`). A log axis
    spanning decades keeps pyqtgraph's decade ticks but labels only 1, 2 and 5 × 10^k (it would
    label every minor tick, which crowds a small plot); a log axis narrower than a decade gets
    round linear values. `integer`: no ticks between whole numbers (steps)."""

    def __init__(self, orientation: str, *, integer: bool = False):
        super().__init__(orientation)
        self.integer = integer
        self.enableAutoSIPrefix(False)

    def _target(self, size: float) -> int:
        per = PIXELS_PER_TICK["horizontal" if self.orientation in ("top", "bottom") else "vertical"]
        return max(2, int(size / per))

    def tickValues(self, minVal, maxVal, size):
        lo, hi = sorted((minVal, maxVal))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return []
        if self.logMode:
            if hi - lo >= 1:
                return super().tickValues(minVal, maxVal, size)
            _step, values = nice_ticks(10**lo, 10**hi, self._target(size))
            return [(None, [math.log10(v) for v in values if v > 0])]
        step, values = nice_ticks(lo, hi, self._target(size), integer=self.integer)
        return [(step, values)]

    def tickStrings(self, values, scale, spacing):
        if not self.logMode:
            return tick_labels([v * scale for v in values], spacing * scale)
        if spacing is None:  # a narrow log axis: the round linear values chosen above
            linear = [10**v for v in values]
            step = float(np.min(np.diff(linear))) if len(linear) > 1 else (linear[0] if linear else 1.0)
            return tick_labels(linear, step)
        strings = super().tickStrings(values, scale, spacing)
        out = []
        for v, text in zip(values, strings, strict=True):
            mantissa = 10 ** (v - np.floor(v))
            out.append(text if min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6 else "")
        return out


class DurationAxis(ValueAxis):
    """Seconds since a run started, ticked at round durations: 45 s, 12:30, 2:05:00."""

    def tickValues(self, minVal, maxVal, size):
        lo, hi = sorted((minVal, maxVal))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return []
        target = self._target(size)
        if hi - lo < 2 * DURATION_STEPS[0]:
            step, values = nice_ticks(lo, hi, target, integer=True)
            return [(step, values)]
        step = next(
            (s for s in DURATION_STEPS if (hi - lo) / s <= 1.5 * target),
            DURATION_STEPS[-1] * nice_step((hi - lo) / DURATION_STEPS[-1], target),
        )
        return [(step, [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)])]

    def tickStrings(self, values, scale, spacing):
        return [_duration_label(v * scale, spacing * scale) for v in values]


def _duration_label(seconds: float, spacing: float) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    return f"{sign}{s:.0f} s" if spacing < 60 and s < 60 else sign + fmt.clock(s)


def x_axis(mode: str) -> pg.AxisItem:
    """The bottom axis for an x-axis mode (see `X_MODES`)."""
    if mode == "wall":
        return pg.DateAxisItem(orientation="bottom")
    if mode == "relative":
        return DurationAxis("bottom")
    return ValueAxis("bottom", integer=mode == "step")


def format_x(mode: str, x: float) -> str:
    """An x position as the hover readout heads it: step 1,200 · epoch 3.25 · a date · 12:30."""
    if mode == "wall":
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(x))
    if mode == "relative":
        return _duration_label(x, 1.0 if abs(x) < 60 else 60.0)
    if mode == "epoch":
        return f"epoch {x:.2f}"
    return f"step {x:,.0f}"
