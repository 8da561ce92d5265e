"""The runs table: a lazy `QAbstractTableModel` over the run store, and the lineage tree over
the same data.

`RunCatalog` holds what the table knows: every run's own columns (id, name, status...: one
query, ~30 ms for 10,000 runs) and, per spec, summary or metric column, the values fetched so
far. Those are fetched lazily, a block of rows around the ones a view paints, because reading a
spec field means reading every spec (~70 ms per 10,000); sorting, exporting or plotting by such
a column fetches it whole. Sorting and filtering happen here on the cached values, not in a
QSortFilterProxyModel: a Python `lessThan` called ~130,000 times to sort 10,000 rows takes about
a second.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QAbstractItemModel, QAbstractTableModel, QModelIndex, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont

from app import theme
from app.designer import display
from app.experiments.colors import run_color, swatch
from engine import run_table
from engine.compare import metric_goal

RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 1
DISPLAY = Qt.ItemDataRole.DisplayRole
ROLES = frozenset(
    {
        DISPLAY,
        Qt.ItemDataRole.EditRole,
        Qt.ItemDataRole.TextAlignmentRole,
        Qt.ItemDataRole.ForegroundRole,
        Qt.ItemDataRole.DecorationRole,
        Qt.ItemDataRole.ToolTipRole,
        Qt.ItemDataRole.FontRole,
        RUN_ID_ROLE,
    }
)
SELECTABLE = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
EDITABLE = SELECTABLE | Qt.ItemFlag.ItemIsEditable
ROOT = QModelIndex()  # the invisible root, as a default argument
PENDING = object()  # a lazy value not fetched yet
MISSING = object()
CELL_CACHE = 100_000  # answers kept (a few screens' worth); past this the cache starts over
FETCH_BLOCK = 256  # rows fetched together around a painted one

BASE_TITLES = {
    "starred": "★",
    "id": "#",
    "name": "Name",
    "kind": "Kind",
    "status": "Status",
    "parent_id": "Parent",
    "created_at": "Created",
    "duration": "Duration",
    "tags": "Tags",
    "notes": "Notes",
}
DEFAULT_COLUMNS = (
    "starred", "id", "name", "kind", "status", "parent_id", "created_at", "duration",
    "spec:optim.lr", "spec:train.batch_size", "summary:params", "metric:val/accuracy", "metric:val/loss", "tags",
)  # fmt: skip
STATUS_COLORS = {
    "completed": "#2e9e5b",
    "running": "#2f6fde",
    "queued": "#8a94a3",
    "failed": "#d93636",
    "crashed": "#c2410c",
    "stopped": "#a16207",
}
_COUNT_FIELDS = ("params", "flops", "bytes", "size")  # shown as 1.2k, 3.4M
#: spec leaves that mean nothing without their section (optim.name vs schedule.name)
_GENERIC_LEAVES = {
    "name",
    "kind",
    "path",
    "source",
    "method",
    "target",
    "scope",
    "ratio",
    "steps",
    "every",
    "keep",
    "seed",
}


def column_title(column: str) -> str:
    prefix, name = run_table.split_column(column)
    if prefix == "run":
        return BASE_TITLES.get(name, name)
    if prefix == "best":
        return f"{name} (best)"
    if prefix == "spec":
        section, _, leaf = name.rpartition(".")
        return name if not section or leaf in _GENERIC_LEAVES else leaf
    return name


def column_tooltip(column: str) -> str:
    prefix, name = run_table.split_column(column)
    return {
        "spec": f"Spec field {name}",
        "summary": f"Result {name}",
        "metric": f"Last value of {name}",
        "best": f"Best value of {name} ({'highest' if metric_goal(name) == 'max' else 'lowest'})",
    }.get(prefix, BASE_TITLES.get(name, name))


def is_lazy(column: str) -> bool:
    return run_table.split_column(column)[0] != "run"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_value(column: str, value) -> str:
    """How a cell reads on screen (the CSV export writes the raw value)."""
    if value is None or value is PENDING:
        return ""
    name = run_table.split_column(column)[1]
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and any(w in name for w in _COUNT_FIELDS):
        return display.count(value)
    if isinstance(value, float):
        if any(w in name for w in _COUNT_FIELDS) and value.is_integer():
            return display.count(int(value))
        return f"{value:.4g}"
    return str(value)


def _sort_key(value):
    """Numbers before text, each in natural order (missing values are kept apart by the caller)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value).lower())


