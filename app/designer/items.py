"""Canvas items: a node box with its ports, an edge curve with its shape label, and the
rubber-band curve shown while a connection is being dragged.

Items only draw. They hold what the scene tells them (params text, output shape, errors) and
never touch the document; the scene turns gestures on them into commands.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPen,
)
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from app import richtext, theme
from app.designer import display
from engine import format as fmt
from engine.graph import Edge, OpDef

NODE_W = 164.0
HEADER_H = 24.0
LINE_H = 17.0
NODE_H = HEADER_H + 2 * LINE_H + 12.0
RADIUS = 7.0
PORT_R = 5.0
PORT_HIT = 10.0
INSIDE_LINES = 6  # lines of an imported module's listing drawn on its box (the tooltip has all)
INSIDE_H = 12.5


@cache
def _font(size: float, bold: bool = False, mono: bool = False) -> QFont:
    font = QFont()  # the application font
    if mono:
        font.setFamilies(["DejaVu Sans Mono", "Menlo", "Consolas", "monospace"])
        font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSizeF(size)
    font.setBold(bold)
    return font


def target_name(target) -> str:
    """`models:Gate` → Gate: the class an imported module's box is titled by."""
    return str(target or "").rpartition(":")[2] or "?"


class PortItem(QGraphicsItem):
    """An input port (left edge, one per input position) or the output port (right edge)."""

    def __init__(self, node: NodeItem, is_input: bool, index: int = 0):
        super().__init__(node)
        self.node, self.is_input, self.index = node, is_input, index
        self.connected = False
        self.highlight: str | None = None  # "ok" | "error" while a connection hovers it
        self.setAcceptHoverEvents(True)
        self._hover = False
        self.setZValue(2)

    def boundingRect(self) -> QRectF:
        return QRectF(-PORT_HIT, -PORT_HIT, 2 * PORT_HIT, 2 * PORT_HIT)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addEllipse(self.boundingRect())
        return path

    def set_highlight(self, state: str | None) -> None:
        if state != self.highlight:
            self.highlight = state
            self.update()

    def hoverEnterEvent(self, event) -> None:
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:
        self._hover = False
        self.update()

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = theme.current()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = PORT_R + (1.5 if self._hover or self.highlight else 0)
        ring = {"ok": t.ok, "error": t.error}.get(self.highlight or "", t.edge)
        painter.setPen(QPen(QColor(ring), 1.8))
        fill = ring if (self.connected or self.highlight) else t.node_body
        painter.setBrush(QColor(fill))
        painter.drawEllipse(QPointF(0, 0), r, r)


