"""The application shell: areas, shared actions, settings, closing with unsaved changes,
autosave and crash recovery, export through the engine, and a torch-free start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QLabel, QMessageBox

from app import settings, theme
from app.designer import commands
from app.designer.document import GraphDocument
from app.designer.interactions import GESTURES
from engine.errors import TrainbenchError
from engine.graph import Graph
from tests.app.conftest import click_node, snapshot

ROOT = Path(__file__).resolve().parents[2]
Button = QMessageBox.StandardButton


def menu_texts(menu) -> list[str]:
    return [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]


def test_shell_has_areas_menus_and_shared_actions(window):
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Designer", "Runs", "Experiments"]
    menus = {m.text().replace("&", ""): m.menu() for m in window.menuBar().actions()}
    assert list(menus) == ["File", "Edit", "View", "Help"]
    assert menu_texts(menus["File"]) == [
        "New", "Open…", "Open Template", "Open Recent", "Import Model…", "Import Runs", "Save", "Save As…", "Export", "Quit",
    ]  # fmt: skip
    edit = menu_texts(menus["Edit"])
    for name in ("Undo", "Redo", "Cut", "Copy", "Paste", "Duplicate", "Delete", "Select All"):
        assert name in edit
    assert {"Zoom In", "Zoom Out", "Fit to View", "Auto-Layout", "Theme"} <= set(menu_texts(menus["View"]))
    # the toolbar shows the very same QAction objects as the menus
    toolbar = set(window.toolbar.actions())
    d = window.designer.actions
    assert {window.files.save, d.undo, d.redo, d.fit, d.auto_layout} <= toolbar
    assert d.undo in menus["Edit"].actions()
    assert window.windowTitle() == "Untitled (digits-cnn)[*] — Trainbench"
    assert window.validity.text().startswith("✔ valid")


def test_areas_are_built_when_first_shown_and_can_be_replaced(window, qtbot):
    import app.window as shell

    class FakeArea(QLabel):
        def __init__(self, db_path):
            super().__init__("a fake area")
            self.db_path = db_path
            self.allow_close = False

        def confirm_close(self) -> bool:
            return self.allow_close

    window.add_area("Fake", lambda: FakeArea(window.db_path))
    assert window.area("Fake", build=False) is None  # nothing built (or imported) until shown
    with qtbot.waitSignal(window.area_created) as created:
        window.show_area("Fake")
    fake = window.area("Fake")
    assert created.args == ["Fake", fake] and isinstance(fake, FakeArea)
    qtbot.waitUntil(fake.isVisible)
    assert not window.close()  # the area said no
    fake.allow_close = True

    replacement = QLabel("replacement")
    window.set_area("Runs", replacement)
    assert window.area("Runs") is replacement and window.tabs.tabText(1) == "Runs"
    assert set(shell.AREAS) == {"Runs", "Experiments"}


def test_closing_asks_about_unsaved_changes(window, qtbot, dialogs, file_dialog, tmp_path):
    window.designer.add_op("ReLU")
    assert window.isWindowModified()
    dialogs.answers = [Button.Cancel]
    assert not window.close()
    assert window.isVisible()
    assert dialogs.shown[-1][1] == "Unsaved changes"
    file_dialog.next_path = str(tmp_path / "kept.json")
    dialogs.answers = [Button.Save]
    assert window.close()
    assert Graph.load(tmp_path / "kept.json").to_dict() == snapshot(window.doc)


def test_settings_remember_theme_geometry_and_recent_files(window, qtbot, file_dialog, tmp_path, app_dir):
    from app.main import create_window

    dark = next(a for a in window.theme_actions.actions() if a.data() == "dark")
    dark.trigger()
    assert theme.current().name == "dark" and dark.isChecked()
    file_dialog.next_path = str(tmp_path / "net.json")
    window.files.save.trigger()
    window.resize(720, 540)  # within the offscreen screen, which clamps restored geometry
    assert window.close()
    assert (app_dir / "settings.ini").exists()  # under the test's folder, not the user's

    again = create_window()
    qtbot.addWidget(again)
    assert (again.size().width(), again.size().height()) == (720, 540)
    assert next(a for a in again.theme_actions.actions() if a.data() == "dark").isChecked()
    assert settings.recent_files() == [str((tmp_path / "net.json").resolve())]
    again.files.recent_menu.aboutToShow.emit()
    assert again.files.recent_menu.actions()[0].text() == "net.json"
    again.set_theme("light")


def test_autosave_then_recovery_after_a_crash(window, qtbot, app_dir, dialogs):
    from app.main import create_window

    window.designer.add_op("GELU")
    window.autosaver.save_now()
    record = json.loads(window.autosaver.path.read_text())
    assert record["graph"] == snapshot(window.doc)
    # A crashed session leaves its file behind and holds no lock on it.
    crashed = app_dir / "autosave-999999.json"
    crashed.write_text(json.dumps(record))
    edited = snapshot(window.doc)
    window.doc.undo_stack.setClean()
    assert not window.autosaver.path.exists()  # saved or clean: nothing to recover

    second = create_window()
    qtbot.addWidget(second)
    dialogs.answers = [Button.Yes]
    assert second.offer_recovery()
    assert "did not close properly" in dialogs.shown[-1][2]
    assert snapshot(second.doc) == edited
    assert second.doc.dirty and second.isWindowModified()
    assert not crashed.exists()
    assert not second.offer_recovery()  # offered once
    second.doc.replace(Graph())  # leave it clean for teardown


def test_export_goes_through_the_engine_off_the_ui_thread(
    window, qtbot, monkeypatch, file_dialog, dialogs, tmp_path
):
    calls = []

    def export(graph, fmt, path, state_dict=None):
        calls.append(
            (sorted(graph.nodes), fmt, Path(path), threading.current_thread() is threading.main_thread())
        )
        if fmt == "onnx":
            raise TrainbenchError("ONNX export needs the onnx package: pip install onnx")

    monkeypatch.setitem(sys.modules, "engine.graph.export", types.SimpleNamespace(export=export))
    files = window.files
    file_dialog.next_path = str(tmp_path / "model")
    with qtbot.waitSignal(files.exported, timeout=5000) as done:
        files.export_actions["torchscript"].trigger()
    assert done.args[2] is None
    assert calls == [(sorted(window.doc.graph.nodes), "torchscript", tmp_path / "model.pt", False)]

    with qtbot.waitSignal(files.exported, timeout=5000) as done:
        files.export_actions["onnx"].trigger()
    assert done.args[2] == "ONNX export needs the onnx package: pip install onnx"
    assert dialogs.shown[-1][2] == done.args[2]

    # an invalid model is not exported; the user is told why
    click_node(qtbot, window.designer, "fc")
    window.designer.actions.delete.trigger()
    window.doc.revalidate(now=True)
    before = len(calls)
    files.export_actions["pytorch"].trigger()
    assert len(calls) == before
    assert "does not lead to the output" in dialogs.shown[-1][2] or "input" in dialogs.shown[-1][2]


def test_large_graphs_revalidate_off_the_ui_thread(qtbot, monkeypatch):
    from app.designer import validation

    graph = Graph()
    graph.add_node("Input", {"shape": [16]}, (0, 0), "x")
    prev = "x"
    for i in range(validation.ASYNC_NODES + 50):
        node = graph.add_node("ReLU", {}, (i * 10, 0))
        graph.connect(prev, node.id, 0)
        prev = node.id
    doc = GraphDocument(graph)
    qtbot.waitUntil(lambda: doc.analysis is not None)
    threads = []
    real = validation.analyze
    monkeypatch.setattr(
        validation, "analyze", lambda g, t=None: threads.append(threading.current_thread()) or real(g, t)
    )
    doc.push(commands.SetParam(doc, "x", "shape", [8]))
    assert str(doc.analysis.output_type) == "16"  # the edit returned before the analysis ran
    with qtbot.waitSignal(doc.analyzed, timeout=5000):
        pass
    assert str(doc.analysis.output_type) == "8"
    assert threads and all(t is not threading.main_thread() for t in threads)


def test_wheel_zooms_and_middle_drag_pans(window, qtbot):
    view = window.designer.view
    view.set_zoom(1.0)
    centre = QPointF(view.viewport().rect().center())
    wheel = QWheelEvent(
        centre, QPointF(view.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 240),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    view.wheelEvent(wheel)
    assert abs(view.zoom() - 1.15**2) < 1e-6
    assert window.zoom_label.text() == "132%"
    before = view.mapToScene(view.viewport().rect().center())
    port = view.viewport()
    qtbot.mousePress(port, Qt.MouseButton.MiddleButton, pos=QPoint(300, 300))
    qtbot.mouseMove(port, pos=QPoint(200, 250))
    qtbot.mouseRelease(port, Qt.MouseButton.MiddleButton, pos=QPoint(200, 250))
    after = view.mapToScene(view.viewport().rect().center())
    assert after.x() > before.x() and after.y() > before.y()
    window.designer.actions.fit.trigger()
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert visible.contains(window.designer.scene.nodes_rect())


def test_start_up_shows_the_window_without_importing_torch(tmp_path):
    script = (
        "import sys\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "def check():\n"
        "    (window,) = [w for w in app.topLevelWidgets() if w.objectName() == 'mainWindow']\n"
        "    print('shown', window.isVisible(), window.windowTitle(), 'torch' in sys.modules, flush=True)\n"
        "    window.close()\n"
        "QTimer.singleShot(0, check)\n"
        "from app.main import main\n"
        "sys.exit(main([]))\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TRAINBENCH_APP_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "shown True Untitled (digits-cnn)[*] — Trainbench False" in out.stdout


def test_the_designer_toolbar_status_and_shortcuts_stay_with_the_designer(window, qtbot):
    area, doc = window.designer, window.doc
    window.activateWindow()
    bar = [window.toolbar, window.validity, window.zoom_label]
    assert all(w.isVisible() for w in bar)
    # On its own tab, Delete deletes the selected node...
    click_node(qtbot, area, "drop")
    qtbot.keyClick(area.view, Qt.Key.Key_Delete)
    assert "drop" not in doc.graph.nodes
    doc.undo_stack.undo()
    click_node(qtbot, area, "drop")

    for name in ("Runs", "Experiments"):
        window.show_area(name)
        qtbot.waitUntil(lambda name=name: window.area(name).isVisible())
        assert not any(w.isVisible() for w in bar), name
        assert not area.actions.delete.isEnabled() and not area.actions.redo.isEnabled()
    # ...on another tab it does not touch the model out of sight
    qtbot.keyClick(window.area("Runs"), Qt.Key.Key_Delete)
    qtbot.keyClick(window.area("Runs"), Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    experiments = window.area("Experiments")  # where Delete and Ctrl+D are the runs table's own
    experiments.ensure_loaded()
    qtbot.keyClick(experiments.browser.table, Qt.Key.Key_Delete)
    qtbot.keyClick(experiments.browser.table, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert "drop" in doc.graph.nodes and doc.undo_stack.index() == 0

    window.show_area("Designer")
    assert all(w.isVisible() for w in bar)
    assert area.actions.delete.isEnabled() and area.actions.redo.isEnabled()
    assert not area.actions.undo.isEnabled()  # back as the undo stack says
    assert area.scene.selected_node_ids() == ["drop"]


def test_the_shortcuts_dialog_lists_every_shortcut(window, qtbot):
    from app.window import ShortcutsDialog

    window.show_shortcuts()
    (dialog,) = window.findChildren(ShortcutsDialog)
    qtbot.waitExposed(dialog)
    shown = dialog.text.toPlainText()
    rows = {what: keys for rows in window.shortcuts().values() for what, keys in rows}
    assert rows["Fit to View"] == "Ctrl+0, F"
    assert rows["Start run"] == "Ctrl+Return" and rows["Compare"] == "Ctrl+Return"
    assert rows["Undo"].startswith("Ctrl+Z") and rows["Duplicate"] == "Ctrl+D"
    # every action of the shell and the areas with a shortcut is in the dialog
    from PySide6.QtGui import QAction

    with_keys = [a for a in window.findChildren(QAction) if any(not k.isEmpty() for k in a.shortcuts())]
    assert len(with_keys) >= 25
    for action in with_keys:
        title = action.property("title") or action.text().replace("&", "").rstrip("…")
        assert title in shown, title
    for what, how in GESTURES:
        assert what in shown and how in shown
    dialog.close()


def test_pytorch_export_writes_the_code_and_its_weights_and_says_where(window, qtbot, file_dialog, tmp_path):
    from PySide6.QtCore import QObject, QUrl, Slot
    from PySide6.QtGui import QDesktopServices
    from PySide6.QtWidgets import QApplication, QMessageBox

    class FileManager(QObject):
        """Stands in for the desktop's file manager: Qt hands it the URLs it is asked to open."""

        def __init__(self):
            super().__init__()
            self.opened: list[QUrl] = []

        @Slot(QUrl)
        def open(self, url: QUrl) -> None:
            self.opened.append(url)

    manager = FileManager()
    QDesktopServices.setUrlHandler("file", manager, "open")
    try:
        file_dialog.next_path = str(tmp_path / "out" / "digits")
        with qtbot.waitSignal(window.files.exported, timeout=120_000) as done:
            window.files.export_actions["pytorch"].trigger()
        fmt, path, error, written = done.args
        assert error is None
        code, weights = tmp_path / "out" / "digits.py", tmp_path / "out" / "digits.pt"
        assert written == [str(code), str(weights)] and code.exists() and weights.exists()
        assert window.statusBar().currentMessage() == "Exported PyTorch module: digits.py, digits.pt"

        box = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "exportedBox")
        assert str(code) in box.text() and str(weights) in box.text()
        show = next(b for b in box.buttons() if b.text() == "Show in Folder")
        show.click()
        assert manager.opened == [QUrl.fromLocalFile(str(code.parent))]
        assert not isinstance(QApplication.activeModalWidget(), QMessageBox)  # it never blocked

        # it closes like any window (a message box with no escape button refused to, and so
        # the application refused to quit while it was open)
        file_dialog.next_path = str(tmp_path / "again" / "digits")
        with qtbot.waitSignal(window.files.exported, timeout=120_000):
            window.files.export_actions["pytorch"].trigger()
        box = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "exportedBox")
        assert box.isVisible() and box.close()
    finally:
        QDesktopServices.unsetUrlHandler("file")

    # the pair runs on its own: the script loads the weights beside it and prints the model
    out = subprocess.run(
        [sys.executable, str(code)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Model(")
