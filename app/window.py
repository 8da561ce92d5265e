"""The main window: Designer, Runs and Experiments areas as tabs, with the menus, toolbar and
status bar built from the areas' shared QActions. Window state lives in QSettings.

Areas other than the Designer are imported and built the first time their tab is shown
(`AREAS`): they bring pyqtgraph, numpy and the run store, which must not slow the first
window down. Code that wires an area to the rest of the window connects to `area_created`
(or calls `area(name)`, which builds it). Menus of an area go in with `add_menu`; an area with
a `confirm_close() -> bool` method is asked before the window closes. The window holds no
business state: the designer's document does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

import engine
from app import APP_NAME, icons, recovery, settings, theme
from app.designer.area import DesignerArea
from app.designer.document import GraphDocument
from app.designer.files import FileActions
from engine import format as fmt
from engine.graph import Analysis, Graph

STATUS_MS = 6000
#: tab name → "module:Class" of an area built on first show, called with the run database path
AREAS = {"Runs": "app.runs.area:RunsArea", "Experiments": "app.experiments.area:ExperimentsArea"}


class LazyArea(QWidget):
    """A tab's placeholder that imports and builds the real area when first shown."""

    def __init__(self, build: Callable[[], QWidget], built: Callable[[QWidget], None]):
        super().__init__()
        self._build, self._built = build, built
        self.content: QWidget | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

    def widget(self) -> QWidget:
        if self.content is None:
            self.content = self._build()
            self.layout().addWidget(self.content)
            self._built(self.content)
        return self.content

    def showEvent(self, event) -> None:
        self.widget()
        super().showEvent(event)


