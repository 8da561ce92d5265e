"""The views under the runs table (parallel coordinates, scatter) redraw only while visible, and
only after the table above has painted: reading a column for 10,000 runs must not delay it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer

DEFER_MS = 400  # built this long after first shown: the runs table paints first


class DeferredRows:
    """Mixin for a QWidget view with `catalog`, `_dirty` and `rebuild()` (put it first in the bases)."""

    def set_rows(self, rows: list[int]) -> None:
        """The runs to draw (catalog rows: those matching the table's filter)."""
        self.rows = list(rows)
        self.ids = np.array([self.catalog.ids[r] for r in self.rows], dtype=np.int64)
        self._dirty = True
        if self.isVisible():
            self.rebuild()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._dirty:  # after the event: the table above paints first
            QTimer.singleShot(DEFER_MS, self._rebuild_if_dirty)

    def _rebuild_if_dirty(self) -> None:
        if self._dirty and self.isVisible():
            self.rebuild()
