"""A run's training health drawn on the model graph in the designer.

Pick a run (the designer's model need not be open from it: nodes are matched by id) and a
statistic — gradient norm, update ratio, dead fraction, weight norm, activation std — and
every node the run measured gets a coloured frame and its value at the chosen step; the step
slider moves through the run's measurements, and *Follow* keeps a running run at its newest
one. Nodes the health checks warned about get a badge with the warning. Hovering a node shows
its small curves (gradient norm, update ratio, dead fraction) with the step marked.

The health series come from the run store through a read-only connection (`engine.health`
names them), read once when a run is chosen and then only what is new while it runs; nothing
here imports torch. The marks are child items of the scene's node items, drawn over them and
ignoring the mouse buttons, so every gesture of the canvas works as before; they are placed
again whenever the scene rebuilds its items.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QLinearGradient, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.designer.items import NodeItem
from app.plots import CurveBuffer, paint_sparkline
from engine import format as fmt
from engine.errors import StoreError
from engine.explain.images import heat_colors
from engine.health import split_key
from engine.store import RunStore

STATS = {
    "grad_norm": "Gradient norm",
    "update_ratio": "Update ratio",
    "dead_fraction": "Dead fraction",
    "weight_norm": "Weight norm",
    "act_std": "Activation std",
}
LOG_STATS = {"grad_norm", "update_ratio", "weight_norm", "act_std"}
CARD_STATS = ("grad_norm", "update_ratio", "dead_fraction")
RUNS_LISTED = 40
FOLLOW_MS = 1000


class RunHealth:
    """One run's health series: {(node, stat): (steps, values)}, its warnings, its steps."""

    def __init__(self, store: RunStore, run_id: int):
        self.store, self.run_id = store, run_id
        self.series: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._seq: dict[str, int] = {}
        self.warnings: dict[str, list[dict]] = {}
        self._events_after = 0
        self.status = ""
        self.update()

    def update(self) -> bool:
        """Read what is new; True when anything came."""
        new = False
        for k in self.store.series_summaries(self.run_id):
            parts = split_key(k)
            if parts is None or parts[1] not in STATS:
                continue
            steps, values, _walls, seq = self.store.series_since(self.run_id, k, self._seq.get(k, -1))
            if len(steps):
                old = self.series.get(parts, (np.empty(0, dtype=np.int64), np.empty(0)))
                self.series[parts] = (np.concatenate([old[0], steps]), np.concatenate([old[1], values]))
                self._seq[k] = seq
                new = True
        for e in self.store.run_events(self.run_id, "health", after_id=self._events_after):
            self.warnings.setdefault(e["data"].get("node", ""), []).append(e)
            self._events_after = e["id"]
            new = True
        self.status = self.store.get_run(self.run_id)["status"]
        return new

    @property
    def nodes(self) -> set[str]:
        return {n for n, _ in self.series}

    def steps(self) -> np.ndarray:
        """Every step at which something was measured."""
        arrays = [s for s, _ in self.series.values()]
        return np.unique(np.concatenate(arrays)) if arrays else np.empty(0, dtype=np.int64)

    def value(self, node: str, stat: str, step: int) -> float | None:
        """The node's value at its last measurement at or before `step`."""
        steps, values = self.series.get((node, stat), (None, None))
        if steps is None or not len(steps):
            return None
        i = int(np.searchsorted(steps, step, side="right")) - 1
        return float(values[i]) if i >= 0 else None

    def span(self, stat: str) -> tuple[float, float] | None:
        """The statistic's range over every node and step: one colour scale for the whole run."""
        vals = [v for (_, s), (_, v) in self.series.items() if s == stat and len(v)]
        if not vals:
            return None
        v = np.concatenate(vals)
        v = v[np.isfinite(v)]
        if stat in LOG_STATS:
            v = v[v > 0]
        if not len(v):
            return None
        return float(v.min()), float(v.max())


def scale(value: float, span: tuple[float, float], log: bool) -> float:
    """`value` placed in `span` as 0…1 (log10 for statistics that span orders of magnitude)."""
    lo, hi = span
    if log:
        if value <= 0 or lo <= 0:
            return 0.0
        value, lo, hi = math.log10(value), math.log10(lo), math.log10(hi)
    if not math.isfinite(value):
        return 1.0
    return 0.5 if hi <= lo else min(1.0, max(0.0, (value - lo) / (hi - lo)))


def color_at(t: float) -> QColor:
    r, g, b = heat_colors(np.array([0.0, 1.0, t]))[2].tolist()  # the ramp's 0 and 1 fix the scale
    return QColor(int(r), int(g), int(b))


