"""The op palette, generated from the op registry: categories, search, drag onto the canvas,
double-click (or Enter) to add; and the quick-add popup that opens at the cursor.

Adding an op to `engine.graph.ops` puts it here with its category and help; nothing to edit.
"""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import icons, richtext, theme
from engine.graph.ops import OPS, OpDef, categories

OP_MIME = "application/x-trainbench-op"
_OP_ROLE = Qt.ItemDataRole.UserRole


def swatch(category: str, size: int = 12) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(theme.category_color(category))
    painter.drawRoundedRect(1, 1, size - 2, size - 2, 3, 3)
    painter.end()
    return QIcon(pixmap)


def matches(op: OpDef, text: str) -> bool:
    text = text.strip().lower()
    return not text or text in op.name.lower() or text in op.category.lower() or text in op.help.lower()


def _tooltip(op: OpDef) -> str:
    ins = "any number of" if op.variadic else str(op.max_inputs)
    params = "".join(f"<br>• <b>{f.name}</b>: {richtext.html(f.help)}" for f in op.params)
    head = f"<b>{op.name}</b> <i>({op.category}, {ins} input{'s' if ins != '1' else ''})</i>"
    return f"{head}<br>{richtext.html(op.help)}{params}"


class _OpTree(QTreeWidget):
    def mimeTypes(self) -> list[str]:
        return [OP_MIME]

    def mimeData(self, items) -> QMimeData:
        mime = QMimeData()
        ops = [i.data(0, _OP_ROLE) for i in items if i.data(0, _OP_ROLE)]
        if ops:
            mime.setData(OP_MIME, ops[0].encode())
        return mime


class PaletteWidget(QWidget):
    op_activated = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("palette")
        self.search = QLineEdit(placeholderText="Search layers…", clearButtonEnabled=True)
        self._search_icon = self.search.addAction(
            icons.icon("search"), QLineEdit.ActionPosition.LeadingPosition
        )
        self.tree = _OpTree()
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.setIndentation(10)
        self.tree.setIconSize(QSize(12, 12))
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setUniformRowHeights(True)
        self.items: dict[str, QTreeWidgetItem] = {}
        for category, ops in categories().items():
            head = QTreeWidgetItem(self.tree, [category])
            head.setIcon(0, swatch(category))
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = head.font(0)
            font.setBold(True)
            head.setFont(0, font)
            for op in ops:
                item = QTreeWidgetItem(head, [op.name])
                item.setData(0, _OP_ROLE, op.name)
                item.setToolTip(0, _tooltip(op))
                item.setFlags(
                    Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
                )
                self.items[op.name] = item
        self.tree.expandAll()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.search.textChanged.connect(self.filter)
        self.search.returnPressed.connect(self._activate_first)
        self.tree.itemActivated.connect(self._activated)

    def refresh_icons(self) -> None:
        self._search_icon.setIcon(icons.icon("search"))

    def filter(self, text: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            head = self.tree.topLevelItem(i)
            visible = 0
            for j in range(head.childCount()):
                child = head.child(j)
                hit = matches(OPS[child.data(0, _OP_ROLE)], text)
                child.setHidden(not hit)
                visible += hit
            head.setHidden(visible == 0)
            head.setExpanded(True)

    def visible_ops(self) -> list[str]:
        return [
            name for name, item in self.items.items() if not item.isHidden() and not item.parent().isHidden()
        ]

    def _activate_first(self) -> None:
        ops = self.visible_ops()
        if ops:
            self.op_activated.emit(ops[0])

    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        op = item.data(0, _OP_ROLE)
        if op:
            self.op_activated.emit(op)


class QuickAdd(QFrame):
    """A popup at the cursor: type a few letters, Enter adds the highlighted op."""

    chosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("quickAdd")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.edit = QLineEdit(placeholderText="Add layer…")
        self.list = QListWidget()
        self.list.setIconSize(QSize(12, 12))
        self.list.setUniformItemSizes(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.edit)
        layout.addWidget(self.list)
        self.resize(260, 320)
        self.edit.textChanged.connect(self._fill)
        self.edit.returnPressed.connect(self._choose)
        self.list.itemActivated.connect(lambda _item: self._choose())
        self.edit.installEventFilter(self)
        self._fill("")

    def popup(self, at: QPoint) -> None:
        self.edit.clear()
        self._fill("")
        self.move(at)
        self.show()
        self.edit.setFocus()

    def _fill(self, text: str) -> None:
        self.list.clear()
        needle = text.strip().lower()
        ops = [op for op in OPS.values() if matches(op, text)]
        # Names that start with what was typed first, then the rest in registry order.
        ops.sort(key=lambda op: (not op.name.lower().startswith(needle), needle not in op.name.lower()))
        for op in ops:
            item = QListWidgetItem(swatch(op.category), f"{op.name}")
            item.setData(_OP_ROLE, op.name)
            item.setToolTip(richtext.tooltip(op.help))
            self.list.addItem(item)
        if ops:
            self.list.setCurrentRow(0)

    def _choose(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.hide()
            self.chosen.emit(item.data(_OP_ROLE))

    def eventFilter(self, obj, event) -> bool:
        if event.type() == event.Type.KeyPress and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            step = -1 if event.key() == Qt.Key.Key_Up else 1
            row = max(0, min(self.list.count() - 1, self.list.currentRow() + step))
            self.list.setCurrentRow(row)
            return True
        return super().eventFilter(obj, event)
