"""`RunMonitor`: one run, live — status, progress, its curves and its log.

Plots appear as metric keys appear, grouped (losses together, validation metrics, learning
rate, throughput, memory, GPU), so whatever a task logs is shown. Nothing here redraws on an
event: the Runs area's one timer calls `refresh()` about ten times a second, which redraws only
what changed since the last tick.

Elapsed time and ETA are the run's own (`LiveRun.elapsed`, `eta`): its whole active life as the
engine counts it, across stops and resumes, never this window's idea of when it started. The
log wraps long lines under their text, so timestamps stay in one column and nothing scrolls
sideways.
"""

from __future__ import annotations

import html
import re
import time

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QFontMetricsF,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QTabWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.elided import ElidedLabel
from app.plots import DENSE_POINTS, PALETTE, MetricPlot, noisy
from app.runs.diagnostics import RunDiagnostics
from app.runs.live import LiveRun
from engine import format as fmt
from engine.perf import SOURCE_LABELS, peak_source
from engine.store import RESUMABLE

LOG_SHOWN = 5000  # lines kept in the console (the run's log file has them all)
COLUMNS = 2
DEFAULT_SMOOTHING = 0.6

_VAL_TITLES = {
    "accuracy": "Validation accuracy",
    "perplexity": "Validation perplexity",
    "rmse": "Validation RMSE",
}
_PERF_TITLES = {
    "samples_per_s": "Throughput (samples/s)",
    "tokens_per_s": "Throughput (tokens/s)",
    "mfu": "MFU (model FLOPs utilization)",
}


def plot_group(key: str) -> tuple[str, str, int, bool] | None:
    """(group id, title, order, smoothed) of the plot a metric key is drawn in; None: not plotted.
    Smoothed: per-step signals only (`app.plots.noisy`); evaluations average the whole
    validation split and a schedule is exact, so smoothing them would only delay them."""
    group = _group(key)
    return None if group is None else (*group, noisy(key))


def _group(key: str) -> tuple[str, str, int] | None:
    prefix, _, name = key.partition("/")
    if key == "train/epoch":
        return None  # shown in the progress line
    if prefix == "health":
        return None  # the Health tab's (app.runs.health_panel)
    if key in ("train/loss", "val/loss"):
        return "loss", "Loss", 0
    if prefix == "val":
        return f"val:{name}", _VAL_TITLES.get(name, f"Validation {name.replace('_', ' ')}"), 1
    if key == "train/lr":
        return "lr", "Learning rate", 2
    if key.startswith("perf/gpu_mem_"):
        return "perf:gpu_mem", "GPU memory, this process (MB)", 3
    if prefix == "perf":
        return f"perf:{name}", _PERF_TITLES.get(name, name.replace("_", " ").capitalize()), 3
    if re.fullmatch(r"sys/gpu\d+_util", key):
        return "gpu_util", "GPU utilization (%)", 4
    if re.fullmatch(r"sys/gpu\d+_mem_mb", key):
        return "gpu_mem", "GPU memory (MB)", 5
    if key == "sys/rss_mb":
        return "rss", "CPU memory, resident (MB)", 6
    if key == "train/grad_norm":
        return "grad_norm", "Gradient norm", 7
    if prefix == "train":
        return f"train:{name}", f"Training {name.replace('_', ' ')}", 8
    return key, key, 9


def curve_label(key: str) -> str:
    if key == "train/loss":
        return "train"
    if key == "val/loss":
        return "validation"
    gpu = re.fullmatch(r"sys/gpu(\d+)_\w+", key)
    if gpu:
        return f"GPU {gpu.group(1)}"
    allocator = re.fullmatch(r"perf/gpu_mem_(\w+)_mb", key)
    if allocator:
        return allocator.group(1)  # allocated, reserved, peak
    return key


