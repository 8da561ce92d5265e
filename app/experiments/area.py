"""The Experiments area: find any past run in seconds and compare several side by side.

Browse: the runs table (or lineage tree) with its filter bar, the selected run's details on
the right, and below, for many runs at once, parallel coordinates and a trade-off scatter.
Compare: the selected runs' curves overlaid and their hyperparameters diffed.

Selection is linked: the table, the tree, the scatter, the parallel coordinates and the
comparison all follow one list of selected run ids, held here; brushing the parallel
coordinates narrows the table. Cross-area requests leave as signals (`clone_requested` with a
run's spec for the run form, `open_model_requested` with a graph for the designer); the main
window connects them.

Opening the store and reading the table wait until the area is first shown, so the app starts
as fast without it; a QTimer then polls the store (PRAGMA data_version, a few microseconds)
every two seconds while the area is visible, to pick up runs started, finished or deleted
elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import settings, theme
from app.experiments.browser import RunBrowser
from app.experiments.catalog import RunCatalog
from app.experiments.columns import DEFAULT_COLUMNS
from app.experiments.compare import CompareView
from app.experiments.details import RunDetails
from app.experiments.parallel import ParallelCoordinates
from app.experiments.scatter import TradeoffScatter
from app.experiments.table_model import RunTableModel
from engine import run_table
from engine.errors import StoreError, TrainbenchError
from engine.store import RunStore, default_db_path

POLL_MS = 2000
COMPARE_DELAY_MS = 150  # selection settles (keyboard scrolling) before curves are read


class ExperimentsArea(QWidget):
    clone_requested = Signal(dict)  # a run's spec, for the run form
    open_model_requested = Signal(dict)  # a run's model graph, for the designer
    status = Signal(str)

    def __init__(self, db_path: Path | None, parent=None):
        super().__init__(parent)
        self.setObjectName("experimentsArea")
        self.db_path = Path(db_path) if db_path else None
        self.store: RunStore | None = None
        self.selection: list[int] = []
        self._data_version = None
        self._token = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(10, 8, 10, 8)
        self._layout.setSpacing(8)
        self._poll = QTimer(self, interval=POLL_MS)
        self._poll.timeout.connect(self.poll)
        self._compare_timer = QTimer(self, singleShot=True, interval=COMPARE_DELAY_MS)
        self._compare_timer.timeout.connect(self._update_compare)
        # styled before the children exist: restyling 10,000-row views afterwards costs ~0.5 s
        self.apply_theme(theme.current())
        theme.changed().connect(self.apply_theme)

    # ------------------------------------------------------------ opening

    @property
    def loaded(self) -> bool:
        return self.store is not None

    def ensure_loaded(self) -> None:
        """Open the store and build the views (on first show; tests call it directly)."""
        if self.store is not None:
            return
        self.store = RunStore(self.db_path or default_db_path())
        self.store.reap()  # runs that died while no one looked show as crashed
        s = settings.settings()
        columns = s.value("experiments/columns")
        columns = [columns] if isinstance(columns, str) else list(columns or DEFAULT_COLUMNS)
        self.catalog = RunCatalog(self.store)
        self.model = RunTableModel(self.catalog, columns, self)
        self._build()
        self._restore_state()
        self._data_version = run_table.data_version(self.store)
        self._token = run_table.change_token(self.store)

    def _build(self) -> None:
        self.browser = RunBrowser(self.model)
        self.details = RunDetails(self.model)
        self.parallel = ParallelCoordinates(self.catalog)
        self.scatter = TradeoffScatter(self.catalog)
        self.compare = CompareView(self.store)
        self.run_actions = self._make_actions()

        self.explore = QTabWidget(objectName="exploreTabs", documentMode=True)
        self.explore.addTab(self.parallel, "Parallel coordinates")
        self.explore.addTab(self.scatter, "Scatter")
        self.left = QSplitter(Qt.Orientation.Vertical, objectName="browseSplitter")
        self.left.addWidget(self.browser)
        self.left.addWidget(self.explore)
        self.left.setStretchFactor(0, 3)
        self.left.setStretchFactor(1, 2)
        self.left.setSizes([520, 300])
        self.browse = QSplitter(Qt.Orientation.Horizontal, objectName="browseMain")
        self.browse.addWidget(self.left)
        self.browse.addWidget(self.details)
        self.browse.setStretchFactor(0, 1)
        self.browse.setSizes([1100, 340])
        self.details.setMinimumWidth(280)

        self.pages = QStackedWidget()
        self.pages.addWidget(self.browse)
        self.pages.addWidget(self.compare)
        self.mode_browse = QToolButton(text="Browse", checkable=True, checked=True, objectName="modeBrowse")
        self.mode_compare = QToolButton(text="Compare", checkable=True, objectName="modeCompare")
        for button, page in ((self.mode_browse, self.browse), (self.mode_compare, self.compare)):
            button.setAutoExclusive(True)
            button.toggled.connect(lambda on, p=page: on and self._show_page(p))
        top = QHBoxLayout()
        top.setSpacing(2)
        top.addWidget(self.mode_browse)
        top.addWidget(self.mode_compare)
        top.addSpacing(12)
        self.summary = QLabel(objectName="subtle")
        top.addWidget(self.summary, 1)
        for action in (self.run_actions["refresh"], self.run_actions["export_table"]):
            button = QToolButton()
            button.setDefaultAction(action)
            top.addWidget(button)
        self._layout.addLayout(top)
        self._layout.addWidget(self.pages, 1)

        a = self.run_actions
        self.browser.context_actions = [
            a["compare"], None, a["rename"], a["star"], a["edit_notes"], None,
            a["clone"], a["open_sweep"], a["open_model"], a["export_metrics"], None, a["delete"],
        ]  # fmt: skip
        self.details.set_actions(
            [a["compare"], a["clone"], a["open_sweep"], a["open_model"], a["export_metrics"], a["delete"]]
        )
        self.addActions([x for x in a.values()])

        self.browser.selection_changed.connect(self.set_selection)
        self.browser.columns_changed.connect(
            lambda cols: settings.settings().setValue("experiments/columns", cols)
        )
        self.details.run_linked.connect(self.reveal)
        self.model.rows_filtered.connect(self._rows_filtered)
        self.model.run_edited.connect(self._run_edited)
        self.parallel.brush_changed.connect(self._brushed)
        self.parallel.run_clicked.connect(lambda rid, add: self._pick([rid], add))
        self.scatter.runs_selected.connect(self._pick)
        self._rows_filtered()
        self.set_selection([])

    def apply_theme(self, t) -> None:
        """This area's own widgets (the mode switch, legend chips, details); the app's
        stylesheet covers the standard ones."""
        self.setStyleSheet(
            f"""
            QToolButton#modeBrowse, QToolButton#modeCompare {{
                border: none; border-bottom: 2px solid transparent; border-radius: 0;
                padding: 4px 12px; color: {t.subtext}; font-weight: 600; }}
            QToolButton#modeBrowse:checked, QToolButton#modeCompare:checked {{
                color: {t.text}; border-bottom: 2px solid {t.accent}; background: transparent; }}
            QToolButton#legendChip {{
                border: 1px solid {t.border}; border-radius: 11px; padding: 2px 9px 2px 6px;
                background: {t.panel}; color: {t.text}; }}
            QToolButton#legendChip:!checked {{ color: {t.subtext}; background: transparent; border-style: dashed; }}
            QToolButton#detailsAction {{ border: 1px solid {t.border}; border-radius: 5px; padding: 3px 9px; background: {t.panel}; }}
            QToolButton#detailsAction:hover {{ border-color: {t.accent}; }}
            QToolButton#detailsAction:disabled {{ color: {t.subtext}; }}
            QToolButton#starredFilter:checked, QToolButton#treeToggle:checked {{
                background: {t.accent}; color: #ffffff; border-color: {t.accent}; }}
            QLabel#detailsTitle {{ font-size: 13pt; }}
            QWidget#runDetailsBody, QScrollArea#runDetails {{ background: {t.panel}; }}
            QTextBrowser#notesView, QPlainTextEdit#notesEdit {{ border: 1px solid {t.border}; border-radius: 5px; background: {t.panel}; }}
            QLabel#plotReadout {{ background: {t.panel}; color: {t.text}; border: 1px solid {t.border}; border-radius: 5px; padding: 5px 7px; }}
            """
        )

    def _make_actions(self) -> dict[str, QAction]:
        def act(text: str, slot, shortcut=None, tip: str = "") -> QAction:
            action = QAction(text, self)
            action.setProperty("title", text.rstrip("…"))  # the shortcuts list's name: "Compare 3" counts
            action.triggered.connect(slot)
            if shortcut is not None:
                action.setShortcuts(
                    QKeySequence.keyBindings(shortcut)
                    if isinstance(shortcut, QKeySequence.StandardKey)
                    else [QKeySequence(shortcut)]
                )
                action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.setStatusTip(tip)
            action.setToolTip(tip or text)
            return action

        return {
            "compare": act("Compare", self.show_compare, "Ctrl+Return", "Overlay the selected runs' curves and diff their hyperparameters"),
            "rename": act("Rename", self.rename_current, "F2", "Rename the run"),
            "star": act("Star", self.toggle_star, "Ctrl+D", "Star or unstar the selected runs"),
            "edit_notes": act("Edit notes", self.edit_notes, None, "Write notes (Markdown) about the run"),
            "clone": act("Clone into run form", self.clone_current, None, "Open the run form with this run's spec"),
            "open_sweep": act("Open sweep", self.open_sweep_current, None, "The sweep's trials, best so far and parameter importance"),
            "open_model": act("Open model in designer", self.open_model_current, None, "Show this run's model in the designer"),
            "export_metrics": act("Export metrics CSV…", lambda: self.export_metrics(), None, "Every metric point of the run, as CSV"),
            "export_table": act("Export table CSV…", lambda: self.export_table(), None, "The runs and columns shown, as CSV"),
            "delete": act("Delete…", self.delete_selected, QKeySequence.StandardKey.Delete, "Delete the selected runs, their metrics and checkpoints"),
            "refresh": act("Refresh", self.reload, QKeySequence.StandardKey.Refresh, "Re-read the run store"),
        }  # fmt: skip

    def _restore_state(self) -> None:
        s = settings.settings()
        for key, splitter in (("experiments/browse", self.browse), ("experiments/left", self.left)):
            state = s.value(key)
            if isinstance(state, QByteArray):
                splitter.restoreState(state)
            elif splitter is self.browse and self.width() > 0:
                # a narrow window keeps the table's filter bar usable: the details give way first
                details = int(min(340, max(280, 0.27 * self.width())))
                splitter.setSizes([self.width() - details, details])
        if s.value("experiments/tree", False) in (True, "true"):
            self.browser.set_tree_mode(True)
        self.browser.tree_toggle.toggled.connect(
            lambda on: settings.settings().setValue("experiments/tree", on)
        )

    def save_state(self) -> None:
        if not self.loaded:
            return
        s = settings.settings()
        s.setValue("experiments/browse", self.browse.saveState())
        s.setValue("experiments/left", self.left.saveState())

    # ------------------------------------------------------------ visibility and polling

    def showEvent(self, event) -> None:
        super().showEvent(event)
        # Built after the event, not inside it: adding child widgets from within a show
        # event crashed Qt (6.11) here.
        QTimer.singleShot(0, self._shown)

    def _shown(self) -> None:
        if not self.isVisible():
            return
        self.ensure_loaded()
        self.poll()
        self._poll.start()

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self._poll.stop()
        self.save_state()

    def poll(self) -> None:
        """Pick up changes made by other processes: new, finished or deleted runs."""
        if not self.loaded:
            return
        version = run_table.data_version(self.store)
        if version == self._data_version:
            return
        self._data_version = version
        self.store.reap()
        token = run_table.change_token(self.store)
        if token != self._token:
            self.reload()
        else:
            self.model.refresh_running()

    def reload(self) -> None:
        """Re-read the table, keeping the filter, the sort and the selection."""
        self.ensure_loaded()
        selected = list(self.selection)
        self.model.reload()
        self._token = run_table.change_token(self.store)
        self._data_version = run_table.data_version(self.store)
        self.browser.refresh_tags()
        self.browser.select_ids([rid for rid in selected if rid in self.catalog.index], scroll=False)

    # ------------------------------------------------------------ selection

    def set_selection(self, run_ids: list[int]) -> None:
        self.selection = list(run_ids)
        n = len(run_ids)
        self.details.show_runs(self.selection)
        self.parallel.set_selected(self.selection)
        self.scatter.set_selected(self.selection)
        one = n == 1
        a = self.run_actions
        a["compare"].setEnabled(n >= 1)
        a["compare"].setText(f"Compare {n}" if n > 1 else "Compare")
        for key in ("rename", "clone", "open_model", "export_metrics", "edit_notes"):
            a[key].setEnabled(one)
        a["star"].setEnabled(n >= 1)
        a["open_sweep"].setEnabled(one and self._sweep_of(run_ids[0]) is not None)
        running = any(self._status(rid) in ("running", "queued") for rid in self.selection)
        a["delete"].setEnabled(n >= 1 and not running)
        a["delete"].setToolTip("Stop the run before deleting it" if running else a["delete"].statusTip())
        self.mode_compare.setText(f"Compare ({n})" if n else "Compare")
        if self.pages.currentWidget() is self.compare:
            self._compare_timer.start()

    def _status(self, run_id: int) -> str | None:
        row = self.catalog.index.get(run_id)
        return self.catalog.rows["status"][row] if row is not None else None

    def select(self, run_ids: list[int]) -> None:
        """Select these runs in every view (as a click in the table would)."""
        self.ensure_loaded()
        self.browser.select_ids(list(run_ids))

    def _pick(self, run_ids: list[int], additive: bool) -> None:
        ids = list(dict.fromkeys([*self.selection, *run_ids])) if additive else list(run_ids)
        self.browser.select_ids(ids)

    def reveal(self, run_id: int) -> None:
        """Select a run, clearing the filter if it hides the run."""
        if self.model.display_row(run_id) is None:
            self.browser.search.clear()
            for box in (self.browser.status_box, self.browser.kind_box, self.browser.tag_box):
                box.setCurrentIndex(0)
            self.browser.starred.setChecked(False)
            self.parallel.clear_brushes()
            self.browser.apply_filter()
        self.browser.select_ids([run_id])

    def _rows_filtered(self) -> None:
        rows = self.model.filtered_rows()
        self.parallel.set_rows(rows)
        self.scatter.set_rows(rows)
        self.scatter.set_inside(None)
        shown, total = len(rows), len(self.catalog)
        self.summary.setText(
            f"{total:,} runs in {self.store.path.name}" + (f" · {shown:,} match" if shown != total else "")
        )

    def _brushed(self, run_ids: set[int] | None) -> None:
        self.model.set_brush(run_ids)
        self.scatter.set_inside(run_ids)

    def _run_edited(self, run_id: int) -> None:
        self.browser.refresh_tags()
        if run_id in self.selection and self.pages.currentWidget() is self.compare:
            self._compare_timer.start()

    # ------------------------------------------------------------ pages

    def show_compare(self) -> None:
        self.mode_compare.setChecked(True)

    def show_browse(self) -> None:
        self.mode_browse.setChecked(True)

    def _show_page(self, page: QWidget) -> None:
        self.pages.setCurrentWidget(page)
        if page is self.compare:
            self._update_compare()

    def _update_compare(self) -> None:
        if self.compare.run_ids != self.selection:
            self.compare.set_runs(self.selection)

    # ------------------------------------------------------------ run actions

    def _sweep_of(self, run_id: int) -> int | None:
        """The sweep a run is, or is a trial of (trials are grouped under it in the tree)."""
        rows, index = self.catalog.rows, self.catalog.index
        row = index.get(run_id)
        if row is None:
            return None
        if rows["kind"][row] == "sweep":
            return run_id
        parent = index.get(rows["parent_id"][row])
        return rows["parent_id"][row] if parent is not None and rows["kind"][parent] == "sweep" else None

    def open_sweep_current(self) -> None:
        """The sweep view of the selected sweep (or of the sweep a selected trial belongs to)."""
        from app.sweeps.launch import SweepWindow

        sweep_id = self._sweep_of(self.selection[0]) if len(self.selection) == 1 else None
        if sweep_id is None:
            return
        window = SweepWindow(self.store.path, self)
        window.setWindowFlag(Qt.WindowType.Window)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.open(sweep_id)
        window.promote_requested.connect(self.clone_requested)
        window.open_run_requested.connect(self.reveal)
        window.show()

    def current_run(self) -> dict | None:
        if len(self.selection) != 1:
            return None
        try:
            return self.store.get_run(self.selection[0])
        except StoreError:
            return None

    def rename_current(self) -> None:
        if len(self.selection) != 1:
            return
        view = self.browser.view
        column = self.model.columns.index("name") if "name" in self.model.columns else None
        if column is None:
            return
        index = self.browser._index_of(view, self.selection[0]).siblingAtColumn(column)  # noqa: SLF001
        view.setCurrentIndex(index)
        view.edit(index)

    def toggle_star(self) -> None:
        if not self.selection:
            return
        rows = [self.catalog.index[r] for r in self.selection if r in self.catalog.index]
        star = 0 if all(self.catalog.rows["starred"][r] for r in rows) else 1
        for rid in self.selection:
            self.model.edit(rid, starred=star)

    def edit_notes(self) -> None:
        if len(self.selection) == 1:
            self.details.toggle_notes_editing()

    def clone_current(self) -> None:
        run = self.current_run()
        if run is not None:
            self.clone_requested.emit(run["spec"])
            self.status.emit(f"Cloned run #{run['id']} into the run form")

    def open_model_current(self) -> None:
        run = self.current_run()
        if run is None:
            return
        try:
            graph = run_graph(self.store, run)
        except TrainbenchError as err:
            QMessageBox.warning(self, "Cannot open the model", str(err))
            return
        if graph is None:
            QMessageBox.information(self, "No model", f"Run #{run['id']} has no model graph to open.")
            return
        self.open_model_requested.emit(graph)

    def export_metrics(self, path: str | Path | None = None) -> Path | None:
        from engine.export import export_metrics_csv

        run = self.current_run()
        if run is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export metrics", f"run-{run['id']}-metrics.csv", "CSV (*.csv)"
            )
            if not path:
                return None
        export_metrics_csv(self.store, run["id"], Path(path))
        self.status.emit(f"Exported run #{run['id']}'s metrics to {path}")
        return Path(path)

    def export_table(self, path: str | Path | None = None) -> Path | None:
        if not self.loaded:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export the runs table", "runs.csv", "CSV (*.csv)")
            if not path:
                return None
        self.model.export_csv(path)
        self.status.emit(f"Exported {self.model.rowCount():,} runs to {path}")
        return Path(path)

    def delete_selected(self) -> bool:
        """Ask, then delete the selected runs: their rows, metrics and checkpoint files only."""
        ids = list(self.selection)
        if not ids:
            return False
        running = [rid for rid in ids if self._status(rid) in ("running", "queued")]
        if running:
            QMessageBox.warning(
                self,
                "Cannot delete",
                f"Run{'s' if len(running) > 1 else ''} {_ids(running)} still running; stop it first.",
            )
            return False
        files, size, children = 0, 0, 0
        for rid in ids:
            for cp in self.store.checkpoints(rid):
                files += 1
                size += cp["bytes"] or 0
            children += self.store.conn.execute(
                f"SELECT COUNT(*) FROM runs WHERE parent_id=? AND id NOT IN ({','.join('?' * len(ids))})",
                (rid, *ids),
            ).fetchone()[0]
        names = (
            f"run #{ids[0]} “{self.catalog.rows['name'][self.catalog.index[ids[0]]]}”"
            if len(ids) == 1
            else f"{len(ids)} runs ({_ids(ids)})"
        )
        text = (
            f"Delete {names}?\n\nIts metrics and {files} checkpoint file{'s' if files != 1 else ''}"
            f" ({_size(size)}) are removed for good."
        )
        if children:
            text += f" {children} run{'s' if children != 1 else ''} derived from it stay{'s' if children == 1 else ''}, without a parent."
        answer = QMessageBox.question(
            self,
            "Delete runs" if len(ids) > 1 else "Delete run",
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        failed = []
        for rid in ids:
            try:
                self.store.delete_run(rid)
            except StoreError as err:
                failed.append(str(err))
        self.selection = []
        self.reload()
        self.browser.select_ids([])
        if failed:
            QMessageBox.warning(self, "Some runs were not deleted", "\n".join(failed))
        self.status.emit(f"Deleted {names}")
        return True


def run_graph(store, run: dict) -> dict | None:
    """The model a run trained: a pruned run's comes from its checkpoint (pruning changes it),
    any other's is in its spec."""
    if run["kind"] == "prune":
        row = store.last_checkpoint(run["id"])
        if row is not None:
            from engine import checkpoint  # imports torch: only when asked

            return checkpoint.load(row["path"]).get("graph") or run["spec"].get("model")
    return run["spec"].get("model")


def _ids(ids: list[int]) -> str:
    shown = ", ".join(f"#{i}" for i in ids[:6])
    return shown + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
