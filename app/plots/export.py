"""Saving a plot as PNG or SVG.

PNG goes through pyqtgraph's ImageExporter at twice the on-screen size. SVG is drawn with Qt's
own QSvgGenerator: pyqtgraph 0.14's SVGExporter fails on the path syntax Qt 6.11 writes
(pyqtgraph issue #3485, "x,y = c.split(',')" ValueError), while QSvgGenerator keeps every
curve a vector path.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QRect
from PySide6.QtGui import QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QFileDialog, QMenu, QToolButton


def save_plot(widget: pg.PlotWidget, path: str | Path, title: str = "") -> Path:
    """`widget`'s plot as PNG or SVG, by the suffix; `title`, when given, is drawn above it (on
    screen a plot's title is a label outside it)."""
    path = Path(path)
    item = widget.plotItem
    if title:
        item.setTitle(title, size="10pt", bold=True)
    try:
        if path.suffix.lower() == ".svg":
            generator = QSvgGenerator()
            generator.setFileName(str(path))
            generator.setSize(widget.size())
            generator.setViewBox(QRect(0, 0, widget.width(), widget.height()))
            generator.setTitle(title or widget.objectName())
            painter = QPainter(generator)
            widget.render(painter)
            painter.end()
        else:
            import pyqtgraph.exporters as exporters

            exporter = exporters.ImageExporter(item)
            exporter.parameters()["width"] = max(800, int(item.sceneBoundingRect().width() * 2))
            exporter.export(str(path))
    finally:
        if title:
            item.setTitle(None)
    return path


def export_button(widget, save, name: str) -> QToolButton:
    """A tool button whose menu saves `save(path)` as PNG or SVG, asking where."""
    button = QToolButton(widget, text="Export", objectName="exportPlot")
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    menu = QMenu(button)
    for fmt in ("png", "svg"):

        def ask(_checked=False, fmt=fmt):
            path, _ = QFileDialog.getSaveFileName(
                widget, f"Export as {fmt.upper()}", f"{name}.{fmt}", f"{fmt.upper()} (*.{fmt})"
            )
            if path:
                save(path)

        menu.addAction(f"As {fmt.upper()}…", ask)
    button.setMenu(menu)
    return button