@dataclass
class RunFilter:
    """What the user narrowed the table to; every set condition must hold."""

    text: str = ""
    statuses: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    tag: str = ""
    starred_only: bool = False
    words: list[str] = field(init=False, repr=False, default_factory=list)

    ids: set[int] = field(init=False, repr=False, default_factory=set)

    def __post_init__(self):
        words = self.text.lower().split()
        # "#12" means run 12 exactly ("#12 #15": either); other words must all appear
        self.ids = {int(w[1:]) for w in words if w.startswith("#") and w[1:].isdigit()}
        self.words = [w for w in words if not (w.startswith("#") and w[1:].isdigit())]

    @property
    def active(self) -> bool:
        return bool(self.words or self.ids or self.statuses or self.kinds or self.tag or self.starred_only)


class RunCatalog:
    """Every run's own columns plus the lazy columns fetched so far; no Qt. Row numbers are
    positions in `ids` (newest run first) and change only on `load`."""

    def __init__(self, store):
        self.store = store
        self.rows: dict[str, list] = {}
        self.ids: list[int] = []
        self.index: dict[int, int] = {}
        self._values: dict[str, dict[int, object]] = {}
        self._complete: set[str] = set()
        self._tags: list[list[str] | None] = []
        self.load()

    def load(self) -> None:
        self.rows = run_table.run_rows(self.store)
        self.ids = self.rows["id"]
        self.index = {rid: i for i, rid in enumerate(self.ids)}
        self._values.clear()
        self._complete.clear()
        self._tags = [None] * len(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, column: str, row: int):
        """A cell's raw value, or PENDING for a lazy one not fetched yet."""
        if column == "duration":
            start, end = self.rows["started_at"][row], self.rows["ended_at"][row]
            if start is None:
                return None
            return (end if end is not None else time.time()) - start
        if column == "tags":
            return ", ".join(self.tags(row))
        if column in self.rows:
            return self.rows[column][row]
        return self._values.get(column, {}).get(self.ids[row], PENDING)

    def tags(self, row: int) -> list[str]:
        if self._tags[row] is None:
            raw = self.rows["tags"][row]
            self._tags[row] = json.loads(raw) if raw and raw != "[]" else []
        return self._tags[row]

    def all_tags(self) -> list[str]:
        return run_table.all_tags(self.store)

    def fetch(self, columns: list[str], ids: list[int]) -> None:
        columns = [c for c in columns if is_lazy(c)]
        if not columns or not ids:
            return
        fetched = run_table.column_values(self.store, columns, ids)
        for column in columns:
            have = fetched.get(column, {})
            values = self._values.setdefault(column, {})
            for rid in ids:
                values[rid] = have.get(rid)

    def ensure(self, columns: list[str]) -> None:
        """Fetch lazy columns whole (before sorting, exporting or plotting by them)."""
        missing = [c for c in columns if is_lazy(c) and c not in self._complete]
        if missing:
            fetched = run_table.column_values(self.store, missing)
            for column in missing:
                have = fetched.get(column, {})
                self._values[column] = {rid: have.get(rid) for rid in self.ids}
                self._complete.add(column)

    def values(self, column: str, rows: list[int] | None = None) -> list:
        """A column's values for `rows` (default: all), fetched whole first if it is lazy."""
        self.ensure([column])
        rows = range(len(self)) if rows is None else rows
        return [self.get(column, r) for r in rows]

    def refresh(self, ids: list[int]) -> None:
        """Re-read the lazy values of some runs (those still running)."""
        for column in list(self._values):
            self.fetch([column], ids)

    def update(self, run_id: int, **fields) -> None:
        """Write user edits (name, notes, tags, starred) to the store and to the cache."""
        self.store.set_fields(run_id, **fields)
        row = self.index[run_id]
        for key, value in fields.items():
            if key == "tags":
                self._tags[row] = list(value)
                value = json.dumps(list(value))
            self.rows[key][row] = value


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

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        # A view asks ~10 roles per cell per paint and Python answers slowly, so the answers
        # are kept until the data changes: a page repaints from dict lookups.
        if role not in ROLES or not index.isValid():
            return None
        row, column = self._rows[index.row()], self.columns[index.column()]
        key = (row, column, role)
        found = self._cells.get(key, MISSING)
        if found is MISSING:
            found = self.cell(row, column, role)
            if found is not None or self.catalog.get(column, row) is not PENDING:
                if len(self._cells) > CELL_CACHE:
                    self._cells.clear()
                self._cells[key] = found
        return found

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or section >= len(self.columns):
            return None
        column = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column_title(column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return column_tooltip(column)
        return None

    def flags(self, index: QModelIndex):
        if index.isValid() and self.columns[index.column()] == "name":
            return EDITABLE
        return SELECTABLE

    def setData(self, index: QModelIndex, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or self.columns[index.column()] != "name":
            return False
        name = str(value).strip()
        if not name:
            return False
        self.edit(self.run_id(index.row()), name=name)
        return True

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        if 0 <= column < len(self.columns):
            self.set_sort(self.columns[column], order)

    # ------------------------------------------------------------ cells

    def cell(self, row: int, column: str, role):
        """Data of catalog row `row` in `column` for `role` (the lineage tree asks here too)."""
        c = self.catalog
        if role == RUN_ID_ROLE:
            return c.ids[row]
        value = c.get(column, row)
        if value is PENDING:
            if role == Qt.ItemDataRole.DisplayRole:
                self._want(row)
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if role == Qt.ItemDataRole.EditRole:
                return value
            if column == "starred":
                return "★" if value else ""
            if column == "parent_id":
                return f"#{value}" if value else ""
            if column == "created_at":
                return time.strftime("%Y-%m-%d %H:%M", time.localtime(value)) if value else ""
            if column == "duration":
                return format_duration(value)
            if column == "notes":
                return (value or "").strip().split("\n", 1)[0][:80]
            return format_value(column, value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column == "starred":
                return Qt.AlignmentFlag.AlignCenter
            numeric = is_lazy(column) or column in ("id", "duration")
            return (
                Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft
            ) | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == "status":
                return QColor(STATUS_COLORS.get(value, theme.current().text))
            if column == "starred":
                return QColor("#e0a100")
            if column in ("parent_id", "created_at", "duration", "id"):
                return QColor(theme.current().subtext)
            return None
        if role == Qt.ItemDataRole.DecorationRole:
            if column == "name":
                return swatch(run_color(c.ids[row]))
            if column == "status":
                return swatch(STATUS_COLORS.get(value, "#8a94a3"), round_=True)
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == "notes" and value:
                return value
            if column == "created_at" and value:
                return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
            if column == "starred":
                return "Starred (click to unstar)" if value else "Click to star"
            if column == "name":
                notes = (c.rows["notes"][row] or "").strip()
                return f"#{c.ids[row]} {value}" + (f"\n\n{notes[:300]}" if notes else "")
            if isinstance(value, float):
                return repr(value)
            return None
        if role == Qt.ItemDataRole.FontRole and column == "name" and c.rows["starred"][row]:
            font = QFont()
            font.setBold(True)
            return font
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
        self.catalog.fetch([c for c in self.columns if is_lazy(c)], ids)
        self._changed_all()
        self.values_fetched.emit()

    def _theme_changed(self, _theme) -> None:
        self._changed_all()

    def _changed_all(self) -> None:
        self._cells.clear()
        if self._rows and self.columns:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(self.columns) - 1))

    # ------------------------------------------------------------ columns, sorting, filtering

    def set_columns(self, columns: list[str]) -> None:
        self.beginResetModel()
        self._cells.clear()
        self.columns = list(columns)
        self.endResetModel()

    def set_sort(self, column: str, order: Qt.SortOrder) -> None:
        self.sort_column, self.sort_order = column, order
        self._sorted = self._sorted_rows()
        self._apply()

    def _sorted_rows(self) -> list[int]:
        column, c = self.sort_column, self.catalog
        descending = self.sort_order == Qt.SortOrder.DescendingOrder
        if column == "id":
            rows = list(range(len(c)))
            return rows if descending else rows[::-1]
        values = c.values(column)
        present = [r for r, v in enumerate(values) if v is not None and v != ""]
        missing = [r for r, v in enumerate(values) if v is None or v == ""]
        keys = [_sort_key(v) for v in values]
        present.sort(key=keys.__getitem__, reverse=descending)
        return present + missing  # missing values last either way

    def set_filter(self, run_filter: RunFilter) -> None:
        self.filter = run_filter
        self._apply()

    def set_brush(self, run_ids: set[int] | None) -> None:
        """Keep only these runs in the table (the parallel coordinates' brushes); None: all."""
        self.brush = None if run_ids is None else set(run_ids)
        self._apply(filter_changed=False)

    def _apply(self, filter_changed: bool = True) -> None:
        f, c = self.filter, self.catalog
        if f.active:
            rows = c.rows
            if f.tag:
                tag = f.tag.lower()
            keep = []
            for r in self._sorted:
                if f.statuses and rows["status"][r] not in f.statuses:
                    continue
                if f.kinds and rows["kind"][r] not in f.kinds:
                    continue
                if f.starred_only and not rows["starred"][r]:
                    continue
                if f.tag and tag not in (t.lower() for t in c.tags(r)):
                    continue
                if f.ids and rows["id"][r] not in f.ids:
                    continue
                if f.words:
                    hay = f"{rows['name'][r]} {rows['tags'][r]} {rows['notes'][r] or ''}".lower()
                    if not all(w in hay for w in f.words):
                        continue
                keep.append(r)
            self._filtered = keep
        else:
            self._filtered = list(self._sorted)
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
        lazy_columns = [c for c in self.catalog._complete]  # noqa: SLF001 - keep what was whole
        self.beginResetModel()
        self.catalog.load()
        self._cells.clear()
        self._pending.clear()  # row numbers of the old catalog
        self.catalog.ensure(lazy_columns)
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
        live = [
            rid
            for rid, s in zip(self.catalog.ids, self.catalog.rows["status"], strict=True)
            if s in ("queued", "running")
        ]
        if live:
            self.catalog.refresh(live)
            self._changed_all()

    def export_csv(self, path: str | Path) -> None:
        """The rows and columns on screen, raw values (full precision), one row per run."""
        self.catalog.ensure(self.columns)
        with Path(path).open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([c if is_lazy(c) else c.removesuffix("_id").removesuffix("_at") for c in self.columns])
            for r in self._rows:
                w.writerow([_csv_value(self.catalog.get(c, r)) for c in self.columns])


def _csv_value(value):
    if value is None or value is PENDING:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class LineageModel(QAbstractItemModel):
    """The table's runs as a lineage tree (train → prune → distill), same columns and order.

    A run matching the filter is shown under its ancestors even when they do not match; those
    appear greyed, for context. Internal ids are run ids.
    """

    def __init__(self, table: RunTableModel, parent: QObject | None = None):
        super().__init__(parent)
        self.table = table
        self._children: dict[int, list[int]] = {}  # parent run id (0: the root) → run ids
        self._parent: dict[int, int] = {}
        self._row: dict[int, int] = {}
        self._context: set[int] = set()
        table.layoutChanged.connect(self.rebuild)
        table.modelReset.connect(self.rebuild)
        table.dataChanged.connect(self._forward_changed)
        table.columnsInserted.connect(self.rebuild)
        self.active = False  # built only while the tree is shown: the table alone stays O(visible)
        self.rebuild()

    def set_active(self, on: bool) -> None:
        self.active = on
        self.rebuild()

    def rebuild(self) -> None:
        self.beginResetModel()
        self._children, self._parent, self._row, self._context = {}, {}, {}, set()
        if not self.active:
            self.endResetModel()
            return
        c = self.table.catalog
        shown = [c.ids[r] for r in self.table._rows]  # noqa: SLF001
        shown_set = set(shown)
        tree: set[int] = set(shown)
        for rid in shown:  # pull in ancestors for context
            pid = c.rows["parent_id"][c.index[rid]]
            while pid is not None and pid in c.index and pid not in tree:
                tree.add(pid)
                pid = c.rows["parent_id"][c.index[pid]]
        self._context = tree - shown_set
        order = {c.ids[r]: i for i, r in enumerate(self.table.sorted_rows())}
        self._children, self._parent, self._row = {}, {}, {}
        for rid in sorted(tree, key=order.__getitem__):
            pid = c.rows["parent_id"][c.index[rid]]
            pid = pid if pid in tree else 0
            siblings = self._children.setdefault(pid, [])
            self._row[rid] = len(siblings)
            siblings.append(rid)
            self._parent[rid] = pid
        self.endResetModel()

    def _forward_changed(self, *_args) -> None:
        if self._children.get(0):
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._children[0]) - 1, self.columnCount() - 1)
            )

    def index(self, row: int, column: int, parent=ROOT) -> QModelIndex:
        pid = parent.internalId() if parent.isValid() else 0
        kids = self._children.get(pid, [])
        if 0 <= row < len(kids) and 0 <= column < len(self.table.columns):
            return self.createIndex(row, column, kids[row])
        return QModelIndex()

    def parent(self, index: QModelIndex | None = None):
        if index is None:  # QObject.parent()
            return super().parent()
        if not index.isValid():
            return QModelIndex()
        pid = self._parent.get(index.internalId(), 0)
        if pid == 0:
            return QModelIndex()
        return self.createIndex(self._row[pid], 0, pid)

    def rowCount(self, parent=ROOT) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self._children.get(parent.internalId() if parent.isValid() else 0, []))

    def columnCount(self, parent=ROOT) -> int:
        return len(self.table.columns)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        return self.table.headerData(section, orientation, role)

    def flags(self, index: QModelIndex):
        return self.table.flags(index) if index.isValid() else Qt.ItemFlag.NoItemFlags

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        rid = index.internalId()
        row = self.table.catalog.index[rid]
        if rid in self._context:
            if role == Qt.ItemDataRole.ForegroundRole:
                return QColor(theme.current().subtext)
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setItalic(True)
                return font
        return self.table.cell(row, self.table.columns[index.column()], role)

    def setData(self, index: QModelIndex, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or self.table.columns[index.column()] != "name":
            return False
        name = str(value).strip()
        if name:
            self.table.edit(index.internalId(), name=name)
        return bool(name)

    def index_of(self, run_id: int, column: int = 0) -> QModelIndex:
        if run_id not in self._row:
            return QModelIndex()
        return self.createIndex(self._row[run_id], column, run_id)

    def is_context(self, run_id: int) -> bool:
        return run_id in self._context
