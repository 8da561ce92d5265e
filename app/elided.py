"""A one-line label that gives up width gracefully, for titles and status lines beside buttons:
its text is elided to the room it gets instead of widening (or cutting off) the window."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QLabel, QSizePolicy


class ElidedLabel(QLabel):
    """One line of text elided (at `mode`) to the room it gets; the full text is its size hint,
    so it shows whole where there is room. The owner puts the full text in the tooltip."""

    clicked = Signal()

    def __init__(self, mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode
        self.full = ""
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str) -> None:
        if text != self.full:
            self.full = text
            self.updateGeometry()  # the size hint is the full text's: a layout must ask again
        self._elide()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self.full, self.mode, max(self.width(), 0))
        if shown != self.text():
            self.setText(shown)

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        hint.setWidth(self.fontMetrics().horizontalAdvance(self.full) + 8)
        return hint

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        hint.setWidth(min(hint.width(), self.fontMetrics().horizontalAdvance("M…") + 8))
        return hint

    def mousePressEvent(self, event) -> None:
        super().mousePressEvent(event)
        self.clicked.emit()
