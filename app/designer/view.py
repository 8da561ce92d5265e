"""The canvas view: zoom, scroll, fit, the grid, the empty-canvas hint, drops from the palette,
and a note shown beside the cursor (why a connection was refused).

It shows the scene and moves the camera; it never edits. Mouse gestures on it are
interactions.py's, which scroll it through `scroll_by`.
"""

from __future__ import annotations

from PySide6.QtCore import QLineF, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QTransform
from PySide6.QtWidgets import QGraphicsView, QLabel

from app import richtext, theme
from app.designer.palette import OP_MIME
from app.designer.scene import GraphScene

GRID = 20.0
NOTE_MS = 5000  # how long a note beside the cursor stays
#: Fit never zooms out further than this: below it node text is too small to read, so a model
#: larger than the view is shown at this zoom from its input (or the selection) and the rest
#: is a scroll away.
READABLE_ZOOM = 0.65


class GraphView(QGraphicsView):
    """Zoom with the wheel (Shift + wheel scrolls sideways); accepts ops dropped from the palette."""

    op_dropped = Signal(str, QPointF)
    zoom_changed = Signal(float)
    notice = Signal(str)  # for the status bar

    MIN_ZOOM, MAX_ZOOM = 0.1, 3.0
    READABLE_ZOOM = READABLE_ZOOM
    FIT_MARGIN = 40.0

    def __init__(self, scene: GraphScene, parent=None):
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)  # the rubber band is a gesture of ours
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAcceptDrops(True)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self._fitted_once = False
        self._said_larger = False  # the last fit's notice was that the model is larger than the view
        self.note = QLabel(self.viewport(), objectName="canvasNote")
        self.note.setTextFormat(Qt.TextFormat.RichText)
        self.note.setWordWrap(True)
        self.note.setMaximumWidth(380)
        self.note.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.note.hide()
        self._note_timer = QTimer(self, singleShot=True, interval=NOTE_MS)
        self._note_timer.timeout.connect(self.clear_note)

    @property
    def graph_scene(self) -> GraphScene:
        return self.scene()

    # ------------------------------------------------------------ zoom

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, z: float, anchor_under_mouse: bool = False) -> None:
        z = max(self.MIN_ZOOM, min(self.MAX_ZOOM, z))
        anchor = self.transformationAnchor()
        if not anchor_under_mouse:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setTransform(QTransform.fromScale(z, z))
        self.setTransformationAnchor(anchor)
        self.zoom_changed.emit(z)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom() * 1.25)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom() / 1.25)

    def wheelEvent(self, event) -> None:
        delta = event.angleDelta()
        sideways = delta.x() or (delta.y() if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 0)
        if sideways:
            self.scroll_by(-sideways / 120 * 3 * GRID, 0)
        elif delta.y():
            self.set_zoom(self.zoom() * 1.15 ** (delta.y() / 120), anchor_under_mouse=True)
        event.accept()

    # ------------------------------------------------------------ fit and scroll

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._fitted_once:
            # Fit once the window has its real size: a fit at creation used the default size and
            # left the opening model off-centre and cut off on a real screen.
            self._fitted_once = True
            QTimer.singleShot(0, self.fit)

    def fit(self) -> bool:
        """Show the whole model, never magnified and never below the readable zoom. A model
        that does not fit at that zoom is shown from the selection, else from its inputs,
        with as much of the rest as the view holds. Returns whether all of it is shown."""
        scene = self.graph_scene
        rect = scene.nodes_rect()
        if rect.isNull():
            self.set_zoom(1.0)
            self.centerOn(0, 0)
            return True
        m = self.FIT_MARGIN
        rect = rect.adjusted(-m, -m, m, m)
        port = self.viewport().rect()
        z = min(port.width() / rect.width(), port.height() / rect.height(), 1.0)
        if z >= self.READABLE_ZOOM:
            self.set_zoom(z)
            self.centerOn(rect.center())
            if self._said_larger:  # the status bar's "larger than the view" no longer holds
                self._said_larger = False
                self.notice.emit("")
            return True
        self.set_zoom(self.READABLE_ZOOM)
        focus = scene.nodes_rect(scene.selected_node_ids())
        if focus.isNull():
            focus = scene.nodes_rect(scene.doc.graph.input_nodes())
        if focus.isNull():
            focus = QRectF(rect.topLeft(), rect.topLeft())
        # Centre on the focus, then slide towards the model's middle until the view holds no
        # empty margin beyond the model's edge on the focus's side.
        half_w = port.width() / self.READABLE_ZOOM / 2
        half_h = port.height() / self.READABLE_ZOOM / 2
        c = focus.center()
        self.centerOn(_clamp(c.x(), rect.left() + half_w, rect.right() - half_w),
                      _clamp(c.y(), rect.top() + half_h, rect.bottom() - half_h))  # fmt: skip
        self._said_larger = True
        self.notice.emit(
            f"Larger than the view at {self.READABLE_ZOOM:.0%}: middle-drag (or Space + drag) to see the rest"
        )
        return False

    def center_on_node(self, node_id: str) -> None:
        item = self.graph_scene.nodes.get(node_id)
        if item is not None:
            self.ensureVisible(item.sceneBoundingRect(), 80, 80)

    def visible_center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def visible_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def scroll_by(self, dx: float, dy: float) -> None:
        """Scroll by (dx, dy) viewport pixels."""
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + round(dx))
        v.setValue(v.value() + round(dy))

    # ------------------------------------------------------------ a note beside the cursor

    def show_note(self, text: str, at: QPointF) -> None:
        """Show `text` next to scene point `at` for a few seconds (or until `clear_note`)."""
        t = theme.current()
        self.note.setStyleSheet(
            f"QLabel#canvasNote {{ background: {t.panel}; color: {t.text}; border: 1px solid {t.error};"
            f" border-left: 4px solid {t.error}; border-radius: 5px; padding: 6px 8px; }}"
        )
        self.note.setText(richtext.html(text))
        # one line when it fits, else wrapped at the maximum width (adjustSize alone wraps a
        # short sentence into a narrow column)
        margins = self.note.contentsMargins()
        width = self.note.fontMetrics().horizontalAdvance(text) + margins.left() + margins.right() + 24
        self.note.setFixedWidth(min(width, self.note.maximumWidth()))
        self.note.setFixedHeight(self.note.heightForWidth(self.note.width()))
        spot = self.mapFromScene(at) + QPoint(16, 14)
        room = self.viewport().rect().adjusted(6, 6, -6, -6)
        x = min(max(spot.x(), room.left()), room.right() - self.note.width())
        y = spot.y() if spot.y() + self.note.height() <= room.bottom() else spot.y() - self.note.height() - 28
        self.note.move(x, max(room.top(), y))
        self.note.show()
        self.note.raise_()
        self._note_timer.start()

    def clear_note(self) -> None:
        self._note_timer.stop()
        self.note.hide()

    # ------------------------------------------------------------ painting

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        t = theme.current()
        painter.fillRect(rect, QColor(t.canvas))
        scale = painter.worldTransform().m11()
        for step, color, min_scale in ((GRID, t.grid_minor, 0.55), (GRID * 5, t.grid_major, 0.12)):
            if scale < min_scale:
                continue
            painter.setPen(QPen(QColor(color), 0))
            left = int(rect.left() // step) * step
            top = int(rect.top() // step) * step
            xs = [left + i * step for i in range(int((rect.right() - left) // step) + 1)]
            ys = [top + i * step for i in range(int((rect.bottom() - top) // step) + 1)]
            painter.drawLines([QLineF(x, rect.top(), x, rect.bottom()) for x in xs])
            painter.drawLines([QLineF(rect.left(), y, rect.right(), y) for y in ys])

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        if self.graph_scene.nodes:
            return
        # An empty canvas says how to start, in view coordinates so it stays put while panning.
        t = theme.current()
        painter.save()
        painter.resetTransform()
        area = QRectF(self.viewport().rect())
        painter.setPen(QColor(t.subtext))
        font = painter.font()
        font.setPointSizeF(12)
        painter.setFont(font)
        painter.drawText(
            area.adjusted(0, -20, 0, -20),
            Qt.AlignmentFlag.AlignCenter,
            "Drag a layer here from the palette,\nor double-click to add one",
        )
        painter.restore()

    # ------------------------------------------------------------ drops from the palette

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(OP_MIME):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasFormat(OP_MIME):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:
        if event.mimeData().hasFormat(OP_MIME):
            op = bytes(event.mimeData().data(OP_MIME)).decode(errors="replace")
            self.op_dropped.emit(op, self.mapToScene(event.position().toPoint()))
            event.acceptProposedAction()
        else:
            super().dropEvent(event)


def _clamp(value: float, low: float, high: float) -> float:
    """`value` within [low, high]; the middle of the two when the range is empty."""
    if low > high:
        return (low + high) / 2
    return min(max(value, low), high)
