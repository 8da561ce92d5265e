"""The trials table: one row per trial, its state, values, objective and pruned step."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from app import theme
from engine import format as fmt
from engine.sweep.results import SweepResults, TrialRow

ROOT = QModelIndex()
STATE_COLORS = {"complete": "#2e9e5b", "pruned": "#c28a0c", "failed": "#d04545", "running": "#2f6fde"}


class TrialsModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.results: SweepResults | None = None
        self.rows: list[TrialRow] = []
        self.columns: list[tuple[str, str]] = []  # (key, title)
        self.best: int | None = None  # the best trial's number

    def set_results(self, results: SweepResults) -> None:
        columns = [("number", "Trial"), ("run_id", "Run"), ("state", "State")]
        columns += [(f"param:{p}", p) for p in results.params]
        columns += [("objective", results.metric), ("pruned_step", "Pruned at"), ("steps", "Steps")]
        best = results.best()
        if columns != self.columns or len(results.trials) != len(self.rows):
            self.beginResetModel()
            self.results, self.rows, self.columns = results, list(results.trials), columns
            self.best = best.number if best else None
            self.endResetModel()
            return
        self.results, self.rows = results, list(results.trials)
        self.best = best.number if best else None
        if self.rows:  # the same trials, moving on: repaint in place (keeps selection and scroll)
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, len(self.columns) - 1))

    def rowCount(self, parent=ROOT) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=ROOT) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section][1]
        return None

    def value(self, row: int, key: str):
        t = self.rows[row]
        if key.startswith("param:"):
            return t.params.get(key[6:])
        if key == "steps":
            return f"{t.steps}/{t.total_steps}" if t.steps is not None and t.total_steps else None
        return getattr(t, key)

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        key = self.columns[index.column()][0]
        t = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            v = self.value(index.row(), key)
            if key == "number" and t.number == self.best:
                return f"★ {v}"
            return fmt.value(v) if isinstance(v, float) else "" if v is None else str(v)
        if role == Qt.ItemDataRole.ForegroundRole and key == "state":
            return QColor(STATE_COLORS.get(t.state, theme.current().subtext))
        if role == Qt.ItemDataRole.FontRole and t.number == self.best:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and key not in ("state",):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def run_id(self, row: int) -> int:
        return self.rows[row].run_id
