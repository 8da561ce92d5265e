"""`RunMonitor`: one run, live — status, progress, its curves and its log.

Plots appear as metric keys appear, grouped (losses together, validation metrics, learning
rate, throughput, memory, GPU), so whatever a task logs is shown. Nothing here redraws on an
event: the Runs area's one timer calls `refresh()` about ten times a second, which redraws only
what changed since the last tick.
"""

from __future__ import annotations

import html
import re
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.plots import PALETTE, MetricPlot, format_value
from app.runs.live import LiveRun
from engine.store import RESUMABLE

LOG_SHOWN = 5000  # lines kept in the console (the run's log file has them all)
COLUMNS = 2
DEFAULT_SMOOTHING = 0.6

_VAL_TITLES = {
    "accuracy": "Validation accuracy",
    "perplexity": "Validation perplexity",
    "rmse": "Validation RMSE",
}
_PERF_TITLES = {"samples_per_s": "Throughput (samples/s)", "tokens_per_s": "Throughput (tokens/s)"}


def plot_group(key: str) -> tuple[str, str, int, bool] | None:
    """(group id, title, order, smoothed) of the plot a metric key is drawn in; None: not plotted."""
    prefix, _, name = key.partition("/")
    if key == "train/epoch":
        return None  # shown in the progress line
    if key == "train/loss":
        return "loss", "Loss", 0, True
    if key == "val/loss":
        return "loss", "Loss", 0, False
    if prefix == "val":  # evaluations average the whole validation split: smoothing would only delay them
        return f"val:{name}", _VAL_TITLES.get(name, f"Validation {name.replace('_', ' ')}"), 1, False
    if key == "train/lr":
        return "lr", "Learning rate", 2, False
    if prefix == "perf":
        return f"perf:{name}", _PERF_TITLES.get(name, name.replace("_", " ").capitalize()), 3, True
    if re.fullmatch(r"sys/gpu\d+_util", key):
        return "gpu_util", "GPU utilization (%)", 4, False
    if re.fullmatch(r"sys/gpu\d+_mem_mb", key):
        return "gpu_mem", "GPU memory (MB)", 5, False
    if key == "sys/rss_mb":
        return "rss", "CPU memory, resident (MB)", 6, False
    if key == "train/grad_norm":
        return "grad_norm", "Gradient norm", 7, True
    if prefix == "train":
        return f"train:{name}", f"Training {name.replace('_', ' ')}", 8, True
    return key, key, 9, prefix != "sys"


def curve_label(key: str) -> str:
    if key == "train/loss":
        return "train"
    if key == "val/loss":
        return "validation"
    gpu = re.fullmatch(r"sys/gpu(\d+)_\w+", key)
    if gpu:
        return f"GPU {gpu.group(1)}"
    return key


def curve_color(key: str, index: int) -> str:
    if key.startswith("val/"):
        return PALETTE[1]
    if key.startswith("train/"):
        return PALETTE[0]
    return PALETTE[(index + 2) % len(PALETTE)]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def set_state(widget: QWidget, name: str, value: str) -> None:
    """A dynamic property the stylesheet selects on, re-polished so the change shows."""
    if widget.property(name) != value:
        widget.setProperty(name, value)
        widget.style().unpolish(widget)
        widget.style().polish(widget)


