"""The compact list of runs beside the monitor: live runs (with a sparkline of their loss and a
progress bar), the queue, the runs finished this session and the store's recent history.

Rows are painted by a delegate straight from the `LiveRun` models, so a tick that moved twenty
progress bars costs one viewport repaint, not twenty widget updates. Rows are as wide as the
list: in a narrow sidebar the run's name is elided, never its status.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app import theme
from app.plots import paint_sparkline
from app.runs.launcher import QueuedRun
from app.runs.live import LiveRun
from engine import format as fmt
from engine.compare import headline


def status_color(status: str) -> QColor:
    return QColor(theme.STATUS_COLORS.get(status, "#66758a"))


@dataclass
class Entry:
    kind: str  # header | live | queued | stored
    title: str = ""
    live: LiveRun | None = None
    queued: QueuedRun | None = None
    row: dict | None = None

    @property
    def key(self):
        if self.live is not None:
            return ("run", self.live.run_id if self.live.run_id is not None else id(self.live))
        if self.row is not None:
            return ("run", self.row["id"])
        if self.queued is not None:
            return ("queued", str(self.queued.path))
        return ("header", self.title)


ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1


class RunListModel(QAbstractListModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.entries: list[Entry] = []

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.entries)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        if role == ENTRY_ROLE:
            return entry
        if role == Qt.ItemDataRole.DisplayRole:
            if entry.live is not None:
                return entry.live.title
            if entry.row is not None:
                return f"#{entry.row['id']} {entry.row['name']}"
            if entry.queued is not None:
                return entry.queued.name
            return entry.title
        if role == Qt.ItemDataRole.ToolTipRole:
            if entry.live is not None and entry.live.error:
                return entry.live.error.strip().splitlines()[-1]
            if entry.row is not None and entry.row.get("error"):
                return entry.row["error"].strip().splitlines()[-1]
        return None

    def flags(self, index: QModelIndex):
        entry = self.entries[index.row()] if index.isValid() else None
        if entry is None or entry.kind == "header":
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def set_entries(self, entries: list[Entry]) -> None:
        self.beginResetModel()
        self.entries = entries
        self.endResetModel()

    def row_of(self, key) -> int:
        return next((i for i, e in enumerate(self.entries) if e.key == key), -1)


class RunDelegate(QStyledItemDelegate):
    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        entry: Entry = index.data(ENTRY_ROLE)
        height = {"header": 28, "live": 62, "queued": 38, "stored": 44}.get(entry.kind, 40)
        # Width 0: the view makes every row as wide as itself. A row wider than the view (the
        # width it had before a scroll bar appeared, say) would push the status out of sight.
        return QSize(0, height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        entry: Entry = index.data(ENTRY_ROLE)
        t = theme.current()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        rect = option.rect
        if entry.kind == "header":
            font = QFont(option.font)
            font.setPointSizeF(font.pointSizeF() * 0.82)
            font.setBold(True)
            painter.setFont(font)
            painter.setPen(QColor(t.subtext))
            painter.drawText(
                rect.adjusted(14, 8, -10, 0),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                entry.title.upper(),
            )
            painter.restore()
            return
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        card = QRectF(rect.adjusted(6, 2, -6, -2))
        if selected or hovered:
            painter.setPen(Qt.PenStyle.NoPen)
            fill = QColor(t.accent)
            fill.setAlpha(38 if selected else 16)
            painter.setBrush(fill)
            painter.drawRoundedRect(card, 6, 6)
        inner = rect.adjusted(14, 6, -12, -6)
        if entry.kind == "queued":
            self._paint_queued(painter, option, inner, entry, t)
        else:
            self._paint_run(painter, option, inner, entry, t)
        painter.restore()

    def _paint_run(self, painter: QPainter, option, inner: QRect, entry: Entry, t) -> None:
        live, row = entry.live, entry.row
        status = live.status if live is not None else row["status"]
        name = live.name if live is not None else row["name"]
        run_id = (live.run_id if live is not None else row["id"]) or None
        color = status_color(status)
        # line 1: status dot, name and id ... status; the name gives way, the status never does
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawEllipse(QRectF(inner.left(), inner.top() + 5, 8, 8))
        plain = QFontMetrics(option.font)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        fm = painter.fontMetrics()
        status_w = fm.horizontalAdvance(status)
        status_rect = QRect(inner.right() - status_w + 1, inner.top(), status_w, fm.height())
        left = inner.left() + 16
        room = max(0, status_rect.left() - 8 - left)
        ident = f"  #{run_id}" if run_id else ""
        shown = fm.elidedText(
            name, Qt.TextElideMode.ElideRight, max(0, room - plain.horizontalAdvance(ident))
        )
        name_w = fm.horizontalAdvance(shown)
        painter.setPen(QColor(t.text))
        painter.drawText(
            QRect(left, inner.top(), name_w, fm.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            shown,
        )
        painter.setPen(color)
        painter.drawText(status_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, status)
        painter.setFont(option.font)
        painter.setPen(QColor(t.subtext))
        painter.drawText(
            QRect(left + name_w, inner.top(), max(0, room - name_w), fm.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            plain.elidedText(ident, Qt.TextElideMode.ElideRight, max(0, room - name_w)),
        )
        painter.setFont(option.font)
        small = painter.fontMetrics()
        y2 = inner.top() + fm.height() + 5
        if entry.kind == "live" and live is not None:
            # line 2: sparkline of the loss, progress bar, percent / ETA
            spark = QRectF(inner.left() + 16, y2, inner.width() * 0.42, 22)
            loss = live.series.get("train/loss")
            if loss is not None and loss.n > 1:
                paint_sparkline(painter, spark, loss, QColor(t.accent))
            bar_left = spark.right() + 10
            fraction = live.fraction() or 0.0
            bar = QRectF(bar_left, y2 + 8, inner.right() - bar_left, 5)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(t.border))
            painter.drawRoundedRect(bar, 2.5, 2.5)
            painter.setBrush(color)
            painter.drawRoundedRect(
                QRectF(bar.left(), bar.top(), bar.width() * fraction, bar.height()), 2.5, 2.5
            )
            eta = live.eta()
            text = f"{fraction:.0%}" + (f" · ETA {fmt.clock(eta)}" if eta is not None else "")
            painter.setPen(QColor(t.subtext))
            painter.drawText(
                QRect(int(bar_left), int(y2 + 14), int(bar.width()), small.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                text,
            )
        else:
            painter.setPen(QColor(t.subtext))
            line = QRect(inner.left() + 16, y2 - 2, inner.width() - 16, small.height())
            painter.drawText(
                line,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                small.elidedText(_result_text(live, row), Qt.TextElideMode.ElideRight, line.width()),
            )

    def _paint_queued(self, painter: QPainter, option, inner: QRect, entry: Entry, t) -> None:
        painter.setPen(QPen(QColor(t.subtext), 1.4))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(QRectF(inner.left(), inner.top() + 6, 8, 8))
        fm = painter.fontMetrics()
        kind = entry.queued.kind
        kind_w = fm.horizontalAdvance(kind)
        name_rect = inner.adjusted(16, 0, -kind_w - 8, 0)
        painter.setPen(QColor(t.text))
        painter.drawText(
            name_rect,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            fm.elidedText(entry.queued.name, Qt.TextElideMode.ElideRight, max(0, name_rect.width())),
        )
        painter.setPen(QColor(t.subtext))
        painter.drawText(inner, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, kind)


def _result_text(live: LiveRun | None, row: dict | None) -> str:
    if live is not None:
        head = live.headline()
        bits = [live.kind]
        if head:
            bits.append(f"{head[0].split('/', 1)[-1]} {fmt.value(head[1])}")
        if live.total_steps:
            bits.append(f"{live.step:,}/{live.total_steps:,} steps")
        return " · ".join(bits)
    summary = row.get("summary") or {}
    bits = [row["kind"]]
    head = headline(summary)
    if head:
        bits.append(f"{head[0].split('/', 1)[-1]} {fmt.value(head[1])}")
    if summary.get("steps"):
        bits.append(f"{summary['steps']:,} steps")
    return " · ".join(bits)


class RunListView(QListView):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("runList")
        self.setItemDelegate(RunDelegate(self))
        self.setMouseTracking(True)
        self.setUniformItemSizes(False)
        self.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