class HealthMark(QGraphicsItem):
    """A node's health: a frame in the statistic's colour, the value, and a warning badge."""

    def __init__(self, node: NodeItem, overlay: HealthOverlay):
        super().__init__(node)
        self.node, self.overlay = node, overlay
        self.color: QColor | None = None
        self.text = ""
        self.warnings: list[dict] = []
        self.setZValue(5)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)  # the canvas's gestures see the node
        self.setAcceptHoverEvents(True)

    def set_state(self, color: QColor | None, text: str, warnings: list[dict]) -> None:
        if (color, text, len(warnings)) != (self.color, self.text, len(self.warnings)):
            self.color, self.text, self.warnings = color, text, warnings
            self.setToolTip("\n".join(w["data"].get("message", "") for w in warnings))
            self.update()

    def boundingRect(self) -> QRectF:
        return self.node.body_rect().adjusted(-6, -16, 6, 16)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        t = theme.current()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        body = self.node.body_rect()
        if self.color is not None:
            painter.setPen(QPen(self.color, 4))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(body.adjusted(-3, -3, 3, 3), 9, 9)
            pill = QRectF(
                body.right() - 66, body.top() - 16, 70, 15
            )  # above the header, clear of the output tag
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self.color)
            painter.drawRoundedRect(pill, 5, 5)
            painter.setPen(QColor("#000000") if self.color.lightness() > 120 else QColor("#ffffff"))
            font = QFont()
            font.setPointSizeF(7.5)
            painter.setFont(font)
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, self.text)
        if self.warnings:
            badge = QRectF(body.left() - 8, body.top() - 12, 20, 20)
            painter.setPen(QPen(QColor(t.panel), 1.5))
            painter.setBrush(QColor("#d9480f"))
            painter.drawEllipse(badge)
            painter.setPen(QColor("#ffffff"))
            font = QFont()
            font.setBold(True)
            font.setPointSizeF(8)
            painter.setFont(font)
            painter.drawText(
                badge,
                Qt.AlignmentFlag.AlignCenter,
                "!" if len(self.warnings) == 1 else str(len(self.warnings)),
            )

    def hoverEnterEvent(self, event) -> None:
        self.overlay.show_card(self.node.node_id, event.screenPos())

    def hoverLeaveEvent(self, event) -> None:
        self.overlay.hide_card()


class HealthCard(QFrame):
    """The hover card: a node's small curves with the chosen step marked, and its warnings."""

    HEIGHT = 34

    def __init__(self, parent: QWidget):
        super().__init__(parent, objectName="healthCard")
        self.setWindowFlags(Qt.WindowType.ToolTip)
        self.node = ""
        self.curves: list[tuple[str, CurveBuffer, float | None]] = []
        self.step = 0
        self.lines: list[str] = []
        self.setFixedWidth(260)

    def show_node(self, node: str, health: RunHealth, step: int) -> None:
        self.node, self.step = node, step
        self.curves = []
        for stat in CARD_STATS:
            steps, values = health.series.get((node, stat), (None, None))
            if steps is None:
                continue
            buf = CurveBuffer()
            buf.replace(steps.astype(np.float64), values)
            self.curves.append((stat, buf, health.value(node, stat, step)))
        self.lines = [w["data"].get("message", "") for w in health.warnings.get(node, [])][-3:]
        self.setFixedHeight(28 + len(self.curves) * (self.HEIGHT + 16) + 16 * len(self.lines) + 8)
        self.update()

    def paintEvent(self, event) -> None:
        t = theme.current()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(QColor(t.border)))
        p.setBrush(QColor(t.panel))
        p.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
        p.setPen(QColor(t.text))
        bold = QFont()
        bold.setBold(True)
        p.setFont(bold)
        p.drawText(QRectF(10, 6, self.width() - 20, 18), f"{self.node} · step {self.step:,}")
        p.setFont(QFont())
        y = 28.0
        for stat, buf, now in self.curves:
            p.setPen(QColor(t.subtext))
            p.drawText(
                QRectF(10, y, self.width() - 20, 14),
                f"{STATS[stat]}: {fmt.value(now) if now is not None else '–'}",
            )
            rect = QRectF(10, y + 16, self.width() - 20, self.HEIGHT - 4)
            paint_sparkline(p, rect, buf, QColor(t.accent))
            if buf.n > 1 and buf.x[buf.n - 1] > buf.x[0]:
                x = rect.left() + (self.step - buf.x[0]) / (buf.x[buf.n - 1] - buf.x[0]) * rect.width()
                p.setPen(QPen(QColor(t.subtext), 1, Qt.PenStyle.DashLine))
                p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
            y += self.HEIGHT + 16
        p.setPen(QColor("#d9480f"))
        for line in self.lines:
            p.drawText(QRectF(10, y, self.width() - 20, 16), Qt.TextFlag.TextSingleLine, line)
            y += 16


