"""Switching themes restyles every window without re-polishing the whole application: the
window gets the theme's stylesheet, a hidden popup gets it when shown, the palette follows,
and the Qt style is left alone (setting it again re-polished every widget: seconds)."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QMenu

from app import theme


@pytest.fixture
def light_theme_after():
    yield
    theme.apply(QApplication.instance(), "light")


def test_a_theme_switch_restyles_each_window_and_hidden_popups_when_shown(qtbot, window, light_theme_after):
    app = QApplication.instance()
    style, app_sheet = app.style(), app.styleSheet()
    menu = QMenu()  # parentless, hidden: like pyqtgraph's context menus
    qtbot.addWidget(menu)
    menu.addAction("an action")
    seen = []
    theme.changed().connect(seen.append)
    window.set_theme("dark")
    assert seen == [theme.DARK] and theme.current() is theme.DARK
    assert window.styleSheet() == theme.stylesheet(theme.DARK)
    assert app.palette().color(QPalette.ColorRole.Window).name() == theme.DARK.window
    assert app.style() is style and app.styleSheet() == app_sheet  # nothing application-wide re-polished
    assert menu.styleSheet() == ""  # not restyled while hidden...
    menu.popup(window.mapToGlobal(window.rect().center()))
    qtbot.waitUntil(menu.isVisible)
    assert menu.styleSheet() == theme.stylesheet(theme.DARK)  # ...but as it is shown
    menu.hide()
    window.set_theme("light")
    assert window.styleSheet() == theme.stylesheet(theme.LIGHT)
    assert app.palette().color(QPalette.ColorRole.Window).name() == theme.LIGHT.window
    window.set_theme("light")  # no change: nothing restyled, nothing signalled
    assert seen == [theme.DARK, theme.LIGHT]
    theme.changed().disconnect(seen.append)
