"""Plotting for live and recorded metrics, one family for the whole app: `CurveBuffer`
(growing series with a min/max pyramid), `MetricPlot` (curves, smoothing, markers for sparse
series, padded degenerate ranges, x-axis modes, hover readout), `debiased_ema`, tick helpers,
sparklines and PNG/SVG export."""

from app.plots.buffer import CurveBuffer
from app.plots.metric_plot import PALETTE, Curve, MetricPlot
from app.plots.smoothing import DENSE_POINTS, EmaState, debiased_ema, noisy
from app.plots.sparkline import paint_sparkline

__all__ = [
    "DENSE_POINTS",
    "PALETTE",
    "Curve",
    "CurveBuffer",
    "EmaState",
    "MetricPlot",
    "debiased_ema",
    "noisy",
    "paint_sparkline",
]