class HealthPanel(QWidget):
    """The dock's controls: run, statistic, step, follow, and the colour scale."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, objectName="healthOverlayPanel")
        self.run = QComboBox(objectName="healthRun")
        # long run names elide instead of making the panel wider than its dock
        self.run.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.run.setMinimumContentsLength(8)
        self.reload = QPushButton("Refresh", objectName="healthRunsRefresh")
        self.stat = QComboBox(objectName="healthOverlayStat")
        for stat, title in STATS.items():
            self.stat.addItem(title, stat)
        self.slider = QSlider(Qt.Orientation.Horizontal, objectName="healthStep")
        self.step_label = QLabel(objectName="subtle")
        self.follow = QCheckBox("Follow the newest step", objectName="healthFollow", checked=True)
        self.show_marks = QCheckBox("Show on the canvas", objectName="healthShow", checked=True)
        self.scale = QLabel(objectName="healthScale")
        self.scale.setFixedHeight(14)
        # its pixmap is painted at the label's width: it follows the panel, never widens it
        self.scale.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.scale_text = QLabel(objectName="subtle")
        self.note = QLabel(objectName="subtle", wordWrap=True)
        runs = QHBoxLayout()
        runs.addWidget(self.run, 1)
        runs.addWidget(self.reload)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        for label, w in (("Run", runs), ("Statistic", self.stat)):
            layout.addWidget(QLabel(label, objectName="fieldLabel"))
            layout.addLayout(w) if isinstance(w, QHBoxLayout) else layout.addWidget(w)
        layout.addWidget(QLabel("Step", objectName="fieldLabel"))
        layout.addWidget(self.slider)
        layout.addWidget(self.step_label)
        layout.addWidget(self.follow)
        layout.addWidget(self.show_marks)
        layout.addWidget(self.scale)
        layout.addWidget(self.scale_text)
        layout.addWidget(self.note)
        layout.addStretch(1)

    def paint_scale(self) -> None:
        width = max(40, self.scale.width())
        grad = QLinearGradient(0, 0, width, 0)
        for t in np.linspace(0, 1, 8):
            grad.setColorAt(float(t), color_at(float(t)))
        pix = QPixmap(width, 14)
        pix.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pix)
        painter.fillRect(pix.rect(), QBrush(grad))
        painter.end()
        self.scale.setPixmap(pix)


class HealthOverlay(QObject):
    """Marks on the scene's nodes for the chosen run, statistic and step (see module docstring)."""

    def __init__(self, scene, view, parent: QObject | None = None, db_path: Path | None = None):
        super().__init__(parent)
        self.scene, self.view = scene, view
        self.db_path = db_path
        self.store: RunStore | None = None
        self.health: RunHealth | None = None
        self.marks: dict[str, HealthMark] = {}
        self.panel = HealthPanel()
        # what the dock holds: the panel, scrolling, so the dock never sets the window's height
        self.widget = QScrollArea(objectName="healthOverlayScroll", widgetResizable=True)
        self.widget.setFrameShape(QFrame.Shape.NoFrame)
        self.widget.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.widget.setWidget(self.panel)
        self.card = HealthCard(view.viewport())
        self.card.hide()
        self.timer = QTimer(self, interval=FOLLOW_MS)
        self.timer.timeout.connect(self._follow)
        p = self.panel
        p.run.currentIndexChanged.connect(lambda _i: self.set_run(p.run.currentData()))
        p.reload.clicked.connect(self.refresh_runs)
        p.stat.currentIndexChanged.connect(lambda _i: self.apply())
        p.slider.valueChanged.connect(lambda _v: self._step_moved())
        p.show_marks.toggled.connect(lambda _on: self.apply())
        scene.rebuilding.connect(self._forget_marks)
        scene.doc.reset.connect(lambda: QTimer.singleShot(0, self.apply))
        scene.doc.node_added.connect(lambda _n: self.apply())
        self._steps = np.empty(0, dtype=np.int64)
        self._listed = False

    # ------------------------------------------------------------ choosing

    def set_db_path(self, path: Path | None) -> None:
        self.db_path = Path(path) if path else None
        if self.store is not None:
            self.store.close()
            self.store = None
        self._listed = False

    def _open(self) -> RunStore | None:
        if self.store is None:
            path = self.db_path
            if path is None:
                from engine.store import default_db_path

                path = default_db_path()
            try:
                self.store = RunStore(path, readonly=True)
            except StoreError as err:
                self.panel.note.setText(str(err))
                return None
        return self.store

    def refresh_runs(self) -> None:
        """The runs that measured health, newest first; the one whose nodes best match the
        designer's model is chosen."""
        store = self._open()
        if store is None:
            return
        graph_nodes = set(self.scene.doc.graph.nodes)
        combo = self.panel.run
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        best, best_overlap = None, -1
        try:
            runs = store.list_runs(limit=RUNS_LISTED)
            for run in runs:
                nodes = {p[0] for k in store.series_summaries(run["id"]) if (p := split_key(k))}
                if not nodes:
                    continue
                overlap = len(nodes & graph_nodes)
                combo.addItem(f"#{run['id']} {run['name']} ({run['status']})", run["id"])
                if overlap > best_overlap:
                    best, best_overlap = run["id"], overlap
        except StoreError as err:
            self.panel.note.setText(str(err))
        combo.blockSignals(False)
        self._listed = True
        chosen = current if current is not None and combo.findData(current) >= 0 else best
        if chosen is None:
            self.panel.note.setText("No run in the store has health measurements yet.")
            self.set_run(None)
            return
        combo.setCurrentIndex(combo.findData(chosen))
        self.set_run(chosen)

    def set_run(self, run_id: int | None) -> None:
        store = self._open()
        self.health = None
        if run_id is not None and store is not None:
            try:
                self.health = RunHealth(store, run_id)
            except StoreError as err:
                self.panel.note.setText(str(err))
        self._update_steps(jump_to_end=True)
        self.timer.stop()
        if self.health is not None and self.health.status == "running":
            self.timer.start()
        self.apply()

    def _follow(self) -> None:
        """A running run: read what is new, and move to the newest step when following."""
        if self.health is None:
            return
        try:
            new = self.health.update()
        except StoreError:
            return
        if new:
            self._update_steps(jump_to_end=self.panel.follow.isChecked())
            self.apply()
        if self.health.status != "running":
            self.timer.stop()

    def _update_steps(self, jump_to_end: bool) -> None:
        self._steps = self.health.steps() if self.health is not None else np.empty(0, dtype=np.int64)
        s = self.panel.slider
        s.blockSignals(True)
        s.setRange(0, max(0, len(self._steps) - 1))
        if jump_to_end:
            s.setValue(s.maximum())
        s.blockSignals(False)
        s.setEnabled(len(self._steps) > 0)

    def _step_moved(self) -> None:
        if self.panel.slider.value() < self.panel.slider.maximum():
            self.panel.follow.setChecked(False)
        self.apply()

    @property
    def step(self) -> int:
        if not len(self._steps):
            return 0
        return int(self._steps[min(self.panel.slider.value(), len(self._steps) - 1)])

    @property
    def statistic(self) -> str:
        return self.panel.stat.currentData()

    # ------------------------------------------------------------ drawing

    def _forget_marks(self) -> None:
        self.marks.clear()  # the scene deletes its items, and our marks with them
        self.hide_card()

    def apply(self) -> None:
        """Colour every node for the chosen run, statistic and step."""
        health, stat, step = self.health, self.statistic, self.step
        on = self.panel.show_marks.isChecked() and health is not None
        span = health.span(stat) if health is not None else None
        shown = 0
        for nid, item in self.scene.nodes.items():
            mark = self.marks.get(nid)
            value = health.value(nid, stat, step) if on else None
            warnings = [w for w in (health.warnings.get(nid, []) if on else []) if w["step"] <= step]
            if value is None and not warnings:
                if mark is not None:
                    mark.set_state(None, "", [])
                continue
            if mark is None or mark.scene() is None:
                mark = self.marks[nid] = HealthMark(item, self)
            color = color_at(scale(value, span, stat in LOG_STATS)) if value is not None and span else None
            mark.set_state(color, fmt.value(value) if value is not None else "", warnings)
            shown += value is not None
        p = self.panel
        p.step_label.setText(f"step {step:,} ({len(self._steps):,} measurements)" if len(self._steps) else "")
        if span is not None:
            p.paint_scale()
            p.scale_text.setText(
                f"{fmt.value(span[0])}  →  {fmt.value(span[1])}" + ("  (log)" if stat in LOG_STATS else "")
            )
        if health is not None:
            missing = len(set(self.scene.nodes) & health.nodes) < len(health.nodes)
            p.note.setText(
                f"{shown} of the designer's nodes measured"
                + (" (the run's model has nodes this one lacks)" if missing else "")
                + (" · live" if health.status == "running" else "")
            )

    def show_card(self, node: str, screen_pos) -> None:
        if self.health is None or not any(n == node for n, _ in self.health.series):
            return
        self.card.show_node(node, self.health, self.step)
        self.card.move((QPointF(screen_pos) + QPointF(16, 12)).toPoint())
        self.card.show()

    def hide_card(self) -> None:
        self.card.hide()

    def showing(self) -> None:
        """The dock became visible: list the runs the first time."""
        if not self._listed:
            self.refresh_runs()
