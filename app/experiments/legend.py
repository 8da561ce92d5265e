"""The shared legend of a comparison: one chip per run in its colour, wrapping onto more lines
as runs are added. Clicking a chip hides or shows that run in every plot; Ctrl+click shows it
alone."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtWidgets import QApplication, QLayout, QToolButton, QWidget

from app.experiments.colors import run_color, swatch


class FlowLayout(QLayout):
    """Items left to right, wrapping at the right edge (Qt's flow layout example)."""

    def __init__(self, parent=None, spacing: int = 4):
        super().__init__(parent)
        self._items = []
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int):
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int):
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self):
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, apply=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _place(self, rect: QRect, apply: bool) -> int:
        x, y, line = rect.x(), rect.y(), 0
        gap = self.spacing()
        for item in self._items:
            hint = item.sizeHint()
            if x + hint.width() > rect.right() and line > 0:
                x, y, line = rect.x(), y + line + gap, 0
            if apply:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + gap
            line = max(line, hint.height())
        return y + line - rect.y()


class RunLegend(QWidget):
    toggled = Signal(int, bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("runLegend")
        self.flow = FlowLayout(self)
        self.chips: dict[int, QToolButton] = {}

    def set_runs(self, runs: list[dict]) -> None:
        for chip in self.chips.values():
            self.flow.removeWidget(chip)
            chip.deleteLater()
        self.chips.clear()
        for run in runs:
            chip = QToolButton(self, objectName="legendChip", checkable=True, checked=True)
            chip.setText(f"{run['name']}  #{run['id']}")
            chip.setIcon(swatch(run_color(run["id"])))
            chip.setToolTip(
                f"#{run['id']} {run['name']} ({run['status']}): click to hide or show; Ctrl+click to show it alone"
            )
            chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            chip.clicked.connect(lambda on, rid=run["id"]: self._clicked(rid, on))
            self.flow.addWidget(chip)
            self.chips[run["id"]] = chip
        self.updateGeometry()

    def _clicked(self, run_id: int, on: bool) -> None:
        if QApplication.keyboardModifiers() & Qt.KeyboardModifier.ControlModifier:
            for rid, chip in self.chips.items():
                chip.setChecked(rid == run_id)
                self.toggled.emit(rid, rid == run_id)
            return
        self.toggled.emit(run_id, on)

    def visible_ids(self) -> list[int]:
        return [rid for rid, chip in self.chips.items() if chip.isChecked()]