class RunMonitor(QWidget):
    stop_requested = Signal(object)  # LiveRun
    kill_requested = Signal(object)
    resume_requested = Signal(object)
    clone_requested = Signal(dict)  # the run's spec, for the form

    def __init__(self, live: LiveRun, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runMonitor")
        self.live = live
        self.plots: dict[str, MetricPlot] = {}  # by group id
        self._order: list[tuple[int, str]] = []
        self._seen_version = -1
        self._log_seen = 0  # absolute number of log lines shown
        self._build()
        live.status_changed.connect(self._on_status)
        self.refresh()

    def _on_status(self, _status: str) -> None:
        self._seen_version = -1  # a status change shows at once, not at the next tick
        self.refresh()

    # ------------------------------------------------------------ building

    def _build(self) -> None:
        self.title = QLabel(objectName="pageTitle")
        self.run_id = QLabel(objectName="subtle")
        self.kind = QLabel(objectName="kindChip")
        self.badge = QLabel(objectName="statusBadge")
        self.stop_button = QPushButton("Stop", objectName="stopButton")
        self.stop_button.setToolTip("Stop gracefully: save a checkpoint, mark the run stopped (SIGTERM)")
        self.kill_button = QPushButton("Kill", objectName="killButton")
        self.kill_button.setToolTip("End the process now, without a checkpoint (SIGKILL)")
        self.resume_button = QPushButton("Resume", objectName="resumeButton")
        self.resume_button.setToolTip("Continue from the last checkpoint")
        self.clone_button = QPushButton("Clone settings", objectName="cloneButton")
        self.clone_button.setToolTip("Open this run's spec in the run form")
        self.stop_button.clicked.connect(lambda: self.stop_requested.emit(self.live))
        self.kill_button.clicked.connect(lambda: self.kill_requested.emit(self.live))
        self.resume_button.clicked.connect(lambda: self.resume_requested.emit(self.live))
        self.clone_button.clicked.connect(
            lambda: self.live.spec and self.clone_requested.emit(self.live.spec)
        )
        top = QHBoxLayout()
        top.setSpacing(10)
        for w in (self.title, self.run_id, self.kind, self.badge):
            top.addWidget(w)
        top.addStretch(1)
        for b in (self.clone_button, self.resume_button, self.stop_button, self.kill_button):
            top.addWidget(b)

        self.progress = QProgressBar(objectName="runProgress", textVisible=False)
        self.progress.setRange(0, 1000)
        self.progress.setFixedHeight(6)
        self.facts = QLabel(objectName="runFacts")
        self.facts.setTextFormat(Qt.TextFormat.RichText)
        self.error = QLabel(objectName="errorBanner", wordWrap=True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()

        header = QFrame(objectName="monitorHeader")
        hl = QVBoxLayout(header)
        hl.setContentsMargins(20, 12, 20, 10)
        hl.setSpacing(8)
        hl.addLayout(top)
        hl.addWidget(self.progress)
        hl.addWidget(self.facts)
        hl.addWidget(self.error)

        # view options, shared by every plot of the run
        self.smoothing = QSlider(Qt.Orientation.Horizontal, objectName="smoothing")
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(int(DEFAULT_SMOOTHING * 100))
        self.smoothing.setFixedWidth(160)
        self.smoothing.setToolTip(
            "Exponential moving average, debiased; the raw curve stays visible behind it"
        )
        self.smoothing_value = QLabel(objectName="subtle")
        self.log_y = QCheckBox("Log scale", objectName="logScale")
        self.log_y.setToolTip("Logarithmic y axis on every plot")
        reset = QPushButton("Fit all", objectName="fitPlots")
        reset.setToolTip("Zoom every plot out to all of its data")
        self.smoothing.valueChanged.connect(self._apply_view_options)
        self.log_y.toggled.connect(self._apply_view_options)
        reset.clicked.connect(self._fit_all)
        options = QHBoxLayout()
        options.setContentsMargins(20, 6, 20, 2)
        options.setSpacing(8)
        options.addWidget(QLabel("Smoothing", objectName="fieldLabel"))
        options.addWidget(self.smoothing)
        options.addWidget(self.smoothing_value)
        options.addSpacing(16)
        options.addWidget(self.log_y)
        options.addSpacing(8)
        options.addWidget(reset)
        options.addStretch(1)
        self.empty = QLabel("Waiting for the first metrics…", objectName="subtle")
        options.addWidget(self.empty)

        grid_host = QWidget(objectName="plotGrid")
        self.grid = QGridLayout(grid_host)
        self.grid.setContentsMargins(16, 6, 16, 12)
        self.grid.setSpacing(12)
        scroll = QScrollArea(objectName="plotScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(grid_host)

        self.console = QPlainTextEdit(objectName="logConsole", readOnly=True)
        self.console.setMaximumBlockCount(LOG_SHOWN)
        self.console.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.console.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        log_box = QWidget()
        ll = QVBoxLayout(log_box)
        ll.setContentsMargins(16, 4, 16, 10)
        ll.setSpacing(4)
        ll.addWidget(QLabel("LOG", objectName="groupTitle"))
        ll.addWidget(self.console, 1)

        split = QSplitter(Qt.Orientation.Vertical, objectName="monitorSplit")
        split.addWidget(scroll)
        split.addWidget(log_box)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([640, 180])
        split.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(header)
        layout.addLayout(options)
        layout.addWidget(split, 1)
        self._apply_view_options()

    # ------------------------------------------------------------ updating

    def refresh(self) -> None:
        """Bring the view up to date with the run (called by the area's timer)."""
        live = self.live
        if live.version != self._seen_version:
            self._seen_version = live.version
            for key in list(live.series):
                self._ensure_curve(key)
            self._update_header()
            self._append_logs()
        elif live.live:
            self._update_facts()  # elapsed and ETA tick between events
        for plot in self.plots.values():
            plot.refresh()

    def _ensure_curve(self, key: str) -> None:
        group = plot_group(key)
        if group is None:
            return
        gid, title, order, smooth = group
        plot = self.plots.get(gid)
        if plot is None:
            plot = MetricPlot(title)
            plot.setMinimumHeight(230)
            plot.set_smoothing(self._smoothing_weight())
            plot.set_log_y(self.log_y.isChecked())
            self.plots[gid] = plot
            self._order.append((order, gid))
            self._order.sort()
            self._relayout()
            self.empty.hide()
        if not plot.has_curve(key):
            plot.add_curve(
                key,
                curve_label(key),
                curve_color(key, len(plot.keys())),
                buffer=self.live.series[key],
                smooth=smooth,
            )

    def _relayout(self) -> None:
        for _order, gid in self._order:
            self.grid.removeWidget(self.plots[gid])
        for i, (_order, gid) in enumerate(self._order):
            self.grid.addWidget(self.plots[gid], i // COLUMNS, i % COLUMNS)

    def _update_header(self) -> None:
        live = self.live
        self.title.setText(live.name)
        self.run_id.setText(f"#{live.run_id}" if live.run_id is not None else "starting…")
        self.kind.setText(live.kind)
        self.badge.setText(live.status)
        set_state(self.badge, "status", live.status)
        self.stop_button.setEnabled(live.status in ("starting", "running"))
        self.kill_button.setEnabled(live.live)
        self.resume_button.setEnabled(live.status in RESUMABLE and live.run_id is not None)
        self.clone_button.setEnabled(bool(live.spec))
        error = (live.error or "").strip()
        if error and live.status in ("failed", "crashed"):
            lines = error.splitlines()
            shown = lines[-1] if len(lines) > 1 else error  # a traceback: its last line says it
            self.error.setText(f"<b>{live.status.capitalize()}:</b> {html.escape(shown)}")
            self.error.setToolTip(error)
            self.error.show()
        else:
            self.error.hide()
        self._update_facts()

    def _update_facts(self) -> None:
        live = self.live
        fraction = live.fraction()
        self.progress.setValue(int((fraction or 0) * 1000))
        set_state(self.progress, "status", live.status)
        sub = theme.current().subtext
        parts = []
        if live.total_steps:
            parts.append(f"step <b>{live.step:,}</b> / {live.total_steps:,}")
        elif live.step:
            parts.append(f"step <b>{live.step:,}</b>")
        if live.epoch is not None:
            parts.append(f"epoch <b>{live.epoch:.2f}</b>")
        if fraction is not None:
            parts.append(f"{fraction:.0%}")
        parts.append(f"elapsed <b>{duration(live.elapsed())}</b>")
        eta = live.eta()
        if live.live and eta is not None:
            parts.append(
                f"ETA <b>{duration(eta)}</b> (at {time.strftime('%H:%M', time.localtime(time.time() + eta))})"
            )
        rate = live.series.get("perf/samples_per_s")
        if rate is not None and rate.n:
            parts.append(f"{format_value(float(rate.y[rate.n - 1]))} samples/s")
        head = live.headline()
        if head and not head[0].startswith("train/"):
            parts.append(f"{head[0]} <b>{format_value(head[1])}</b>")
        self.facts.setText(f"<span style='color:{sub}'>" + " &nbsp;·&nbsp; ".join(parts) + "</span>")

    def _append_logs(self) -> None:
        live = self.live
        total = live.logs_dropped + len(live.logs)
        new = total - self._log_seen
        if new <= 0:
            return
        lines = live.logs[-min(new, LOG_SHOWN) :]
        self._log_seen = total
        t = theme.current()
        colors = {"error": t.error, "warning": "#c28a0c", "stderr": t.subtext, "app": t.accent}
        chunks = []
        for line in lines:
            stamp = time.strftime("%H:%M:%S", time.localtime(line.t))
            color = colors.get(line.level)
            text = html.escape(line.text)
            level = f"{line.level:<7}".replace(" ", "&nbsp;")
            body = f"<span style='color:{t.subtext}'>{stamp}&nbsp;{level}</span> " + (
                f"<span style='color:{color}'>{text}</span>" if color else text
            )
            chunks.append(body)
        at_end = self.console.verticalScrollBar().value() >= self.console.verticalScrollBar().maximum() - 4
        self.console.appendHtml("<br>".join(chunks))
        if at_end:
            self.console.moveCursor(QTextCursor.MoveOperation.End)
            self.console.ensureCursorVisible()

    # ------------------------------------------------------------ view options

    def _smoothing_weight(self) -> float:
        return self.smoothing.value() / 100

    def _apply_view_options(self, *_args) -> None:
        w = self._smoothing_weight()
        self.smoothing_value.setText(f"{w:.2f}" if w else "off")
        for plot in self.plots.values():
            plot.set_smoothing(w)
            plot.set_log_y(self.log_y.isChecked())
            plot.refresh()

    def _fit_all(self) -> None:
        for plot in self.plots.values():
            plot.auto_range()
            plot.refresh()
