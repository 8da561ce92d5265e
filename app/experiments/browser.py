"""The runs browser: a filter bar over the runs table, which shows as a flat table or as the
lineage tree; its header's context menu chooses the columns.

The browser is a view: it reports which runs are selected and shows what the table model holds.
Edits and run actions are the area's (app/experiments/area.py), reached through the QActions
it hands in for the context menu.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QStackedWidget,
    QTableView,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app import icons
from app.experiments.catalog import RunFilter
from app.experiments.columns import DEFAULT_COLUMNS, RUN_COLUMNS, column_title
from app.experiments.lineage_model import LineageModel
from app.experiments.table_model import RUN_ID_ROLE, RunTableModel
from engine import run_table
from engine.store import KINDS, STATUSES

WIDTHS = {"starred": 30, "id": 56, "name": 230, "kind": 70, "status": 100, "parent_id": 64, "created_at": 132, "duration": 92, "tags": 140, "notes": 200}  # fmt: skip
ANY = ""


class RunBrowser(QWidget):
    """Filter bar + runs table / lineage tree. `selection_changed` carries the selected run ids
    in table order."""

    selection_changed = Signal(list)
    activated = Signal(int)  # a run double-clicked outside the editable name
    columns_changed = Signal(list)

    def __init__(self, model: RunTableModel, parent=None):
        super().__init__(parent)
        self.setObjectName("runBrowser")
        self.model = model
        self.tree_model = LineageModel(model, self)
        self.context_actions: list[QAction | None] = []  # set by the area; None = separator
        self._syncing = False
        self._selected: list[int] = []

        self.search = QLineEdit(
            objectName="runSearch", placeholderText="Filter runs by name, #id, tag or notes…"
        )
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(120)  # a few words of the filter stay readable beside the boxes
        self.search.addAction(icons.icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.status_box = self._combo("Any status", STATUSES)
        self.kind_box = self._combo("Any kind", KINDS)
        self.tag_box = self._combo("Any tag", ())
        self.starred = QToolButton(text="★ Starred", checkable=True, objectName="starredFilter")
        self.starred.setToolTip("Show starred runs only")
        self.tree_toggle = QToolButton(text="Lineage tree", checkable=True, objectName="treeToggle")
        self.tree_toggle.setToolTip(
            "Show runs under the run they were pruned or distilled from, and trials under their sweep"
        )
        self.count = QLabel(objectName="subtle")
        self._filter_timer = QTimer(self, singleShot=True, interval=120)  # typing settles first
        self._filter_timer.timeout.connect(self.apply_filter)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.setSpacing(6)
        bar.addWidget(self.search, 3)
        for w in (self.status_box, self.kind_box, self.tag_box):
            bar.addWidget(w)
        bar.addWidget(self.starred)
        bar.addWidget(self.tree_toggle)
        bar.addStretch(1)
        bar.addWidget(self.count)

        self.table = QTableView(objectName="runTable")
        self.tree = QTreeView(objectName="runTree")
        self._setup_view(self.table, model)
        # uniform heights before the model: else the tree measures all 10,000 rows (10 s)
        self.tree.setUniformRowHeights(True)
        self._setup_view(self.tree, self.tree_model)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.tree.setSortingEnabled(False)
        header = self.table.horizontalHeader()
        id_column = model.columns.index("id") if "id" in model.columns else 0
        header.setSortIndicator(id_column, Qt.SortOrder.DescendingOrder)
        self.table.setSortingEnabled(True)
        self.tree.header().setSortIndicatorShown(True)
        self.tree.header().setSortIndicator(id_column, Qt.SortOrder.DescendingOrder)
        self.tree.header().sectionClicked.connect(self._tree_sort)
        for h in (header, self.tree.header()):
            h.setSectionsMovable(True)
            h.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            h.customContextMenuRequested.connect(self._header_menu)
            h.setHighlightSections(False)
            h.sectionMoved.connect(self._section_moved)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.tree)
        # what an empty table means, over it: no runs at all, or none the filter lets through
        self.empty = QLabel(objectName="subtle", alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.empty.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        views = QWidget()
        over = QGridLayout(views)
        over.setContentsMargins(0, 0, 0, 0)
        over.addWidget(self.stack, 0, 0)
        over.addWidget(self.empty, 0, 0)  # the same cell, drawn over the views

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(bar)
        layout.addWidget(views, 1)

        self.search.textChanged.connect(lambda _t: self._filter_timer.start())
        for box in (self.status_box, self.kind_box, self.tag_box):
            box.currentIndexChanged.connect(self.apply_filter)
        self.starred.toggled.connect(self.apply_filter)
        self.tree_toggle.toggled.connect(self.set_tree_mode)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed(self.table))
        self.tree.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed(self.tree))
        self.tree_model.modelReset.connect(self._tree_reset)
        model.modelReset.connect(self._after_reset)
        model.layoutChanged.connect(self._update_count)
        model.modelReset.connect(self._update_count)
        self._apply_widths()
        self._update_count()
        self.refresh_tags()

    # ------------------------------------------------------------ building

    def _combo(self, any_text: str, items) -> QComboBox:
        box = QComboBox()
        box.addItem(any_text, ANY)
        for item in items:
            box.addItem(item, item)
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        return box

    def _setup_view(self, view: QAbstractItemView, model) -> None:
        view.setModel(model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        view.setAlternatingRowColors(True)
        view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        view.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        view.setIconSize(QSize(12, 12))
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(lambda pos, v=view: self._row_menu(v, pos))
        view.clicked.connect(self._clicked)

    def _apply_widths(self) -> None:
        for view in (self.table, self.tree):
            header = view.horizontalHeader() if isinstance(view, QTableView) else view.header()
            header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
            for i, column in enumerate(self.model.columns):
                header.resizeSection(i, WIDTHS.get(column, 104))
        name = self.model.columns.index("name") if "name" in self.model.columns else 0
        self.tree.setTreePosition(name)  # the branches go with the names
        self.tree.header().resizeSection(name, 300)

    def refresh_tags(self) -> None:
        current = self.tag_box.currentData()
        self.tag_box.blockSignals(True)
        while self.tag_box.count() > 1:
            self.tag_box.removeItem(1)
        for tag in self.model.catalog.all_tags():
            self.tag_box.addItem(f"#{tag}", tag)
        index = self.tag_box.findData(current)
        self.tag_box.setCurrentIndex(max(0, index))
        self.tag_box.setVisible(self.tag_box.count() > 1)
        self.tag_box.blockSignals(False)

    # ------------------------------------------------------------ filtering and sorting

    def apply_filter(self) -> None:
        status, kind, tag = (b.currentData() for b in (self.status_box, self.kind_box, self.tag_box))
        self.model.set_filter(
            RunFilter(
                text=self.search.text(),
                statuses=frozenset([status]) if status else frozenset(),
                kinds=frozenset([kind]) if kind else frozenset(),
                tag=tag or "",
                starred_only=self.starred.isChecked(),
            )
        )

    def _tree_sort(self, section: int) -> None:
        """The tree shares the table's order; clicking its header sorts both."""
        header = self.table.horizontalHeader()
        same = header.sortIndicatorSection() == section
        order = Qt.SortOrder.AscendingOrder
        if same and header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder:
            order = Qt.SortOrder.DescendingOrder
        header.setSortIndicator(section, order)  # sorts the model
        self.tree.header().setSortIndicator(section, order)

    def _update_count(self) -> None:
        shown, total = self.model.rowCount(), len(self.model.catalog)
        self.count.setText(f"{shown:,} of {total:,} runs" if shown != total else f"{total:,} runs")
        self.empty.setText(
            ""
            if shown
            else "No run matches the filter."
            if total
            else "No runs in this store yet.\nStart one from the Runs tab, or with trainbench run SPEC."
        )
        self.empty.setVisible(not shown)

    # ------------------------------------------------------------ columns

    def _header_menu(self, pos) -> None:
        menu = self.column_menu()
        header = self.sender()
        menu.exec(header.mapToGlobal(pos))

    def column_menu(self) -> QMenu:
        """Checkable columns: the runs' own, spec fields by section, results and metrics."""
        menu = QMenu(self)
        shown = set(self.model.columns)
        store = self.model.catalog.store
        spec_keys, summary_keys = run_table.field_keys(store)
        metric_keys = run_table.metric_keys(store)

        def add(m: QMenu, column: str, text: str | None = None) -> None:
            action = m.addAction(text or column_title(column))
            action.setCheckable(True)
            action.setChecked(column in shown)
            action.toggled.connect(lambda on, c=column: self.toggle_column(c, on))

        for column in RUN_COLUMNS:
            add(menu, column, "Star" if column == "starred" else "Id" if column == "id" else None)
        menu.addSeparator()
        hp = menu.addMenu("Hyperparameters")
        sections: dict[str, QMenu] = {}
        for key in spec_keys:
            section, _, rest = key.partition(".")
            if not rest:
                continue
            if section not in sections:
                sections[section] = hp.addMenu(section)
            add(sections[section], f"spec:{key}", rest)
        results = menu.addMenu("Results")
        for key in summary_keys:
            add(results, f"summary:{key}", key)
        final = menu.addMenu("Final metrics")
        best = menu.addMenu("Best metrics")
        for key in metric_keys:
            add(final, f"metric:{key}", key)
            add(best, f"best:{key}", key)
        for m in (results, final, best):
            m.setEnabled(not m.isEmpty())
        menu.addSeparator()
        menu.addAction("Reset columns", lambda: self.set_columns(list(DEFAULT_COLUMNS)))
        return menu

    def toggle_column(self, column: str, on: bool) -> None:
        columns = self.visual_columns()
        if on and column not in columns:
            columns.append(column)
        elif not on and column in columns and len(columns) > 1:
            columns.remove(column)
        self.set_columns(columns)

    def visual_columns(self) -> list[str]:
        """Columns in the order the user sees them (sections can be dragged)."""
        header = self.table.horizontalHeader()
        return [self.model.columns[header.logicalIndex(v)] for v in range(header.count())]

    def set_columns(self, columns: list[str]) -> None:
        selected = self.selected_ids()
        sort_column = self.model.sort_column
        for h in (self.table.horizontalHeader(), self.tree.header()):
            h.blockSignals(True)
        self.model.set_columns(columns)
        for h in (self.table.horizontalHeader(), self.tree.header()):
            for v in range(h.count()):  # back to logical order: the model holds the order now
                if h.logicalIndex(v) != v:
                    h.moveSection(h.visualIndex(v), v)
            h.blockSignals(False)
        self.tree_model.rebuild()
        self._apply_widths()
        if sort_column in columns:
            self.table.horizontalHeader().setSortIndicator(columns.index(sort_column), self.model.sort_order)
        self.select_ids(selected)
        self.columns_changed.emit(list(columns))

    def _section_moved(self, *_args) -> None:
        QTimer.singleShot(0, lambda: self.columns_changed.emit(self.visual_columns()))

    # ------------------------------------------------------------ tree / table

    def set_tree_mode(self, on: bool) -> None:
        selected = self.selected_ids()
        if self.tree_toggle.isChecked() != on:
            self.tree_toggle.setChecked(on)
            return
        self.tree_model.set_active(on)
        self.stack.setCurrentWidget(self.tree if on else self.table)
        self.select_ids(selected)

    @property
    def view(self) -> QAbstractItemView:
        return self.stack.currentWidget()

    # ------------------------------------------------------------ selection

    def selected_ids(self) -> list[int]:
        rows = self.view.selectionModel().selectedRows()
        if self.view is self.table:
            rows = sorted(rows, key=QModelIndex.row)
        return [i.data(RUN_ID_ROLE) for i in rows]

    def current_id(self) -> int | None:
        index = self.view.currentIndex()
        return index.data(RUN_ID_ROLE) if index.isValid() else None

    def select_ids(self, run_ids: list[int], scroll: bool = True) -> None:
        """Select exactly these runs (those on screen) in the table and the tree."""
        self._syncing = True
        try:
            for view in (self.table, self.tree):
                self._select_in(view, run_ids, scroll and view is self.view)
        finally:
            self._syncing = False
        self._emit_selection()

    def _select_in(self, view, run_ids: list[int], scroll: bool) -> None:
        selection = QItemSelection()
        last = view.model().columnCount() - 1
        for rid in run_ids:
            index = self._index_of(view, rid)
            if index.isValid():
                selection.select(index, index.siblingAtColumn(last))
        view.selectionModel().select(
            selection,
            QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
        )
        first = self._index_of(view, run_ids[0]) if run_ids else QModelIndex()
        if first.isValid():
            view.selectionModel().setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
            if scroll:
                view.scrollTo(first)

    def _emit_selection(self) -> None:
        ids = self.selected_ids()
        if ids != self._selected:
            self._selected = ids
            self.selection_changed.emit(ids)

    def _index_of(self, view, run_id: int) -> QModelIndex:
        if view is self.table:
            row = self.model.display_row(run_id)
            return self.model.index(row, 0) if row is not None else QModelIndex()
        return self.tree_model.index_of(run_id)

    def _selection_changed(self, view) -> None:
        if self._syncing or view is not self.view:
            return
        other = self.tree if view is self.table else self.table
        self._syncing = True
        try:
            self._select_in(other, self.selected_ids(), scroll=False)
        finally:
            self._syncing = False
        self._emit_selection()

    def _tree_reset(self) -> None:
        """The tree is rebuilt on every filter or sort: open it and select the same runs."""
        self.tree.expandAll()
        self._syncing = True
        try:
            self._select_in(self.tree, self._selected, scroll=False)
        finally:
            self._syncing = False

    def _after_reset(self) -> None:
        self._update_count()

    # ------------------------------------------------------------ clicks and menus

    def _clicked(self, index: QModelIndex) -> None:
        if self.model.columns[index.column()] == "starred":
            rid = index.data(RUN_ID_ROLE)
            row = self.model.catalog.index[rid]
            self.model.edit(rid, starred=0 if self.model.catalog.rows["starred"][row] else 1)

    def _row_menu(self, view, pos) -> None:
        if not view.indexAt(pos).isValid():
            return
        menu = QMenu(self)
        for action in self.context_actions:
            if action is None:
                menu.addSeparator()
            elif action.isVisible():
                menu.addAction(action)
        menu.exec(view.viewport().mapToGlobal(pos))

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.Find):
            self.search.setFocus()
            self.search.selectAll()
            return
        super().keyPressEvent(event)
