"""Fixtures for the desktop app tests: offscreen Qt, a throwaway settings folder, recorded
dialogs, and helpers that drive the canvas with the mouse as a user would."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything creates a QApplication

import pytest
import shiboken6
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app import settings
from tests.app.runs_fixtures import one_thread_engines, runs_area  # noqa: F401  (the Runs area tests' fixtures)

Button = QMessageBox.StandardButton


@pytest.fixture(autouse=True)
def app_dir(tmp_path, monkeypatch):
    """Settings, recent files and recovery files go to a temporary folder, never the user's."""
    folder = tmp_path / "appdir"
    monkeypatch.setenv(settings.ENV_DIR, str(folder))
    return folder


class Dialogs:
    """Stands in for modal message boxes: records each one and answers from `answers`
    (default: Discard / No / OK), so a test can assert what the user was told."""

    def __init__(self):
        self.shown: list[tuple[str, str, str]] = []
        self.answers: list = []

    def fake(self, kind: str, default):
        def show(parent, title, text, *args, **kwargs):
            self.shown.append((kind, title, text))
            return self.answers.pop(0) if self.answers else default

        return show

    def texts(self) -> str:
        return "\n".join(f"{title}: {text}" for _, title, text in self.shown)


@pytest.fixture(autouse=True)
def dialogs(monkeypatch) -> Dialogs:
    d = Dialogs()
    monkeypatch.setattr(QMessageBox, "warning", d.fake("warning", Button.Discard))
    monkeypatch.setattr(QMessageBox, "question", d.fake("question", Button.Discard))
    monkeypatch.setattr(QMessageBox, "information", d.fake("information", Button.Ok))
    monkeypatch.setattr(QMessageBox, "about", d.fake("about", None))
    return d


class FileDialogs:
    def __init__(self):
        self.next_path = ""

    def fake(self, *args, **kwargs):
        return self.next_path, ""


@pytest.fixture
def file_dialog(monkeypatch) -> FileDialogs:
    d = FileDialogs()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", d.fake)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", d.fake)
    return d


@pytest.fixture
def window(qtbot, qapp):
    """The main window as `trainbench` opens it (CNN template), shown offscreen."""
    from app.main import create_app, create_window

    create_app()
    win = create_window()
    win.resize(1440, 900)
    win.show()
    qtbot.waitExposed(win)
    win.designer.view.fit()
    yield win
    if shiboken6.isValid(win):
        win.doc.wait_for_analysis()
        win.close()  # unsaved changes: the recorded dialog answers Discard
        win.deleteLater()  # a live window would be restyled by every later theme change
        qtbot.wait(1)


# ------------------------------------------------------------------ canvas helpers


def view_point(view, scene_pos: QPointF) -> QPoint:
    """Where a scene point is on the view's viewport, scrolling it into view first."""
    if not view.viewport().rect().adjusted(20, 20, -20, -20).contains(view.mapFromScene(scene_pos)):
        view.centerOn(scene_pos)
    return view.mapFromScene(scene_pos)


def drag(qtbot, view, start: QPointF, end: QPointF, steps: int = 4) -> None:
    """Press at `start`, move in a few steps, release at `end` (scene coordinates)."""
    a = view_point(view, start)
    b = view.mapFromScene(end)
    port = view.viewport()
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=a)
    for i in range(1, steps + 1):
        qtbot.mouseMove(port, pos=a + (b - a) * (i / steps))
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=b)


def out_port(area, node_id: str) -> QPointF:
    return area.scene.nodes[node_id].out_port_pos()


def in_port(area, node_id: str, port: int = 0) -> QPointF:
    return area.scene.nodes[node_id].in_port_pos(port)


def node_center(area, node_id: str) -> QPointF:
    item = area.scene.nodes[node_id]
    return item.mapToScene(item.body_rect().center())


def click_node(qtbot, area, node_id: str, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    pos = view_point(area.view, node_center(area, node_id))
    qtbot.mouseClick(area.view.viewport(), Qt.MouseButton.LeftButton, modifier, pos)


def palette_add(qtbot, area, op: str) -> str:
    """Search the palette and double-click the op, as a user adds a layer; returns the new id."""
    palette = area.palette
    palette.search.clear()
    qtbot.keyClicks(palette.search, op)
    item = palette.items[op]
    rect = palette.tree.visualItemRect(item)
    before = set(area.doc.graph.nodes)
    double_click(qtbot, palette.tree.viewport(), rect.center())
    (new,) = set(area.doc.graph.nodes) - before
    return new


def double_click(qtbot, widget, pos: QPoint) -> None:
    """A real double-click: QTest's mouseDClick alone sends no first press, which item views need."""
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseDClick(widget, Qt.MouseButton.LeftButton, pos=pos)


def snapshot(doc) -> dict:
    return doc.graph.to_dict()


@pytest.fixture(autouse=True)
def _collect_qt_garbage_now(qapp):
    """Collect each test's widgets right after it, while Qt is idle, rather than whenever the
    garbage collector next runs (inside a later test's torch import, where it crashed)."""
    yield
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