class NodeItem(QGraphicsItem):
    """One graph node: a header in its category colour with op and id, then key params, output
    shape and parameter count; a red badge with the engine's message when it is invalid."""

    def __init__(self, node_id: str, op: OpDef):
        super().__init__()
        self.node_id, self.op = node_id, op
        self.params_text = ""
        self.out_text = ""
        self.n_params: int | None = None
        self.errors: list[str] = []
        self.inside: list[str] = []  # an imported module's layers, listed read-only
        self.reference = ""  # and where its code comes from
        self.is_output = False
        self.edges: list[EdgeItem] = []
        self.inputs: list[PortItem] = []
        self.output = PortItem(self, is_input=False)
        self.output.setPos(NODE_W, NODE_H / 2)
        self.height = NODE_H
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setZValue(1)
        self._update_tooltip()

    # ------------------------------------------------------------ state from the scene

    def set_params(self, params: dict) -> None:
        self.params_text = display.key_params(self.op, params)
        inside = params.get("inside") if any(f.name == "inside" for f in self.op.params) else None
        lines = inside.splitlines() if isinstance(inside, str) else []
        file, target = params.get("file"), str(params.get("target") or "")
        if lines:  # what it is and where it comes from, instead of its measured params
            where = file.replace("\\", "/").rsplit("/", 1)[-1] if isinstance(file, str) else ""
            self.params_text = f"{target_name(target)} · {where}" if where else target_name(target)
        if lines != self.inside:
            self.prepareGeometryChange()
            self.inside = lines
            self.reference = f"{target} from {file}" if file else target
            self._place_ports()
            self._update_tooltip()
        self.update()

    def _inside_h(self) -> float:
        shown = min(len(self.inside), INSIDE_LINES + 1)
        return shown * INSIDE_H + 10 if shown else 0.0

    def _place_ports(self) -> None:
        """Ports beside the card's own lines; an imported module's listing hangs below them."""
        n = len(self.inputs)
        card = max(NODE_H, (n + 1) * 16.0)
        self.height = card + self._inside_h()
        for i, port in enumerate(self.inputs):
            port.setPos(0, card * (i + 1) / (n + 1))
        self.output.setPos(NODE_W, card / 2)

    def set_info(self, out_text: str, n_params: int | None, errors: list[str]) -> bool:
        """Returns whether anything changed (the scene relabels edges only then)."""
        if (out_text, n_params, errors) == (self.out_text, self.n_params, self.errors):
            return False
        self.out_text, self.n_params, self.errors = out_text, n_params, errors
        self._update_tooltip()
        self.update()
        return True

    def set_output_flag(self, flag: bool) -> None:
        if flag != self.is_output:
            self.prepareGeometryChange()
            self.is_output = flag
            self.update()

    def set_port_count(self, n: int, connected: set[int]) -> None:
        if n != len(self.inputs):
            self.prepareGeometryChange()
            while len(self.inputs) > n:
                port = self.inputs.pop()
                port.setParentItem(None)
                if port.scene():
                    port.scene().removeItem(port)
            while len(self.inputs) < n:
                self.inputs.append(PortItem(self, is_input=True, index=len(self.inputs)))
            self._place_ports()
        for i, port in enumerate(self.inputs):
            if port.connected != (i in connected):
                port.connected = i in connected
                port.update()

    def in_port_pos(self, port: int) -> QPointF:
        if port < len(self.inputs):
            return self.inputs[port].scenePos()
        return self.mapToScene(QPointF(0, self.height / 2))

    def out_port_pos(self) -> QPointF:
        return self.output.scenePos()

    def update_edges(self) -> None:
        for edge in self.edges:
            edge.update_path()

    def _update_tooltip(self) -> None:
        lines = [f"<b>{self.node_id}</b> — {self.op.name}", f"<i>{richtext.html(self.op.help)}</i>"]
        error = theme.current().error
        lines += [f"<span style='color:{error}'>⚠ {richtext.html(e)}</span>" for e in self.errors]
        if self.inside:
            listing = "<br>".join(richtext.html(line).replace(" ", "&nbsp;") for line in self.inside)
            lines += [
                f"<b>{richtext.html(self.reference)}</b>",
                "Its code runs only when a run or an export builds the model; opening the graph runs nothing.",
                f"<span style='font-family:monospace'>{listing}</span>",
            ]
        self.setToolTip("<br>".join(lines))

    # ------------------------------------------------------------ painting

    def body_rect(self) -> QRectF:
        return QRectF(0, 0, NODE_W, self.height)

    def body_scene_rect(self) -> QRectF:
        return self.body_rect().translated(self.pos())

    def boundingRect(self) -> QRectF:
        return QRectF(-8, -14, NODE_W + 22, self.height + 36)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(self.body_rect(), RADIUS, RADIUS)
        return path

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        t = theme.current()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        rect = self.body_rect()
        selected = self.isSelected()
        color = theme.category_color(self.op.category)

        # shadow, then selection glow
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 40 if t.name == "light" else 90))
        painter.drawRoundedRect(rect.translated(0, 2), RADIUS, RADIUS)
        if selected:
            glow = QColor(t.accent)
            glow.setAlpha(70)
            painter.setBrush(glow)
            painter.drawRoundedRect(rect.adjusted(-4, -4, 4, 4), RADIUS + 3, RADIUS + 3)

        # body and header
        painter.setBrush(QColor(t.node_body))
        painter.drawRoundedRect(rect, RADIUS, RADIUS)
        header = QPainterPath()
        header.addRoundedRect(QRectF(0, 0, NODE_W, HEADER_H + RADIUS), RADIUS, RADIUS)
        clip = QPainterPath()
        clip.addRect(QRectF(0, 0, NODE_W, HEADER_H))
        painter.setBrush(color)
        painter.drawPath(header.intersected(clip))

        # border
        if selected:
            pen = QPen(QColor(t.accent), 2.0)
        elif self.errors:
            pen = QPen(QColor(t.error), 1.6)
        else:
            pen = QPen(QColor(t.node_border), 1.0)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(rect, RADIUS, RADIUS)

        # header text: op name left, id right
        pad = 9.0
        painter.setPen(QColor("#ffffff"))
        painter.setFont(_font(9, bold=True))
        fm = QFontMetricsF(_font(9, bold=True))
        name_w = fm.horizontalAdvance(self.op.name)
        painter.drawText(
            QRectF(pad, 0, NODE_W - 2 * pad, HEADER_H), Qt.AlignmentFlag.AlignVCenter, self.op.name
        )
        id_font = _font(8)
        id_room = NODE_W - 2 * pad - name_w - 8
        id_in_header = QFontMetricsF(id_font).horizontalAdvance(self.node_id) <= id_room
        if id_in_header:
            painter.setFont(id_font)
            painter.setPen(QColor(255, 255, 255, 215))
            painter.drawText(
                QRectF(pad, 0, NODE_W - 2 * pad, HEADER_H),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                self.node_id,
            )

        # line 1: key params (after the id when a long op name left no room for it above)
        y = HEADER_H + 5
        small = _font(8)
        painter.setFont(small)
        painter.setPen(QColor(t.subtext))
        line = self.params_text or "no parameters"
        if not id_in_header:
            line = f"{self.node_id} · {self.params_text}" if self.params_text else self.node_id
        line = QFontMetricsF(small).elidedText(line, Qt.TextElideMode.ElideRight, NODE_W - 2 * pad)
        painter.drawText(QRectF(pad, y, NODE_W - 2 * pad, LINE_H), Qt.AlignmentFlag.AlignVCenter, line)

        # line 2: output shape, parameter count
        y += LINE_H
        count = f"{fmt.count(self.n_params)} params" if self.n_params else ""
        count_w = QFontMetricsF(small).horizontalAdvance(count) + (6 if count else 0)
        painter.drawText(
            QRectF(pad, y, NODE_W - 2 * pad, LINE_H),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
            count,
        )
        mono = _font(8.5, bold=True, mono=True)
        painter.setFont(mono)
        if self.errors:
            painter.setPen(QColor(t.error))
            shape_text = "invalid"
        else:
            painter.setPen(QColor(t.text if self.out_text else t.subtext))
            shape_text = f"→ {self.out_text}" if self.out_text else "→ ?"
        shape_text = QFontMetricsF(mono).elidedText(
            shape_text, Qt.TextElideMode.ElideRight, NODE_W - 2 * pad - count_w
        )
        painter.drawText(QRectF(pad, y, NODE_W - 2 * pad, LINE_H), Qt.AlignmentFlag.AlignVCenter, shape_text)

        if self.inside:
            self._paint_inside(painter, t, y + LINE_H + 4)
        if self.is_output:
            self._paint_output_tag(painter, t)
        if self.errors:
            self._paint_badge(painter, t)

    def _paint_inside(self, painter: QPainter, t: theme.Theme, top: float) -> None:
        """The imported module's own listing, read-only, in a sunken panel under the counts."""
        pad = 9.0
        panel = QRectF(pad - 3, top, NODE_W - 2 * pad + 6, self.height - top - 6)
        painter.setPen(Qt.PenStyle.NoPen)
        sunk = QColor(t.node_border)
        sunk.setAlpha(60)
        painter.setBrush(sunk)
        painter.drawRoundedRect(panel, 4, 4)
        font = _font(7, mono=True)
        fm = QFontMetricsF(font)
        painter.setFont(font)
        painter.setPen(QColor(t.subtext))
        lines = self.inside[:INSIDE_LINES]
        if len(self.inside) > INSIDE_LINES:
            lines = [*lines, f"… {len(self.inside) - INSIDE_LINES} more (hover)"]
        for i, line in enumerate(lines):
            text = fm.elidedText(line, Qt.TextElideMode.ElideRight, panel.width() - 6)
            row = QRectF(panel.left() + 3, top + 4 + i * INSIDE_H, panel.width() - 6, INSIDE_H)
            painter.drawText(row, Qt.AlignmentFlag.AlignVCenter, text)

    def _paint_badge(self, painter: QPainter, t: theme.Theme) -> None:
        center = QPointF(NODE_W - 2, 0)
        painter.setPen(QPen(QColor(t.node_body), 2))
        painter.setBrush(QColor(t.error))
        painter.drawEllipse(center, 9, 9)
        painter.setPen(QColor("#ffffff"))
        painter.setFont(_font(9, bold=True))
        painter.drawText(QRectF(center.x() - 9, center.y() - 9, 18, 18), Qt.AlignmentFlag.AlignCenter, "!")

    def _paint_output_tag(self, painter: QPainter, t: theme.Theme) -> None:
        font = _font(7, bold=True)
        text = "OUTPUT"
        w = QFontMetricsF(font).horizontalAdvance(text) + 12
        rect = QRectF(NODE_W - w, self.height + 5, w, 15)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(t.accent))
        painter.drawRoundedRect(rect, 7.5, 7.5)
        painter.setPen(QColor("#ffffff"))
        painter.setFont(font)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)


