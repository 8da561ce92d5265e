"""The runs table: a lazy `QAbstractTableModel` over the catalog (app/experiments/catalog.py),
its cells read through the column descriptors (app/experiments/columns.py).

The model only adapts: it keeps the order on screen (sorted, filtered, brushed), asks the
catalog for lazy values around the rows a view paints, and caches its answers, because a view
asks ~10 roles per cell per paint and Python answers slowly.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, QTimer, Signal

from app import theme
from app.experiments.catalog import PENDING, RunCatalog, RunFilter
from app.experiments.columns import DEFAULT_COLUMNS, Column, column

RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 1
Role = Qt.ItemDataRole
ROLES = frozenset(
    {
        Role.DisplayRole,
        Role.EditRole,
        Role.TextAlignmentRole,
        Role.ForegroundRole,
        Role.DecorationRole,
        Role.ToolTipRole,
        Role.FontRole,
        RUN_ID_ROLE,
    }
)
SELECTABLE = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
EDITABLE = SELECTABLE | Qt.ItemFlag.ItemIsEditable
ROOT = QModelIndex()  # the invisible root, as a default argument
MISSING = object()
CELL_CACHE = 100_000  # answers kept (a few screens' worth); past this the cache starts over
FETCH_BLOCK = 256  # rows fetched together around a painted one


class RunTableModel(QAbstractTableModel):
    """The runs as rows (sorted, filtered, brushed), the chosen columns as columns.

    `rows_filtered` fires when the set of runs matching the filter changes (the parallel
    coordinates and the scatter show those); a brush narrows the table further but not them.
    """

    rows_filtered = Signal()
    values_fetched = Signal()
    run_edited = Signal(int)

    def __init__(self, catalog: RunCatalog, columns: list[str] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.catalog = catalog
        self.columns: list[str] = list(columns or DEFAULT_COLUMNS)
        self._columns: list[Column] = [column(c) for c in self.columns]
        self.filter = RunFilter()
        self.brush: set[int] | None = None
        self.sort_column: str = "id"
        self.sort_order = Qt.SortOrder.DescendingOrder
        self._sorted: list[int] = list(range(len(catalog)))
        self._filtered: list[int] = list(self._sorted)
        self._rows: list[int] = list(self._sorted)  # catalog rows on screen, in order
        self._position: dict[int, int] | None = None  # catalog row → screen row, built on demand
        self._cells: dict[tuple, object] = {}  # data() answers by (catalog row, column, role)
        self._pending: set[int] = set()
        self._fetch_timer = QTimer(self, singleShot=True, interval=0)
        self._fetch_timer.timeout.connect(self._fetch_pending)
        theme.changed().connect(self._theme_changed)  # colours are cached answers

    # ------------------------------------------------------------ Qt model

    def rowCount(self, parent=ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=ROOT) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: QModelIndex, role=Role.DisplayRole):
        if role not in ROLES or not index.isValid():
            return None
        row, col = self._rows[index.row()], index.column()
        key = (row, self.columns[col], role)
        found = self._cells.get(key, MISSING)
        if found is MISSING:
            found = self.cell(row, self._columns[col], role)
            if found is not None or self._columns[col].value(self.catalog, row) is not PENDING:
                if len(self._cells) > CELL_CACHE:
                    self._cells.clear()
                self._cells[key] = found
        return found

    def headerData(self, section: int, orientation, role=Role.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or section >= len(self.columns):
            return None
        if role == Role.DisplayRole:
            return self._columns[section].title
        if role == Role.ToolTipRole:
            return self._columns[section].tooltip
        return None

    def flags(self, index: QModelIndex):
        if index.isValid() and self._columns[index.column()].editable:
            return EDITABLE
        return SELECTABLE

    def setData(self, index: QModelIndex, value, role=Role.EditRole) -> bool:
        if role != Role.EditRole or self.columns[index.column()] != "name":
            return False
        name = str(value).strip()
        if not name:
            return False
        self.edit(self.run_id(index.row()), name=name)
        return True

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        if 0 <= column < len(self.columns):
            self.set_sort(self.columns[column], order)

    def cell(self, row: int, col: Column, role):
        """What catalog row `row` shows in `col` for `role` (the lineage tree asks here too)."""
        c = self.catalog
        if role == RUN_ID_ROLE:
            return c.ids[row]
        value = col.value(c, row)
        if value is PENDING:
            if role == Role.DisplayRole:
                self._want(row)
            return None
        if role == Role.DisplayRole:
            return col.text(value)
        if role == Role.EditRole:
            return value
        if role == Role.TextAlignmentRole:
            return col.align
        if role == Role.ForegroundRole:
            return col.color(value)
        if role == Role.DecorationRole:
            return col.icon(c, row, value)
        if role == Role.ToolTipRole:
            return col.hint(c, row, value)
        if role == Role.FontRole:
            return col.font(c, row)
        return None

    # ------------------------------------------------------------ lazy fetching

    def _want(self, row: int) -> None:
        self._pending.add(row)
        if not self._fetch_timer.isActive():
            self._fetch_timer.start()

    def _fetch_pending(self) -> None:
        """Fetch the lazy columns for blocks of rows around the ones painted (in screen order)."""
        rows: set[int] = set()
        for r in self._pending:
            if r >= len(self.catalog):
                continue
            at = self.display_row(self.catalog.ids[r])
            if at is None:
                rows.add(r)
                continue
            start = at // FETCH_BLOCK * FETCH_BLOCK
            rows.update(self._rows[start : start + FETCH_BLOCK])
        self._pending.clear()
        ids = [self.catalog.ids[r] for r in sorted(rows)]
        self.catalog.fetch(self.columns, ids)
        self._changed_all()
        self.values_fetched.emit()

    def _theme_changed(self, _theme) -> None:
        self._changed_all()

    def _changed_all(self) -> None:
        self._cells.clear()
        if self._rows and self.columns:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(self.columns) - 1))

    # ------------------------------------------------------------ columns, sorting, filtering

    def column_at(self, section: int) -> Column:
        return self._columns[section]

    def set_columns(self, columns: list[str]) -> None:
        self.beginResetModel()
        self._cells.clear()
        self.columns = list(columns)
        self._columns = [column(c) for c in self.columns]
        self.endResetModel()

    def set_sort(self, key: str, order: Qt.SortOrder) -> None:
        self.sort_column, self.sort_order = key, order
        self._sorted = self._sorted_rows()
        self._apply()

    def _sorted_rows(self) -> list[int]:
        c = self.catalog
        descending = self.sort_order == Qt.SortOrder.DescendingOrder
        if self.sort_column == "id":  # the catalog's own order, newest first
            rows = list(range(len(c)))
            return rows if descending else rows[::-1]
        col = column(self.sort_column)
        c.ensure([col.key])
        return c.order([col.value(c, r) for r in range(len(c))], col.sort_key, descending)

    def set_filter(self, run_filter: RunFilter) -> None:
        self.filter = run_filter
        self._apply()

    def set_brush(self, run_ids: set[int] | None) -> None:
        """Keep only these runs in the table (the parallel coordinates' brushes); None: all."""
        self.brush = None if run_ids is None else set(run_ids)
        self._apply(filter_changed=False)

    def _apply(self, filter_changed: bool = True) -> None:
        c = self.catalog
        self._filtered = c.matching(self._sorted, self.filter)
        rows = self._filtered if self.brush is None else [r for r in self._filtered if c.ids[r] in self.brush]
        self._relayout(rows)
        if filter_changed:
            self.rows_filtered.emit()

    def _relayout(self, rows: list[int]) -> None:
        """Show `rows`, keeping selections and the current index on the runs they were on."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_rows = [self._rows[i.row()] if i.row() < len(self._rows) else None for i in old]
        self._rows = rows
        self._position = position = {r: i for i, r in enumerate(rows)}
        new = [
            self.index(position[r], i.column()) if r in position else QModelIndex()
            for i, r in zip(old, old_rows, strict=True)
        ]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def reload(self) -> None:
        """Re-read the store (runs added, deleted or finished elsewhere)."""
        self.beginResetModel()
        self.catalog.load()
        self._cells.clear()
        self._pending.clear()  # row numbers of the old catalog
        self._sorted = self._sorted_rows()
        self._filtered = self._rows = []
        self._position = None
        self.endResetModel()
        self._apply()

    # ------------------------------------------------------------ runs

    def run_id(self, display_row: int) -> int:
        return self.catalog.ids[self._rows[display_row]]

    def display_row(self, run_id: int) -> int | None:
        if self._position is None:
            self._position = {r: i for i, r in enumerate(self._rows)}
        return self._position.get(self.catalog.index.get(run_id, -1))

    def shown_rows(self) -> list[int]:
        """Catalog rows on screen, in table order."""
        return list(self._rows)

    def shown_ids(self) -> list[int]:
        return [self.catalog.ids[r] for r in self._rows]

    def filtered_rows(self) -> list[int]:
        """Catalog rows matching the filter (before the brush), in table order."""
        return list(self._filtered)

    def sorted_rows(self) -> list[int]:
        return list(self._sorted)

    def edit(self, run_id: int, **fields) -> None:
        self.catalog.update(run_id, **fields)
        self._cells.clear()
        row = self.display_row(run_id)
        if row is not None:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))
        self.run_edited.emit(run_id)

    def refresh_running(self) -> None:
        """Durations and the lazy values of queued/running runs move on; repaint them."""
        live = self.catalog.live_ids()
        if live:
            self.catalog.refresh(live)
            self._changed_all()

    def export_csv(self, path: str | Path) -> None:
        """The rows and columns on screen, raw values (full precision), one row per run."""
        self.catalog.ensure(self.columns)
        with Path(path).open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([c.csv_title for c in self._columns])
            for r in self._rows:
                w.writerow([_csv_value(c.value(self.catalog, r)) for c in self._columns])


def _csv_value(value):
    if value is None or value is PENDING:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
