"""Reusable plotting for live and recorded metrics: `CurveBuffer` (growing series with a min/max
pyramid), `MetricPlot` (several curves, smoothing, log-y, hover), `debiased_ema`, sparklines."""

from app.plots.buffer import CurveBuffer
from app.plots.metric_plot import PALETTE, MetricPlot, format_value
from app.plots.smoothing import EmaState, debiased_ema
from app.plots.sparkline import paint_sparkline

__all__ = [
    "PALETTE",
    "CurveBuffer",
    "EmaState",
    "MetricPlot",
    "debiased_ema",
    "format_value",
    "paint_sparkline",
]
