"""Light and dark themes: one palette of colours per theme, shared by the Qt style, the
stylesheets in resources/styles/ and the canvas, which paints itself from `current()`.

Op categories keep the same hue in both themes so a Conv2d is orange wherever you see it.

Switching themes restyles every widget, and how that is asked for decides what it costs. With
the window's ~1,750 widgets (all areas open) measured here: `QApplication.setStyle` re-polishes
all of them (0.63 s) and `QApplication.setStyleSheet` re-polishes each widget once per ancestor
(Qt's repolish walks every styled object and again its subtree: 16,600 style changes for 1,120
objects, 0.6–0.75 s), while `QWidget.setStyleSheet` on the window polishes its subtree about
twice per widget (0.18 s). So the style and the application's stylesheet are set once, at start,
before any widget exists, and a later switch restyles each window: the app's palette, then the
theme's stylesheet on every top-level window (a window-level sheet overrides the application's
rule for rule, and popups, dialogs and tooltips with a parent inherit it). Hidden windows —
pyqtgraph makes a dozen parentless context menus of ~45 widgets each — are restyled when they
are next shown, not now. A window created after a switch calls `style_window` for the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from engine import RESOURCES


@dataclass(frozen=True)
class Theme:
    name: str
    window: str
    panel: str
    text: str
    subtext: str
    border: str
    accent: str
    canvas: str
    grid_minor: str
    grid_major: str
    node_body: str
    node_border: str
    edge: str
    label_bg: str
    label_text: str
    error: str
    ok: str

    def color(self, attr: str) -> QColor:
        return QColor(getattr(self, attr))


LIGHT = Theme(
    name="light",
    window="#f3f4f6",
    panel="#ffffff",
    text="#1f2328",
    subtext="#5f6b7a",
    border="#d5d9e0",
    accent="#2f6fde",
    canvas="#f8f9fb",
    grid_minor="#eceef2",
    grid_major="#dfe3e9",
    node_body="#ffffff",
    node_border="#c4cad3",
    edge="#7d8898",
    label_bg="#ffffff",
    label_text="#364150",
    error="#d93636",
    ok="#2e9e5b",
)

DARK = Theme(
    name="dark",
    window="#1f2228",
    panel="#262a31",
    text="#e4e7ec",
    subtext="#9aa4b2",
    border="#3a404a",
    accent="#5b9cff",
    canvas="#1a1d22",
    grid_minor="#22262c",
    grid_major="#2b3038",
    node_body="#2b3039",
    node_border="#454c58",
    edge="#8e99a8",
    label_bg="#2b3039",
    label_text="#d3d8df",
    error="#ff6464",
    ok="#4cc38a",
)

THEMES = {t.name: t for t in (LIGHT, DARK)}

CATEGORY_COLORS = {
    "Input": "#2f8fbf",
    "Dense": "#7d5bd6",
    "Convolution": "#e0701e",
    "Pooling": "#c28a0c",
    "Normalization": "#17998b",
    "Activation": "#3b9a4b",
    "Reshape": "#66758a",
    "Sequence": "#c8407f",
    "Merge": "#8b8f16",
    "Block": "#4f5bd5",
}
#: a run's status has one colour in every view (run list, run badge, runs table, details), in both themes
STATUS_COLORS = {
    "starting": "#66758a",
    "queued": "#66758a",
    "running": "#2f6fde",
    "stopping": "#a8770a",
    "stopped": "#a8770a",
    "completed": "#2e9e5b",
    "failed": "#d93636",
    "crashed": "#b0306a",
}
_SPARE = ("#a0522d", "#2e8b57", "#b8860b", "#6a5acd")


def category_color(category: str) -> QColor:
    """A fixed hue per op category; a category added to the registry later gets a spare one."""
    known = CATEGORY_COLORS.get(category)
    return QColor(known or _SPARE[sum(map(ord, category)) % len(_SPARE)])


class _ThemeSignal(QObject):
    changed = Signal(object)


class _StyleWhenShown(QObject):
    """Restyles a hidden window the moment it is shown (an event filter on that window only)."""

    def watch(self, window: QWidget) -> None:
        window.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Show:
            obj.removeEventFilter(self)
            style_window(obj)
        return False


_current = LIGHT
_signal: _ThemeSignal | None = None
_restyler: _StyleWhenShown | None = None


def _when_shown() -> _StyleWhenShown:
    global _restyler
    if _restyler is None:
        _restyler = _StyleWhenShown()
    return _restyler


def current() -> Theme:
    return _current


def changed() -> Signal:
    """Emitted with the new `Theme` after `apply`; views that paint themselves repaint."""
    global _signal
    if _signal is None:
        _signal = _ThemeSignal()
    return _signal.changed


def apply(app: QApplication, name: str) -> Theme:
    """Make `name` the theme of the application and of every window it has."""
    global _current
    theme = THEMES.get(name, LIGHT)
    if theme is _current and app.styleSheet():
        return theme  # restyling every widget is not free; nothing changed
    _current = theme
    app.setPalette(_palette(theme))
    if not app.styleSheet():  # at start: no widget to restyle yet
        app.setStyle("Fusion")
        app.setStyleSheet(stylesheet(theme))
    else:
        for window in app.topLevelWidgets():
            if window.parentWidget() is None:
                if window.isVisible():
                    style_window(window)
                else:
                    _when_shown().watch(window)
    changed().emit(theme)
    return theme


def style_window(window: QWidget) -> None:
    """Give a top-level window the current theme's stylesheet, when it differs from the one the
    application started with (see the module docstring)."""
    app = QApplication.instance()
    sheet = stylesheet(_current)
    if window.styleSheet() != sheet and (window.styleSheet() or app.styleSheet() != sheet):
        window.setStyleSheet(sheet)


def stylesheet(t: Theme) -> str:
    """The theme's stylesheet (resources/styles/NAME.qss), icons resolved."""
    qss = RESOURCES / "styles" / f"{t.name}.qss"
    # url() in a stylesheet is relative to the working directory; point it at our icons.
    icons = (RESOURCES / "icons").as_posix()
    return qss.read_text(encoding="utf-8").replace("@ICONS@", icons) if qss.exists() else ""


def _palette(t: Theme) -> QPalette:
    p = QPalette()
    c = QColor
    roles = QPalette.ColorRole
    p.setColor(roles.Window, c(t.window))
    p.setColor(roles.WindowText, c(t.text))
    p.setColor(roles.Base, c(t.panel))
    p.setColor(roles.AlternateBase, c(t.window))
    p.setColor(roles.ToolTipBase, c(t.panel))
    p.setColor(roles.ToolTipText, c(t.text))
    p.setColor(roles.PlaceholderText, c(t.subtext))
    p.setColor(roles.Text, c(t.text))
    p.setColor(roles.Button, c(t.panel))
    p.setColor(roles.ButtonText, c(t.text))
    p.setColor(roles.BrightText, c(t.error))
    p.setColor(roles.Highlight, c(t.accent))
    p.setColor(roles.HighlightedText, c("#ffffff"))
    p.setColor(roles.Link, c(t.accent))
    p.setColor(roles.Mid, c(t.border))
    p.setColor(roles.Midlight, c(t.border))
    p.setColor(roles.Dark, c(t.border))
    p.setColor(roles.Light, c(t.panel))
    for role in (roles.Text, roles.WindowText, roles.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, c(t.subtext))
    return p
