"""One colour per run, the same in every view (table swatches, curves, scatter, legend).

A run's colour depends on its id only, never on which runs are shown or in what order, so a
run keeps its colour from one comparison to the next. Ten hues that stay readable on the light
and the dark theme; ids that share a hue (ten apart) get a lighter or darker shade, so any
twenty consecutive runs are told apart.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

HUES = (
    "#2f6fde",
    "#e8590c",
    "#2e9e5b",
    "#d6336c",
    "#7048e8",
    "#0c8599",
    "#c28a0c",
    "#9c36b5",
    "#5c940d",
    "#5f6b7a",
)
_SHADES = (100, 135, 70)  # QColor.lighter / darker factor per tenth of ids


def run_color(run_id: int) -> QColor:
    base = QColor(HUES[run_id % len(HUES)])
    shade = _SHADES[(run_id // len(HUES)) % len(_SHADES)]
    if shade > 100:
        return base.lighter(shade)
    if shade < 100:
        return base.darker(int(10000 / shade))
    return base


_SWATCHES: dict[tuple[str, bool], QIcon] = {}


def swatch(color: QColor | str, round_: bool = False, size: int = 12) -> QIcon:
    """A small filled square (or dot) icon of `color`, for tables, headers and legends."""
    name = QColor(color).name()
    key = (f"{name}{size}", round_)
    if key not in _SWATCHES:
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        p = QPainter(pixmap)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(name))
        if round_:
            p.drawEllipse(2, 2, size - 4, size - 4)
        else:
            p.drawRoundedRect(1, 1, size - 2, size - 2, 3, 3)
        p.end()
        _SWATCHES[key] = QIcon(pixmap)
    return _SWATCHES[key]
