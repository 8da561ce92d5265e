"""Icons drawn as SVG in resources/icons/, tinted with the current theme's text colour so one
file serves both themes. `app_icon()` is the full-colour application icon."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from app import theme
from engine import RESOURCES

ICONS = RESOURCES / "icons"
_SIZES = (16, 20, 24, 32, 48)


def icon(name: str) -> QIcon:
    return _tinted(name, theme.current().text)


def app_icon() -> QIcon:
    return _render((ICONS / "trainbench.svg").read_bytes(), (16, 24, 32, 48, 64, 128, 256))


@cache
def _tinted(name: str, color: str) -> QIcon:
    svg = (ICONS / f"{name}.svg").read_text(encoding="utf-8").replace("currentColor", color)
    return _render(svg.encode(), _SIZES)


def _render(svg: bytes, sizes) -> QIcon:
    renderer = QSvgRenderer(QByteArray(svg))
    out = QIcon()
    for size in sizes:
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter)
        painter.end()
        out.addPixmap(pixmap)
    return out
