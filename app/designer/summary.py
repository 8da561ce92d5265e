"""The model summary: totals (parameters, FLOPs, input and output shapes), every problem the
engine reports, and a per-node table in execution order. Clicking a problem or a row selects
that node on the canvas."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.designer.document import GraphDocument
from engine import format as fmt
from engine.graph import Analysis

_NODE_ROLE = Qt.ItemDataRole.UserRole


class NodeTable(QAbstractTableModel):
    """One row per node in execution order. Cells are formatted when the view asks for them
    (only the visible rows), so a new analysis of a 500-node graph costs one model reset."""

    COLUMNS = ("Node", "Op", "Output", "Params", "FLOPs")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.analysis: Analysis | None = None
        self.order: list[str] = []
        self.invalid: set[str] = set()

    def set_analysis(self, analysis: Analysis) -> None:
        self.beginResetModel()
        self.analysis = analysis
        self.order = list(analysis.order)
        self.invalid = {n.split("/", 1)[0] for n, _ in analysis.problems if n}
        self.endResetModel()

    def node_at(self, row: int) -> str:
        return self.order[row]

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.order)

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        return len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        node = self.order[index.row()]
        info = self.analysis.nodes[node]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return node
            if col == 1:
                return info.op
            if col == 2:
                return str(info.out) if info.out else "?"
            return f"{info.n_params:,}" if col == 3 else fmt.count(info.flops)
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and node in self.invalid:
            return QColor(theme.current().error)
        if role == Qt.ItemDataRole.ToolTipRole and info.error:
            return info.error
        return None


class SummaryPanel(QWidget):
    node_selected = Signal(str)

    def __init__(self, doc: GraphDocument, parent=None):
        super().__init__(parent)
        self.setObjectName("summary")
        self.doc = doc
        self.status = QLabel(objectName="summaryStatus")
        self.totals = QLabel(objectName="summaryTotals")
        self.totals.setTextFormat(Qt.TextFormat.RichText)
        self._problems: list | None = None
        self.problems = QListWidget(objectName="problemList")
        self.problems.setWordWrap(True)
        self.problems.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.problems.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.problems.itemClicked.connect(self._problem_clicked)
        self.problems.itemActivated.connect(self._problem_clicked)

        self.model = NodeTable(self)
        self.table = QTableView(objectName="nodeTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setFrameShape(QFrame.Shape.NoFrame)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setHighlightSections(False)
        self.table.clicked.connect(lambda index: self.node_selected.emit(self.model.node_at(index.row())))

        left = QVBoxLayout()
        left.setSpacing(6)
        left.addWidget(self.status)
        left.addWidget(self.totals)
        left.addWidget(self.problems, 1)
        left.addStretch(0)  # with no problems listed, the totals stay at the top of a taller panel
        left_box = QWidget()
        left_box.setLayout(left)
        left_box.setMinimumWidth(260)
        left_box.setMaximumWidth(420)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(10)
        layout.addWidget(left_box, 2)
        layout.addWidget(self.table, 3)
        doc.analyzed.connect(self.show_analysis)
        if doc.analysis is not None:
            self.show_analysis(doc.analysis)

    def show_analysis(self, analysis: Analysis) -> None:
        n = len(analysis.problems)
        status = "✔  Valid model" if n == 0 else f"✖  {n} problem{'s' if n != 1 else ''}"
        if status != self.status.text():
            self.status.setText(status)
            self.status.setProperty("state", "ok" if n == 0 else "error")
            self.status.style().unpolish(self.status)
            self.status.style().polish(self.status)
        rows = [
            ("Input", str(analysis.input_type) if analysis.input_type else "?"),
            ("Output", str(analysis.output_type) if analysis.output_type else "?"),
            ("Parameters", f"{analysis.total_params:,}  ({fmt.count(analysis.total_params * 4)}B fp32)"),
            ("FLOPs / sample", fmt.count(analysis.total_flops)),
            ("Nodes", str(len(analysis.graph.nodes))),
        ]
        totals = (
            "<table cellspacing='0' cellpadding='1'>"
            + "".join(f"<tr><td style='padding-right:14px'>{k}</td><td><b>{v}</b></td></tr>" for k, v in rows)
            + "</table>"
        )
        if totals != self.totals.text():
            self.totals.setText(totals)
        if analysis.problems != self._problems:
            self._problems = list(analysis.problems)
            self.problems.clear()
            for node, msg in analysis.problems:
                item = QListWidgetItem(f"{node}: {msg}" if node else msg)
                item.setData(_NODE_ROLE, node.split("/", 1)[0])
                item.setForeground(QColor(theme.current().error))
                self.problems.addItem(item)
            self.problems.setVisible(n > 0)
        self.model.set_analysis(analysis)

    def _problem_clicked(self, item: QListWidgetItem) -> None:
        node = item.data(_NODE_ROLE)
        if node:
            self.node_selected.emit(node)