def curve(p1: QPointF, p2: QPointF, src: QRectF | None = None, dst: QRectF | None = None) -> QPainterPath:
    """The path of an edge from an output port (p1) to an input port (p2); `src` and `dst` are
    the two nodes' bodies, which a backward edge routes around.

    Forward edges are S-curves; one that jumps over several nodes of its row arcs above them.
    A backward edge (a wrapped layout's next band, or a hand-placed loop) leaves its source to
    the right, runs left through the free lane between the two nodes (or above both when they
    share a row), and enters its target from the left, never crossing either body.
    """
    path = QPainterPath(p1)
    dx, dy = p2.x() - p1.x(), p2.y() - p1.y()
    if dx >= 30 or dst is None:
        bend = max(50.0, abs(dx) * 0.5)
        lift = min(110.0, dx * 0.22) if dx > 1.6 * NODE_W + 60 and abs(dy) < 20 else 0.0
        path.cubicTo(QPointF(p1.x() + bend, p1.y() - lift), QPointF(p2.x() - bend, p2.y() - lift), p2)
        return path
    r = 22.0
    src = src if src is not None else QRectF(p1, p1)
    if src.bottom() + 2 * r <= dst.top():
        run = (src.bottom() + dst.top()) / 2  # the lane between a source above and its target
    elif dst.bottom() + 2 * r <= src.top():
        run = (dst.bottom() + src.top()) / 2
    else:
        run = min(src.top(), dst.top()) - 32  # side by side: over both
    right, left = p1.x() + r, p2.x() - r
    if _crosses(right, p1.y(), run, dst):
        right = dst.right() + r  # down the target's right side, not through it
    if _crosses(left, run, p2.y(), src):
        left = min(left, src.left() - r)
    down = 1 if run > p1.y() else -1  # from the source towards the run
    into = 1 if p2.y() > run else -1  # from the run towards the target
    path.quadTo(QPointF(right, p1.y()), QPointF(right, p1.y() + down * r))
    path.lineTo(QPointF(right, run - down * r))
    path.quadTo(QPointF(right, run), QPointF(right - r, run))
    path.lineTo(QPointF(left + r, run))
    path.quadTo(QPointF(left, run), QPointF(left, run + into * r))
    path.lineTo(QPointF(left, p2.y() - into * r))
    path.quadTo(QPointF(left, p2.y()), p2)
    return path