def curve_color(key: str, index: int) -> str:
    if key.startswith("val/"):
        return PALETTE[1]
    if key.startswith("train/"):
        return PALETTE[0]
    return PALETTE[(index + 2) % len(PALETTE)]


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

    def __init__(self, live: LiveRun, db_path=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runMonitor")
        self.live = live
        self.diagnostics = RunDiagnostics(live, db_path, self)  # live control, Health tab, change markers
        self.plots: dict[str, MetricPlot] = {}  # by group id
        self._order: list[tuple[int, str]] = []
        self._seen_version = -1
        self._log_seen = 0  # absolute number of log lines shown
        self._peak_label: str | None = None
        self._build()
        live.status_changed.connect(self._on_status)
        self.refresh()

    def _on_status(self, _status: str) -> None:
        self._seen_version = -1  # a status change shows at once, not at the next tick
        self.refresh()

    # ------------------------------------------------------------ building

    def _build(self) -> None:
        self.title = ElidedLabel(objectName="pageTitle")  # a long name must not widen the window
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
        self.facts = QLabel(objectName="runFacts", wordWrap=True)  # wraps between facts when narrow
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
        hl.addWidget(self.diagnostics.control_bar)
        hl.addWidget(self.error)

        # view options, shared by every plot of the run
        self.smoothing = QSlider(Qt.Orientation.Horizontal, objectName="smoothing")
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(int(DEFAULT_SMOOTHING * 100))
        self.smoothing.setFixedWidth(160)
        self.smoothing.setToolTip(
            "Exponential moving average, debiased; the raw curve stays visible behind it."
            f" Series of fewer than {DENSE_POINTS} points are drawn raw, point by point."
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

        self.console = LogConsole()
        log_box = QWidget()
        ll = QVBoxLayout(log_box)
        ll.setContentsMargins(16, 4, 16, 10)
        ll.setSpacing(4)
        ll.addWidget(QLabel("LOG", objectName="groupTitle"))
        ll.addWidget(self.console, 1)

        self.tabs = QTabWidget(objectName="monitorTabs", documentMode=True)
        self.tabs.addTab(scroll, "Metrics")
        self.tabs.addTab(self.diagnostics.health, "Health")
        self.tabs.currentChanged.connect(lambda _i: self.refresh())
        split = QSplitter(Qt.Orientation.Vertical, objectName="monitorSplit")
        split.addWidget(self.tabs)
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
        self.diagnostics.refresh(self.plots.values())

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
        self.title.set_full_text(live.name)
        self.title.setToolTip(live.name)
        self.run_id.setText(f"#{live.run_id}" if live.run_id is not None else "starting…")
        self.kind.setText(live.kind)
        self.badge.setText(live.status)
        set_state(self.badge, "status", live.status)
        self.stop_button.setEnabled(live.status in ("starting", "running"))
        self.kill_button.setEnabled(live.live)
        self.resume_button.setEnabled(live.status in RESUMABLE and live.run_id is not None)
        self.clone_button.setEnabled(bool(live.spec))
        self.console.setPlaceholderText(
            "The run's log appears here as the run writes it."
            if live.live
            else "No log lines: this run's run.log is missing or empty."
        )
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
        parts.append(f"elapsed <b>{fmt.clock(live.elapsed())}</b>")
        eta = live.eta()
        if live.live and eta is not None:
            parts.append(
                f"ETA <b>{fmt.clock(eta)}</b> (at {time.strftime('%H:%M', time.localtime(time.time() + eta))})"
            )
        rate = live.series.get("perf/samples_per_s")
        if rate is not None and rate.n:
            parts.append(f"{fmt.value(float(rate.y[rate.n - 1]))} samples/s")
        mfu = live.series.get("perf/mfu")
        if mfu is not None and mfu.n:
            parts.append(f"MFU <b>{fmt.utilization(float(mfu.y[mfu.n - 1]))}</b> {self._mfu_label()}")
        head = live.headline()
        if head and not head[0].startswith("train/"):
            key = head[0].replace("/", "/\u2060")  # a word joiner: Qt breaks after a slash even in nowrap
            parts.append(f"{key} <b>{fmt.value(head[1])}</b>")
        facts = " &nbsp;·&nbsp; ".join(f"<span style='white-space:nowrap'>{part}</span>" for part in parts)
        self.facts.setText(f"<span style='color:{sub}'>{facts}</span>")

    def _mfu_label(self) -> str:
        """What the MFU is measured against ('vs measured peak' on a CPU, 'vs datasheet peak' on a
        GPU): the run's summary says once it has one; until then the engine's rule for the spec
        (torch-free), asked once."""
        said = self.live.summary.get("mfu_peak")
        if said:
            return said
        if self._peak_label is None and self.live.spec:
            self._peak_label = SOURCE_LABELS[peak_source(self.live.spec)]
        return self._peak_label or ""

    def _append_logs(self) -> None:
        live = self.live
        total = live.logs_dropped + len(live.logs)
        new = total - self._log_seen
        if new <= 0:
            return
        self._log_seen = total
        self.console.add_lines(live.logs[-min(new, LOG_SHOWN) :])

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


class LogConsole(QTextEdit):
    """The run's log: one paragraph per line, `HH:MM:SS level` in a column of its own and long
    messages wrapped under their text (a hanging indent), so nothing scrolls sideways and every
    line's time stays in view. At most LOG_SHOWN lines (the run's log file has them all)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, objectName="logConsole", readOnly=True)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.setFont(font)
        self.document().setMaximumBlockCount(LOG_SHOWN)
        self.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)  # long paths too
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange and not self.document().isEmpty():
            # a stylesheet set the font after lines were added: indent them for the new one
            cursor = QTextCursor(self.document())
            cursor.select(QTextCursor.SelectionType.Document)
            cursor.mergeBlockFormat(self._paragraph())

    def _paragraph(self) -> QTextBlockFormat:
        """A hanging indent as wide as a line's time and level in the current font."""
        indent = QFontMetricsF(self.font()).horizontalAdvance("00:00:00 warning ")
        block = QTextBlockFormat()
        block.setLeftMargin(indent)
        block.setTextIndent(-indent)
        return block

    def add_lines(self, lines) -> None:
        """Append LogLines, keeping the view at the end if it was there."""
        t = theme.current()
        colors = {"error": t.error, "warning": "#c28a0c", "stderr": t.subtext, "app": t.accent}
        stamp = QTextCharFormat()
        stamp.setForeground(QColor(t.subtext))
        text_formats = {}
        paragraph = self._paragraph()
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        for line in lines:
            if self.document().isEmpty():
                cursor.setBlockFormat(paragraph)
            else:
                cursor.insertBlock(paragraph)
            cursor.insertText(time.strftime("%H:%M:%S ", time.localtime(line.t)) + f"{line.level:<8}", stamp)
            if line.level not in text_formats:
                text_formats[line.level] = QTextCharFormat()
                if line.level in colors:
                    text_formats[line.level].setForeground(QColor(colors[line.level]))
            cursor.insertText(line.text, text_formats[line.level])
        cursor.endEditBlock()
        if at_end:
            bar.setValue(bar.maximum())
