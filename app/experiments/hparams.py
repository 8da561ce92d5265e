"""The comparison table, runs as columns: hyperparameters (differing ones highlighted, or only
those), the environment fields that differ (from the runs' capsules), final and best metrics
and results, the best run's cell marked in each metric row.

It shows `engine.compare.compare_table` as it is: `trainbench compare` prints the same table.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from app import theme
from app.experiments.colors import run_color, swatch
from app.experiments.table_model import ROOT
from engine import format as fmt
from engine.compare import metric_goal, winners

DIFF_ROLE = Qt.ItemDataRole.UserRole + 10  # True on a hyperparameter that differs between runs
BEST_ROLE = Qt.ItemDataRole.UserRole + 11  # True on a metric cell holding the best value
SECTIONS = (
    ("params", "Hyperparameters"),
    ("environment", "Environment (what differs: versions, host, commit, data)"),
    ("final_metrics", "Final metrics"),
    ("best_metrics", "Best metrics"),
    ("summary", "Results"),
)
DIFF_TINT = {"light": "#fff4d6", "dark": "#4a3f1f"}
BEST_TINT = {"light": "#dcf3e4", "dark": "#1f4a33"}


@dataclass
class _Row:
    section: str
    key: str  # empty for a section heading
    values: list
    differing: bool = False
    winners: tuple[int, ...] = ()
    goal: str | None = None


class CompareTableModel(QAbstractTableModel):
    """Rows: one per field, under section headings; column 0 names the field, then one per run."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table: dict | None = None
        self.only_differences = True
        self._rows: list[_Row] = []

    def set_table(self, table: dict | None) -> None:
        """`table` as compare_table(..., show_all=True) returns it."""
        self.beginResetModel()
        self.table = table
        self._rows = self._build()
        self.endResetModel()

    def set_only_differences(self, on: bool) -> None:
        self.only_differences = on
        self.set_table(self.table)

    @property
    def runs(self) -> list[dict]:
        return self.table["runs"] if self.table else []

    def _build(self) -> list[_Row]:
        t = self.table
        if not t:
            return []
        differing = set(t["differing"])
        rows: list[_Row] = []
        for section, title in SECTIONS:
            fields = t.get(section, {})
            if section == "params" and self.only_differences:
                fields = {k: v for k, v in fields.items() if k in differing}
            if not fields:
                continue
            rows.append(_Row(section, "", [title]))
            winners = t.get("winners", {}).get(section, {})
            for key, values in fields.items():
                goal = t.get("goals", {}).get(key) if section.endswith("metrics") else None
                rows.append(_Row(section, key, values, key in differing, tuple(winners.get(key, ())), goal))
        rows += self._tradeoff_rows(t)
        return rows

    def _tradeoff_rows(self, t: dict) -> list[_Row]:
        """Size, speed and accuracy of pruned/distilled runs and their parents, measured side by
        side (engine.compare.tradeoff), one value per run column (int8 variants left out)."""
        trade = t.get("tradeoff")
        if not trade:
            return []
        where = {c: i for i, c in enumerate(trade["columns"])}
        at = [where.get(f"run {r['id']}") for r in t["runs"]]
        rows = [_Row("tradeoff", "", ["Size, speed and accuracy"])]
        for key, values in trade["rows"].items():
            mine = [values[i] if i is not None else None for i in at]
            goal = metric_goal(key)
            rows.append(_Row("tradeoff", key, mine, winners=tuple(winners(mine, goal)), goal=goal))
        return rows

    def rowCount(self, parent=ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=ROOT) -> int:
        return 0 if parent.isValid() else 1 + len(self.runs)

    def row(self, i: int) -> _Row:
        return self._rows[i]

    def find(self, section: str, key: str) -> int | None:
        for i, r in enumerate(self._rows):
            if r.section == section and r.key == key:
                return i
        return None

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if section == 0:
            return "Field" if role == Qt.ItemDataRole.DisplayRole else None
        run = self.runs[section - 1]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{run['name']}  #{run['id']}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"#{run['id']} {run['name']} ({run.get('kind', '')}, {run['status']})"
        if role == Qt.ItemDataRole.DecorationRole:
            return swatch(run_color(run["id"]))
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        r, col = self._rows[index.row()], index.column()
        heading = not r.key
        t = theme.current()
        if heading:
            if role == Qt.ItemDataRole.DisplayRole and col == 0:
                return r.values[0]
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setBold(True)
                return font
            if role == Qt.ItemDataRole.ForegroundRole:
                return QColor(t.subtext)
            if role == Qt.ItemDataRole.BackgroundRole:
                return QBrush(QColor(t.window))
            return None
        if col == 0:
            if role == Qt.ItemDataRole.DisplayRole:
                return r.key
            if role == Qt.ItemDataRole.ToolTipRole and r.goal:
                return f"{r.key}: {'higher' if r.goal == 'max' else 'lower'} is better"
            if role == Qt.ItemDataRole.FontRole and r.differing and r.section == "params":
                font = QFont()
                font.setBold(True)
                return font
            if role == DIFF_ROLE:
                return r.differing and r.section == "params"
            return None
        i = col - 1
        value = r.values[i]
        best = i in r.winners
        if role == Qt.ItemDataRole.DisplayRole:
            text = _cell_text(r.key, value)
            return f"{text}  ★" if best else text
        if role == Qt.ItemDataRole.TextAlignmentRole:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            return (
                Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft
            ) | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.BackgroundRole:
            if best:
                return QBrush(QColor(BEST_TINT.get(t.name, BEST_TINT["light"])))
            if r.differing and r.section == "params":
                return QBrush(QColor(DIFF_TINT.get(t.name, DIFF_TINT["light"])))
            return None
        if role == Qt.ItemDataRole.FontRole and best:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            if best:
                return f"best {r.key} ({'highest' if r.goal == 'max' else 'lowest'}): {value!r}"
            return repr(value) if value is not None else "not set"
        if role == DIFF_ROLE:
            return r.differing and r.section == "params"
        if role == BEST_ROLE:
            return best
        return None

    def differing_keys(self) -> list[str]:
        """The hyperparameter rows highlighted as differing."""
        return [r.key for r in self._rows if r.key and r.section == "params" and r.differing]

    def best_cells(self, section: str = "final_metrics") -> dict[str, list[int]]:
        """{metric: [run ids holding its best value]} as marked in `section`."""
        return {
            r.key: [self.runs[i]["id"] for i in r.winners]
            for r in self._rows
            if r.key and r.section == section and r.winners
        }

    def export_csv(self, path: str | Path) -> None:
        """The table as shown (only differences or all), raw values; best cells are not marked."""
        with Path(path).open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["section", "field", *(f"#{r['id']} {r['name']}" for r in self.runs)])
            for r in self._rows:
                if r.key:
                    w.writerow([r.section, r.key, *(_csv(v) for v in r.values)])


def _cell_text(key: str, value) -> str:
    if value is None:
        return "—"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return fmt.field(key, value)


def _csv(value):
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value