def _import(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class MainWindow(QMainWindow):
    area_created = Signal(str, QWidget)  # tab name, the area just built

    def __init__(self, doc: GraphDocument | None = None, db_path: Path | None = None):
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowIcon(icons.app_icon())
        self.doc = doc or GraphDocument()
        if self.doc.parent() is None:
            self.doc.setParent(self)
        self.db_path = db_path
        self.designer = DesignerArea(self.doc)
        self.files = FileActions(self.doc, self, self.designer.view_size)
        self.autosaver = recovery.Autosaver(self.doc, settings.data_dir(), self)

        self.tabs = QTabWidget(documentMode=True, objectName="areas")
        self.setCentralWidget(self.tabs)
        self.add_area("Designer", self.designer)
        for name, target in AREAS.items():
            self.add_area(name, lambda target=target: _import(target)(self.db_path))

        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self.doc.path_changed.connect(self._update_title)
        self.doc.dirty_changed.connect(self._update_title)
        self.doc.reset.connect(self.designer.view.fit)
        self._update_title()
        self.restore_settings()
        self.area_created.connect(
            lambda name, area: name == "Runs" and area.set_model_provider(lambda: self.doc.graph.to_dict())
        )
        self.area_created.connect(
            lambda name, area: name == "Experiments" and self._connect_experiments(area)
        )

    def _connect_experiments(self, experiments: QWidget) -> None:
        """A run cloned in Experiments opens in the run form; its model opens in the designer."""

        def clone(spec: dict) -> None:
            runs = self.area("Runs")
            if hasattr(runs, "open_spec"):
                runs.open_spec(spec)
                self.show_area("Runs")

        def open_model(graph: dict) -> None:
            if self.files.maybe_save():
                self.doc.replace(Graph.from_dict(graph))
                self.show_area("Designer")

        experiments.clone_requested.connect(clone)
        experiments.open_model_requested.connect(open_model)
        experiments.status.connect(lambda text: self.statusBar().showMessage(text, STATUS_MS))

    # ------------------------------------------------------------ areas

    def add_area(self, name: str, area: QWidget | Callable[[], QWidget]) -> int:
        """Add a tab: a widget, or a function that builds one when the tab is first shown."""
        if not isinstance(area, QWidget):
            area = LazyArea(area, lambda widget, name=name: self.area_created.emit(name, widget))
        return self.tabs.addTab(area, name)

    def area(self, name: str, build: bool = True) -> QWidget | None:
        """The area shown in tab `name`, built now if it was not yet (unless build=False)."""
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i) == name:
                tab = self.tabs.widget(i)
                if isinstance(tab, LazyArea):
                    return tab.widget() if build else tab.content
                return tab
        return None

    def set_area(self, name: str, widget: QWidget) -> None:
        """Replace the area in tab `name` (for tests and for areas that take over a tab)."""
        index = next(i for i in range(self.tabs.count()) if self.tabs.tabText(i) == name)
        old = self.tabs.widget(index)
        self.tabs.removeTab(index)
        old.deleteLater()
        self.tabs.insertTab(index, widget, name)

    def show_area(self, name: str) -> None:
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i) == name:
                self.tabs.setCurrentIndex(i)

    def add_menu(self, title: str) -> QMenu:
        """A menu for an area, placed before Help."""
        menu = QMenu(title, self)
        self.menuBar().insertMenu(self.help_menu.menuAction(), menu)
        return menu

    # ------------------------------------------------------------ menus, toolbar, status bar

    def _build_menus(self) -> None:
        f, d = self.files, self.designer.actions
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([f.new, f.open])
        file_menu.addMenu(f.templates_menu)
        file_menu.addMenu(f.recent_menu)
        file_menu.addSeparator()
        file_menu.addActions([f.save, f.save_as])
        file_menu.addMenu(f.export_menu)
        file_menu.addSeparator()
        self.quit_action = file_menu.addAction("&Quit", self.close)
        self.quit_action.setShortcuts(
            QKeySequence.keyBindings(QKeySequence.StandardKey.Quit) or [QKeySequence("Ctrl+Q")]
        )

        edit_menu = bar.addMenu("&Edit")
        for group in d.edit_menu_groups():
            edit_menu.addActions(group)
            edit_menu.addSeparator()

        view_menu = bar.addMenu("&View")
        view_menu.addActions(d.view_actions())
        view_menu.addSeparator()
        for dock in self.designer.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        theme_menu = view_menu.addMenu("&Theme")
        self.theme_actions = QActionGroup(self)
        for name in theme.THEMES:
            action = theme_menu.addAction(name.title(), lambda n=name: self.set_theme(n))
            action.setCheckable(True)
            action.setData(name)
            self.theme_actions.addAction(action)

        self.help_menu = bar.addMenu("&Help")
        self.help_menu.addAction("&Keyboard Shortcuts", self.show_shortcuts)
        self.help_menu.addAction(f"&About {APP_NAME}", self.show_about)

    def _build_toolbar(self) -> None:
        f, d = self.files, self.designer.actions
        bar = QToolBar("Main toolbar", objectName="mainToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        bar.addActions([f.new, f.open, f.save])
        bar.addSeparator()
        bar.addActions([d.undo, d.redo])
        bar.addSeparator()
        bar.addActions([d.add_node, d.duplicate, d.delete])
        bar.addSeparator()
        bar.addActions([d.auto_layout, d.fit, d.zoom_out, d.zoom_in])
        bar.addSeparator()
        export = f.export_menu.menuAction()
        export.setToolTip("Export the model (PyTorch, TorchScript, ONNX)")
        bar.addAction(export)
        button = bar.widgetForAction(export)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        button.setObjectName("exportButton")
        self.addToolBar(bar)
        self.toolbar = bar

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.validity = QLabel(objectName="validity")
        self.validity.setMinimumWidth(380)  # room for the usual text, so updates do not relayout
        self.zoom_label = QLabel("100%", objectName="zoomLabel")
        bar.addPermanentWidget(self.validity)
        bar.addPermanentWidget(self.zoom_label)
        self.doc.analyzed.connect(self._show_validity)
        self.designer.view.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z:.0%}"))
        self.designer.status.connect(lambda text: bar.showMessage(text, STATUS_MS))
        self.files.status.connect(lambda text: bar.showMessage(text, STATUS_MS))
        if self.doc.analysis is not None:
            self._show_validity(self.doc.analysis)

    def _show_validity(self, analysis: Analysis) -> None:
        n = len(analysis.problems)
        out = str(analysis.output_type) if analysis.output_type else "?"
        text = (
            f"✔ valid · {fmt.count(analysis.total_params)} params · {fmt.count(analysis.total_flops)} FLOPs · out {out}"
            if n == 0
            else f"✖ {n} problem{'s' if n != 1 else ''}"
        )
        if text == self.validity.text():
            return
        self.validity.setText(text)
        self.validity.setProperty("state", "ok" if n == 0 else "error")
        self.validity.style().unpolish(self.validity)
        self.validity.style().polish(self.validity)

    def _update_title(self, *_args) -> None:
        self.setWindowTitle(f"{self.doc.title}[*] — {APP_NAME}")
        self.setWindowModified(self.doc.dirty)

    # ------------------------------------------------------------ theme, about

    def set_theme(self, name: str) -> None:
        theme.apply(QApplication.instance(), name)
        settings.settings().setValue("theme", name)
        self.files.refresh_icons()
        self.designer.refresh_icons()
        for action in self.theme_actions.actions():
            action.setChecked(action.data() == name)

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            f"About {APP_NAME}",
            f"<h3>{APP_NAME} {engine.__version__}</h3>"
            "<p>A desktop workbench for deep-learning experiments: design a model, train, prune, "
            "distill and compare runs.</p><p>Models you design here run unchanged from the "
            "<code>trainbench</code> command line.</p>",
        )

    def show_shortcuts(self) -> None:
        d = self.designer.actions
        rows = [(a.text().replace("&", ""), a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)) for a in (
            d.undo, d.redo, d.cut, d.copy, d.paste, d.duplicate, d.delete, d.select_all, d.add_node,
            d.set_output, d.edit_body, d.zoom_in, d.zoom_out, d.fit, d.auto_layout,
        )]  # fmt: skip
        rows += [
            ("Pan", "Middle-drag, or Space + drag"),
            ("Zoom", "Mouse wheel"),
            ("Connect", "Drag from an output port to an input port"),
            ("Move a connection", "Drag its input end elsewhere (drop on empty canvas to delete)"),
            ("Nudge selection", "Arrow keys (Shift: one grid step)"),
        ]
        table = "".join(
            f"<tr><td style='padding-right:16px'>{a}</td><td><b>{k}</b></td></tr>" for a, k in rows
        )
        QMessageBox.information(self, "Keyboard shortcuts", f"<table>{table}</table>")

    # ------------------------------------------------------------ settings, recovery, closing

    def restore_settings(self) -> None:
        s = settings.settings()
        geometry = s.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1440, 900)
        if s.value("window/state") is not None:
            self.restoreState(s.value("window/state"))
        if s.value("designer/state") is not None:
            self.designer.restoreState(s.value("designer/state"))
        current = theme.current().name
        for action in self.theme_actions.actions():
            action.setChecked(action.data() == current)

    def save_settings(self) -> None:
        s = settings.settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("designer/state", self.designer.saveState())

    def offer_recovery(self) -> bool:
        """After a crash, offer the newest recovery file; returns whether one was restored."""
        found = recovery.orphaned(self.autosaver.folder)
        if not found:
            return False
        newest = found[0]
        what = newest.original.name if newest.original else f"the untitled model “{newest.graph.name}”"
        answer = QMessageBox.question(
            self,
            "Recover unsaved changes?",
            f"{APP_NAME} did not close properly. Recover your unsaved changes to {what} "
            f"(autosaved {newest.saved_at:%Y-%m-%d %H:%M})?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard,
            QMessageBox.StandardButton.Yes,
        )
        restored = answer == QMessageBox.StandardButton.Yes
        if restored:
            self.doc.replace(newest.graph, newest.original, recovered=True)
            self.autosaver.save_now()
        for item in found:
            item.discard()
        return restored

    def closeEvent(self, event) -> None:
        built = [self.area(self.tabs.tabText(i), build=False) for i in range(self.tabs.count())]
        asked = [a for a in built if a is not None and hasattr(a, "confirm_close")]
        if not self.files.maybe_save() or not all(a.confirm_close() for a in asked):
            event.ignore()
            return
        self.save_settings()
        self.autosaver.close()
        self.doc.close()
        event.accept()