def _crosses(x: float, y1: float, y2: float, body: QRectF) -> bool:
    """Whether the vertical segment x, y1..y2 passes through `body` (with room for the bend)."""
    low, high = min(y1, y2), max(y1, y2)
    return body.left() - 22 < x < body.right() + 22 and low < body.bottom() and high > body.top()


class EdgeItem(QGraphicsItem):
    """An edge drawn as a curve from an output port to an input port, labelled with the shape
    of the tensor it carries (when there is room for the label)."""

    def __init__(self, edge: Edge, src: NodeItem, dst: NodeItem):
        super().__init__()
        self.edge, self.src, self.dst = edge, src, dst
        self.label = ""
        self.broken = False
        self.path = QPainterPath()
        self._label_rect = QRectF()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        # Above the nodes: an edge that has to pass a node stays visible instead of vanishing
        # under it (the route avoids its own two nodes; others may be in the way).
        self.setZValue(1.5)
        self.setToolTip(f"{edge.src} → {edge.dst} (input {edge.port})")
        self.update_path()

    def set_label(self, text: str, broken: bool) -> None:
        if (text, broken) != (self.label, self.broken):
            self.label, self.broken = text, broken
            self._place_label()
            self.update()

    def update_path(self) -> None:
        self.prepareGeometryChange()
        self.path = curve(
            self.src.out_port_pos(),
            self.dst.in_port_pos(self.edge.port),
            self.src.body_scene_rect(),
            self.dst.body_scene_rect(),
        )
        self._place_label()

    def _place_label(self) -> None:
        self.prepareGeometryChange()
        self._label_rect = QRectF()
        if not self.label:
            return
        fm = QFontMetricsF(_font(7.5, mono=True))
        w, h = fm.horizontalAdvance(self.label) + 10, fm.height() + 3
        p1, p2 = self.path.pointAtPercent(0), self.path.pointAtPercent(1)
        if QLineF(p1, p2).length() < w + 18:
            return  # no room between the nodes; the node shows its output shape anyway
        mid = self.path.pointAtPercent(0.5)
        self._label_rect = QRectF(mid.x() - w / 2, mid.y() - h / 2, w, h)

    def boundingRect(self) -> QRectF:
        return self.path.boundingRect().adjusted(-4, -4, 4, 4).united(self._label_rect.adjusted(-2, -2, 2, 2))

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = theme.current()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = self.isSelected()
        pen = QPen(QColor(t.accent if selected else t.edge), 2.6 if selected else 1.8)
        if self.broken:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path)
        if not self._label_rect.isNull():
            painter.setPen(QPen(QColor(t.accent if selected else t.node_border), 1))
            painter.setBrush(QColor(t.label_bg))
            painter.drawRoundedRect(self._label_rect, 4, 4)
            painter.setPen(QColor(t.label_text))
            painter.setFont(_font(7.5, mono=True))
            painter.drawText(self._label_rect, Qt.AlignmentFlag.AlignCenter, self.label)


class PendingEdgeItem(QGraphicsItem):
    """The curve following the cursor while the user drags a new connection. Over a node it
    takes the route the edge will have, so what you see is what a release makes."""

    def __init__(self, anchor: QPointF, from_output: bool, anchor_body: QRectF):
        super().__init__()
        self.anchor, self.from_output, self.anchor_body = anchor, from_output, anchor_body
        self.state: str | None = None
        self.path = QPainterPath()
        self.setZValue(3)
        self.set_end(anchor)

    def set_end(self, end: QPointF, state: str | None = None, other_body: QRectF | None = None) -> None:
        """Follow the cursor at `end`; `other_body` is the node under it, if any."""
        self.prepareGeometryChange()
        self.state = state
        if self.from_output:
            self.path = curve(self.anchor, end, self.anchor_body, other_body)
        else:
            self.path = curve(end, self.anchor, other_body, self.anchor_body)

    def boundingRect(self) -> QRectF:
        return self.path.boundingRect().adjusted(-4, -4, 4, 4)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = theme.current()
        color = {"ok": t.ok, "error": t.error}.get(self.state or "", t.accent)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(QColor(color), 2.2, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(QBrush())
        painter.drawPath(self.path)
