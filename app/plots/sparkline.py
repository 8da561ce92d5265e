"""Sparklines: a curve's shape in a few dozen pixels, painted straight with QPainter (no
pyqtgraph scene per list row), from the buffer's min/max pyramid so a million points cost the
same as a hundred."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF

from app.plots.buffer import CurveBuffer


def paint_sparkline(
    painter: QPainter, rect: QRectF, buffer: CurveBuffer, color: QColor, width: float = 1.3
) -> None:
    """Draw `buffer` scaled into `rect` (robust to NaN and inf; nothing when < 2 points)."""
    xs, ys = buffer.view(max_points=max(8, int(rect.width())))
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if len(xs) < 2:
        return
    x0, x1 = xs[0], xs[-1]
    lo, hi = float(ys.min()), float(ys.max())
    sx = rect.width() / (x1 - x0) if x1 > x0 else 0.0
    sy = rect.height() / (hi - lo) if hi > lo else 0.0
    px = rect.left() + (xs - x0) * sx
    py = rect.bottom() - (ys - lo) * sy if sy else np.full(len(ys), rect.center().y())
    polygon = QPolygonF([QPointF(a, b) for a, b in zip(px.tolist(), py.tolist(), strict=True)])
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    pen = QPen(color, width)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.drawPolyline(polygon)
    painter.restore()
