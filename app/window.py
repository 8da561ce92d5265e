"""The main window: Designer, Runs and Experiments areas as tabs, with the menus, toolbar and
status bar built from the areas' shared QActions. Window state lives in QSettings.

An area's toolbar and status-bar widgets show only while its tab does (`show_with_area`), and
the designer's actions work only while it is on screen. The shortcuts dialog is generated from
the window's QActions, so it lists every shortcut there is.

Areas other than the Designer are imported and built the first time their tab is shown
(`AREAS`): they bring pyqtgraph, numpy and the run store, which must not slow the first
window down. Code that wires an area to the rest of the window connects to `area_created`
(or calls `area(name)`, which builds it). Menus of an area go in with `add_menu`; an area with
a `confirm_close() -> bool` method is asked before the window closes. The window holds no
business state: the designer's document does.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from html import escape
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QTextBrowser,
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
from app.designer.import_dialog import ImportModelDialog
from app.designer.interactions import GESTURES
from app.designer.layout import layered_positions
from app.experiments.imports import SOURCES as IMPORT_SOURCES
from app.experiments.imports import import_runs
from engine import format as fmt
from engine.errors import TrainbenchError
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
        self._area_widgets: dict[str, list[QWidget]] = {}
        self.designer = DesignerArea(self.doc)
        self.designer.health.set_db_path(db_path)  # the run store whose health the designer shows
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
        self.show_with_area("Designer", self.toolbar, self.validity, self.zoom_label)
        self.doc.path_changed.connect(self._update_title)
        self.doc.dirty_changed.connect(self._update_title)
        self.doc.reset.connect(self.designer.view.fit)
        self._update_title()
        self.restore_settings()
        self.tabs.currentChanged.connect(self._area_changed)
        self._area_changed(self.tabs.currentIndex())
        self.designer.canvas_sized.connect(self._lay_out_opening_model)
        self.area_created.connect(
            lambda name, area: name == "Runs" and area.set_model_provider(lambda: self.doc.graph.to_dict())
        )
        self.area_created.connect(
            lambda name, area: name == "Experiments" and self._connect_experiments(area)
        )
        theme.style_window(self)  # a window made after a theme switch takes the current one

    def _lay_out_opening_model(self) -> None:
        """The model the window opened with, laid out for the canvas it turned out to have (a
        template is laid out before the window knows its size). Only an untitled, untouched
        one: the positions in a file, or ones the user made, are theirs."""
        doc = self.doc
        if doc.path is not None or doc.dirty or doc.undo_stack.count() or not doc.graph.nodes:
            return
        positions = layered_positions(doc.graph, self.designer.view_size())
        if any(doc.graph.nodes[n].pos != p for n, p in positions.items()):
            for n, p in positions.items():
                doc.graph.nodes[n].pos = p
            doc.replace(doc.graph)

    def _connect_experiments(self, experiments: QWidget) -> None:
        """A run cloned in Experiments opens in the run form; its model opens in the designer."""

        def clone(spec: dict) -> None:
            runs = self.area("Runs")
            if hasattr(runs, "open_spec"):
                runs.open_spec(spec)
                self.show_area("Runs")

        def open_model(graph: dict) -> None:
            try:
                model = Graph.from_dict(graph)
            except TrainbenchError as err:
                QMessageBox.warning(self, "Cannot open the run's model", str(err))
                return
            if self.files.maybe_save():
                self.doc.replace(model)
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

    def show_with_area(self, name: str, *widgets: QWidget) -> None:
        """Show `widgets` (a toolbar, status-bar widgets) only while area `name` is current."""
        self._area_widgets.setdefault(name, []).extend(widgets)
        current = self.tabs.tabText(self.tabs.currentIndex())
        for widget in widgets:
            widget.setVisible(name == current)

    def _area_changed(self, index: int) -> None:
        current = self.tabs.tabText(index)
        for name, widgets in self._area_widgets.items():
            for widget in widgets:
                widget.setVisible(name == current)
        self.designer.set_active(current == "Designer")
        self.statusBar().clearMessage()  # the last area's news

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
        self.import_model_action = file_menu.addAction("&Import Model…", self.import_model)
        self.import_model_action.setToolTip("Bring a PyTorch model or an ONNX file into the designer")
        self.import_menu = file_menu.addMenu("Import R&uns")  # from TensorBoard and MLflow
        for text, source, ask in IMPORT_SOURCES:
            self.import_menu.addAction(text, lambda s=source, a=ask: import_runs(self, s, a, self.db_path))
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

    def import_model(self) -> ImportModelDialog:
        """File ▸ Import Model: the import runs in an engine process; its graph opens here."""
        dialog = ImportModelDialog(self, self.designer.view_size)
        dialog.open_graph.connect(self.files.open_file)
        dialog.open()
        return dialog

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
        self.designer.status.connect(self._designer_news)
        self.files.status.connect(lambda text: bar.showMessage(text, STATUS_MS))
        self.autosaver.failed.connect(lambda text: bar.showMessage(text, STATUS_MS))
        if self.doc.analysis is not None:
            self._show_validity(self.doc.analysis)

    def _designer_news(self, text: str) -> None:
        """The canvas's notes (zoom, refused connections) are news only while it is on screen: a
        resize on another tab re-fits the hidden canvas, whose note would sit under that tab."""
        if self.tabs.tabText(self.tabs.currentIndex()) == "Designer":
            self.statusBar().showMessage(text, STATUS_MS)

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

    def shortcuts(self) -> dict[str, list[tuple[str, str]]]:
        """Every keyboard shortcut in the window, by area: each QAction and button that has one
        (areas not shown yet are built and loaded first, so theirs are listed too), then the
        canvas gestures."""
        for i in range(self.tabs.count()):
            area = self.area(self.tabs.tabText(i))
            if hasattr(area, "ensure_loaded"):
                area.ensure_loaded()
        tabs = [(self.tabs.tabText(i), self.tabs.widget(i)) for i in range(self.tabs.count())]

        def section(obj: QObject) -> str:
            while obj is not None and not isinstance(obj, QWidget):
                obj = obj.parent()
            return next((name for name, tab in tabs if obj is tab or tab.isAncestorOf(obj)), "General")

        found: dict[str, list[tuple[str, str]]] = {"General": []}
        found.update({name: [] for name, _ in tabs})
        seen = set()
        things = [*self.findChildren(QAction), *self.findChildren(QAbstractButton)]
        for thing in things:
            keys = thing.shortcuts() if isinstance(thing, QAction) else [thing.shortcut()]
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in keys if _typable(k)]
            # an action whose text changes (Undo names the step) says what it is in "title"
            name = thing.property("title") or re.sub(r"&(.)", r"\1", thing.text() or thing.toolTip())
            row = (name.rstrip("…").strip(), ", ".join(keys))
            if keys and row not in seen:
                seen.add(row)
                found[section(thing)].append(row)
        found["Designer canvas (mouse)"] = list(GESTURES)
        return {name: rows for name, rows in found.items() if rows}

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self.shortcuts(), self).show()

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
        """After a crash, offer the recovery files, newest first, until one is restored (the
        rest wait for the next start; a discarded one is gone). Files that cannot be read are
        reported and kept aside. Returns whether one was restored."""
        found, unreadable = recovery.orphaned(self.autosaver.folder)
        if unreadable:
            lines = "\n".join(f"• {bad.reason}" for bad in unreadable[:10])
            QMessageBox.warning(
                self,
                "Some unsaved changes cannot be recovered",
                f"{len(unreadable)} recovery file{'s' if len(unreadable) != 1 else ''} could not be read "
                f"and {'were' if len(unreadable) != 1 else 'was'} kept, renamed *{recovery.UNREADABLE}, "
                f"in {self.autosaver.folder}:\n{lines}",
            )
        for item in found:
            what = item.original.name if item.original else f"the untitled model “{item.graph.name}”"
            answer = QMessageBox.question(
                self,
                "Recover unsaved changes?",
                f"{APP_NAME} did not close properly. Recover your unsaved changes to {what} "
                f"(autosaved {item.saved_at:%Y-%m-%d %H:%M})?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard,
                QMessageBox.StandardButton.Yes,
            )
            if answer == QMessageBox.StandardButton.Yes:
                self.doc.replace(item.graph, item.original, recovered=True)
                self.autosaver.save_now()
                item.discard()
                return True
            item.discard()
        return False

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


class ShortcutsDialog(QDialog):
    """The shortcuts, one table per area; it stays open beside the window while you try them."""

    def __init__(self, sections: dict[str, list[tuple[str, str]]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        # one table, so every section's keys start in one column
        html = (
            "<table cellspacing='0' cellpadding='2'>"
            + "".join(
                f"<tr><td colspan='2'><h3>{escape(name)}</h3></td></tr>"
                + "".join(
                    f"<tr><td style='padding-right:18px'>{escape(what)}</td><td><b>{escape(keys)}</b></td></tr>"
                    for what, keys in rows
                )
                for name, rows in sections.items()
            )
            + "</table>"
        )
        self.text = QTextBrowser(objectName="shortcutsText")
        self.text.setHtml(html)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(560, 640)


def _typable(keys: QKeySequence) -> bool:
    """Whether a shortcut is typed on an ordinary keyboard: the platform's standard bindings
    also list dedicated keys (a "Copy" or "Undo" key, a Sun keyboard's F14–F20) that would only
    clutter the list."""
    if keys.isEmpty():
        return False
    key = keys[0].key()
    # Qt numbers the dedicated (media, office) keys from Key_Back on
    return key < Qt.Key.Key_Back and not Qt.Key.Key_F12 < key <= Qt.Key.Key_F35
