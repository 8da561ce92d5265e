"""The views under the runs table (parallel coordinates, scatter) redraw only while visible, and
only after the table above has painted: reading a column for 10,000 runs must not delay it.

While hidden they may fall behind the table: `set_rows` leaves the view's drawn columns for
the old rows until the next show rebuilds them. Anything that redraws from those columns (a
theme change) must therefore wait for the view to be shown and rebuilt, or it draws the new
rows against the old columns.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer

DEFER_MS = 400  # built this long after first shown: the runs table paints first


class DeferredRows:
    """Mixin for a QWidget view with `catalog`, `_dirty`, `rebuild()` and `redraw()` (put it first
    in the bases; connect `theme.changed()` to `_theme_changed`)."""

    _restyle = False  # the theme changed while hidden: redraw when shown

    def set_rows(self, rows: list[int]) -> None:
        """The runs to draw (catalog rows: those matching the table's filter)."""
        self.rows = list(rows)
        self.ids = np.array([self.catalog.ids[r] for r in self.rows], dtype=np.int64)
        self._dirty = True
        if self.isVisible():
            self._rebuild()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._dirty:  # after the event: the table above paints first
            QTimer.singleShot(DEFER_MS, self._rebuild_if_dirty)
        elif self._restyle:
            self._restyle = False
            self.redraw()

    def _rebuild_if_dirty(self) -> None:
        if self._dirty and self.isVisible():
            self._rebuild()

    def _rebuild(self) -> None:
        self._restyle = False  # a rebuild draws in the current theme
        self.rebuild()

    def _theme_changed(self, _theme) -> None:
        """Redraw in the new colours now if shown and current; else when next shown."""
        if self.isVisible() and not self._dirty:
            self.redraw()
        else:
            self._restyle = True
