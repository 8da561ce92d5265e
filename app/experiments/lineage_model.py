"""The runs table as a lineage tree (train → prune → distill): same columns, same order, same
cells, arranged by the catalog's `forest`."""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, Qt
from PySide6.QtGui import QColor, QFont

from app import theme
from app.experiments.catalog import Forest
from app.experiments.table_model import ROOT, RunTableModel


class LineageModel(QAbstractItemModel):
    """A run matching the table's filter is shown under its ancestors even when they do not
    match; those appear greyed, for context. Internal ids are run ids.

    Built only while the tree is shown (`set_active`), so the table alone stays O(visible).
    """

    def __init__(self, table: RunTableModel, parent: QObject | None = None):
        super().__init__(parent)
        self.table = table
        self.forest = Forest()
        table.layoutChanged.connect(self.rebuild)
        table.modelReset.connect(self.rebuild)
        table.dataChanged.connect(self._forward_changed)
        table.columnsInserted.connect(self.rebuild)
        self.active = False

    def set_active(self, on: bool) -> None:
        self.active = on
        self.rebuild()

    def rebuild(self) -> None:
        self.beginResetModel()
        t = self.table
        self.forest = t.catalog.forest(t.shown_rows(), t.sorted_rows()) if self.active else Forest()
        self.endResetModel()

    def _forward_changed(self, *_args) -> None:
        roots = self.forest.children.get(0)
        if roots:
            self.dataChanged.emit(self.index(0, 0), self.index(len(roots) - 1, self.columnCount() - 1))

    def index(self, row: int, column: int, parent=ROOT) -> QModelIndex:
        pid = parent.internalId() if parent.isValid() else 0
        kids = self.forest.children.get(pid, [])
        if 0 <= row < len(kids) and 0 <= column < len(self.table.columns):
            return self.createIndex(row, column, kids[row])
        return QModelIndex()

    def parent(self, index: QModelIndex | None = None):
        if index is None:  # QObject.parent()
            return super().parent()
        if not index.isValid():
            return QModelIndex()
        pid = self.forest.parent.get(index.internalId(), 0)
        if pid == 0:
            return QModelIndex()
        return self.createIndex(self.forest.position[pid], 0, pid)

    def rowCount(self, parent=ROOT) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self.forest.children.get(parent.internalId() if parent.isValid() else 0, []))

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
        if rid in self.forest.context:
            if role == Qt.ItemDataRole.ForegroundRole:
                return QColor(theme.current().subtext)
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setItalic(True)
                return font
        t = self.table
        return t.cell(t.catalog.index[rid], t.column_at(index.column()), role)

    def setData(self, index: QModelIndex, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or self.table.columns[index.column()] != "name":
            return False
        name = str(value).strip()
        if name:
            self.table.edit(index.internalId(), name=name)
        return bool(name)

    def index_of(self, run_id: int, column: int = 0) -> QModelIndex:
        if run_id not in self.forest.position:
            return QModelIndex()
        return self.createIndex(self.forest.position[run_id], column, run_id)

    def is_context(self, run_id: int) -> bool:
        return run_id in self.forest.context
