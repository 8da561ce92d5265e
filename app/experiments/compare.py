"""Side-by-side comparison of the selected runs: one plot per metric with the runs overlaid in
their colours (the app's one `MetricPlot`, so curves are smoothed, marked and ranged as in the
live monitor), a shared legend that hides and shows runs, the x axis by step, epoch, wall-clock
or relative time, and the hyperparameter table.

Reads the store directly (series are numpy arrays, ~2 ms per 100,000 points) on the UI thread:
twenty runs of 100,000 points per curve open within a second (see
tests/benchmarks/bench_experiments.py), so a worker thread would only add latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QScrollArea,
    QSlider,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.experiments.colors import run_color
from app.experiments.hparams import CompareTableModel
from app.experiments.legend import RunLegend
from app.plots import DENSE_POINTS, MetricPlot, noisy
from app.plots.axes import X_MODES
from engine import capsule
from engine.compare import compare_table
from engine.errors import StoreError

EPOCH_KEY = "train/epoch"
#: metrics first in this order, then the rest by group and name; train/epoch is an x-axis
ORDER = ("train/loss", "val/loss", "val/accuracy", "val/perplexity", "val/rmse")
GROUPS = ("train/", "val/", "perf/", "sys/")
PLOT_WIDTH = 520  # the grid puts as many columns as fit this width
PLOT_HEIGHT = 240
#: the table's field column, and its run columns: this wide when there is room, down to the
#: narrower width so that five runs fit a 1024-pixel window without sideways scrolling
FIELD_WIDTH = 220
RUN_WIDTH, RUN_MIN_WIDTH = 160, 96


@dataclass
class RunSeries:
    """One run's points for one metric, as the store holds them, and x in each x-axis mode."""

    run_id: int
    name: str
    steps: np.ndarray
    values: np.ndarray
    walls: np.ndarray
    start: float | None = None  # the run's start (relative time counts from here)
    epochs: np.ndarray | None = None  # fractional epoch at each step, when the run logged train/epoch

    @property
    def label(self) -> str:
        return f"{self.name} #{self.run_id}"

    def x_for(self, mode: str) -> np.ndarray:
        if mode == "epoch" and self.epochs is not None:
            return self.epochs
        if mode == "wall":
            return self.walls
        if mode == "relative":
            start = self.start if self.start is not None else (self.walls[0] if len(self.walls) else 0.0)
            return self.walls - start
        return self.steps.astype(np.float64)


def metric_order(key: str) -> tuple:
    if key in ORDER:
        return (0, ORDER.index(key), key)
    group = next((i for i, g in enumerate(GROUPS) if key.startswith(g)), len(GROUPS))
    return (1 + group, 0, key)


class CompareView(QWidget):
    """Plots and table for `set_runs(ids)`; everything below reads the store it is given."""

    def __init__(self, store, parent=None):
        super().__init__(parent)
        self.setObjectName("compareView")
        self.store = store
        self.run_ids: list[int] = []
        self.runs: list[dict] = []
        self.plots: dict[str, MetricPlot] = {}
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        self._series: dict[str, list[RunSeries]] = {}

        self.x_axis = QComboBox(objectName="xAxis")
        for mode, title in X_MODES.items():
            self.x_axis.addItem(title, mode)
        self.smoothing = QSlider(Qt.Orientation.Horizontal, objectName="smoothing")
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setFixedWidth(140)
        self.smoothing.setToolTip(
            "Exponential moving average, as TensorBoard smooths; the raw curve stays faint behind."
            f" Series of fewer than {DENSE_POINTS} points (evaluations) are drawn raw, point by"
            " point: smoothing a few values would shift them and could reorder the runs."
        )
        self.smoothing_label = QLabel("0.60", objectName="subtle")
        self.smoothing_label.setFixedWidth(32)
        self.log_y = QCheckBox("Log y", objectName="logY")
        self.metric_filter = QLineEdit(objectName="metricFilter", placeholderText="Filter metrics…")
        self.metric_filter.setClearButtonEnabled(True)
        self.metric_filter.setMaximumWidth(220)
        self.export_plots = QToolButton(text="Export plots", objectName="exportPlots")
        self.export_plots.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_plots)
        menu.addAction("As PNG images…", lambda: self.export_plots_to(None, "png"))
        menu.addAction("As SVG drawings…", lambda: self.export_plots_to(None, "svg"))
        self.export_plots.setMenu(menu)

        bar = QHBoxLayout()
        bar.setSpacing(8)
        bar.addWidget(QLabel("X axis"))
        bar.addWidget(self.x_axis)
        bar.addSpacing(8)
        bar.addWidget(QLabel("Smoothing"))
        bar.addWidget(self.smoothing)
        bar.addWidget(self.smoothing_label)
        bar.addSpacing(8)
        bar.addWidget(self.log_y)
        bar.addStretch(1)
        bar.addWidget(self.metric_filter)
        bar.addWidget(self.export_plots)

        self.legend = RunLegend()
        self.grid_host = QWidget(objectName="plotGrid")
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(8)
        self.plot_scroll = QScrollArea(objectName="plotScroll")
        self.plot_scroll.setWidgetResizable(True)
        self.plot_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.plot_scroll.setWidget(self.grid_host)

        self.table_model = CompareTableModel(self)
        self.table = QTableView(objectName="compareTable")
        self.table.setModel(self.table_model)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ContiguousSelection)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.viewport().installEventFilter(self)
        # a run's name too long for its column keeps its end and id (a header does not elide by default)
        self.table.horizontalHeader().setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.only_diff = QCheckBox("Only differences", objectName="onlyDifferences", checked=True)
        self.export_table = QToolButton(text="Export CSV…", objectName="exportCompareTable")
        self.export_table.clicked.connect(lambda: self.export_table_to(None))
        table_bar = QHBoxLayout()
        table_bar.addWidget(QLabel("HYPERPARAMETERS AND RESULTS", objectName="section"), 1)
        table_bar.addWidget(self.only_diff)
        table_bar.addWidget(self.export_table)
        table_panel = QWidget()
        tl = QVBoxLayout(table_panel)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addLayout(table_bar)
        tl.addWidget(self.table)

        plots_panel = QWidget()
        pl = QVBoxLayout(plots_panel)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.setSpacing(4)
        pl.addWidget(self.legend)
        pl.addWidget(self.plot_scroll, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(plots_panel)
        self.splitter.addWidget(table_panel)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([640, 260])
        self.splitter.setChildrenCollapsible(False)
        self.empty = QLabel(
            "Select two or more runs in Browse to compare them.",
            objectName="subtle",
            alignment=Qt.AlignmentFlag.AlignCenter,
        )

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(bar)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.empty, 1)

        self.x_axis.currentIndexChanged.connect(lambda _i: self.set_x_mode(self.x_axis.currentData()))
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.log_y.toggled.connect(self._log_y_toggled)
        self.metric_filter.textChanged.connect(lambda _t: self._layout_plots())
        self.legend.toggled.connect(self._run_toggled)
        self.only_diff.toggled.connect(self.table_model.set_only_differences)
        self._columns = 0
        self._summaries: dict[int, dict] = {}
        self._relayout = QTimer(self, singleShot=True, interval=50)
        self._relayout.timeout.connect(self._layout_plots)
        self._populate_timer = QTimer(self, singleShot=True, interval=0)
        self._populate_timer.timeout.connect(self._populate_visible)
        self.plot_scroll.verticalScrollBar().valueChanged.connect(lambda _v: self._populate_timer.start())
        self.set_runs([])

    # ------------------------------------------------------------ runs

    def set_runs(self, run_ids: list[int]) -> None:
        """Show these runs (in this order). Unknown ids are dropped."""
        runs = []
        for rid in run_ids:
            try:
                runs.append(self.store.get_run(rid))
            except StoreError:
                continue
        self.runs = runs
        self.run_ids = [r["id"] for r in runs]
        self._epochs = {}
        has = bool(runs)
        self.splitter.setVisible(has)
        self.empty.setVisible(not has)
        self.legend.set_runs(runs)
        table = compare_table(self.store, self.run_ids, show_all=True) if runs else None
        if table is not None:  # a different torch is a reason for a different curve
            table["environment"] = capsule.compare_environment(self.store, self.run_ids)
        self.table_model.set_table(table)
        self._fit_table_columns()
        self._load_series()

    def refresh(self) -> None:
        """Re-read the same runs (new points from a run still going)."""
        self.set_runs(self.run_ids)

    def _load_series(self) -> None:
        """Make one plot per metric; each reads its points when it first comes into view."""
        self._summaries = {rid: self.store.series_summaries(rid) for rid in self.run_ids}
        keys = sorted({k for s in self._summaries.values() for k in s if k != EPOCH_KEY}, key=metric_order)
        self._series = {}
        for key in list(self.plots):
            if key not in keys:
                self.plots.pop(key).deleteLater()
        for key in keys:
            plot = self.plots.get(key)
            if plot is None:
                plot = self.plots[key] = MetricPlot(key, legend=False)
                plot.setMinimumHeight(PLOT_HEIGHT)
                plot.hover_changed.connect(lambda x, src=plot: self._hovered(src, x))
            plot.clear()
        self.plots = {k: self.plots[k] for k in keys}
        self._layout_plots()

    def _populate_visible(self) -> None:
        """Load the plots now in the scroll area's view (and only those)."""
        if not self.isVisible() or not self.plots:
            return
        self.grid.activate()
        view = self.plot_scroll.viewport().rect().translated(0, self.plot_scroll.verticalScrollBar().value())
        for key, plot in self.visible_plots().items():
            if key not in self._series and plot.geometry().intersects(view):
                self.populate(key)

    def populate(self, key: str) -> None:
        """Read `key` for every run and hand the curves to its plot."""
        if key in self._series or key not in self.plots:
            return
        mode = self.x_axis.currentData()
        series = []
        for run in self.runs:
            if key in self._summaries.get(run["id"], {}):
                steps, values, walls = self.store.series(run["id"], key)
                series.append(
                    RunSeries(run["id"], run["name"], steps, values, walls, start=run["started_at"])
                )
        self._series[key] = series
        if mode == "epoch":
            self._load_epochs()
            self._attach_epochs(series)
        plot = self.plots[key]
        plot.set_smoothing(self.weight)
        plot.set_x_mode(mode)
        plot.set_log_y(self.log_y.isChecked())
        hidden = set(self.legend.chips) - set(self.legend.visible_ids())
        for s in series:
            plot.add_curve(s.run_id, s.label, run_color(s.run_id), smooth=noisy(key))
            plot.set_data(s.run_id, s.x_for(mode), s.values)
            plot.set_curve_visible(s.run_id, s.run_id not in hidden)
        plot.refresh()

    def populate_all(self) -> None:
        for key in self.plots:
            self.populate(key)

    def _load_epochs(self) -> None:
        for rid in self.run_ids:
            if rid not in self._epochs:
                steps, epochs, _ = self.store.series(rid, EPOCH_KEY)
                self._epochs[rid] = (steps, epochs) if len(steps) else None

    def _attach_epochs(self, series: list[RunSeries]) -> None:
        """Each point's fractional epoch, interpolated from the run's train/epoch by step."""
        for s in series:
            pair = self._epochs.get(s.run_id)
            if pair is not None and s.epochs is None:
                s.epochs = np.interp(s.steps, pair[0], pair[1])

    # ------------------------------------------------------------ controls

    @property
    def weight(self) -> float:
        return self.smoothing.value() / 100

    def set_x_mode(self, mode: str) -> None:
        if self.x_axis.currentData() != mode:
            self.x_axis.setCurrentIndex(self.x_axis.findData(mode))
            return
        if mode == "epoch":
            self._load_epochs()
            for series in self._series.values():
                self._attach_epochs(series)
        for key, plot in self.plots.items():
            plot.set_x_mode(mode)
            for s in self._series.get(key, ()):
                plot.set_data(s.run_id, s.x_for(mode), s.values)
            plot.auto_range()
            plot.refresh()

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 100:.2f}")
        for plot in self.plots.values():
            plot.set_smoothing(value / 100)
            plot.refresh()

    def _log_y_toggled(self, on: bool) -> None:
        for plot in self.plots.values():
            plot.set_log_y(on)
            plot.refresh()

    def _run_toggled(self, run_id: int, visible: bool) -> None:
        for plot in self.plots.values():
            plot.set_curve_visible(run_id, visible)

    def _hovered(self, source: MetricPlot, x) -> None:
        """The other plots follow the hovered one: the same x, their dots, no readout."""
        for plot in self.plots.values():
            if plot is not source:
                plot.show_hover(x, readout=False)

    # ------------------------------------------------------------ layout

    def visible_plots(self) -> dict[str, MetricPlot]:
        """The plots the metric filter lets through, by metric key."""
        words = self.metric_filter.text().lower().split()
        return {k: p for k, p in self.plots.items() if all(w in k.lower() for w in words)}

    def _layout_plots(self) -> None:
        while self.grid.count():
            self.grid.takeAt(0)
        shown = list(self.visible_plots().values())
        columns = max(1, min(3, self.plot_scroll.viewport().width() // PLOT_WIDTH))
        self._columns = columns
        for plot in self.plots.values():
            plot.setVisible(plot in shown)
        for i, plot in enumerate(shown):
            self.grid.addWidget(plot, i // columns, i % columns)
        for c in range(3):
            self.grid.setColumnStretch(c, 1 if c < columns else 0)
        self._populate_timer.start()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if max(1, min(3, self.plot_scroll.viewport().width() // PLOT_WIDTH)) != self._columns:
            self._relayout.start()
        self._populate_timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._populate_timer.start()

    def eventFilter(self, watched, event) -> bool:
        # the table's own width changes also when its vertical scroll bar comes or goes
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_table_columns()
        return super().eventFilter(watched, event)

    def _fit_table_columns(self) -> None:
        """The run columns share the table's width (the header elides names that do not fit)."""
        header = self.table.horizontalHeader()
        header.resizeSection(0, FIELD_WIDTH)
        runs = self.table_model.columnCount() - 1
        room = self.table.viewport().width() - FIELD_WIDTH
        width = max(RUN_MIN_WIDTH, min(RUN_WIDTH, room // max(1, runs)))
        for i in range(1, runs + 1):
            header.resizeSection(i, width)

    # ------------------------------------------------------------ export

    def export_plots_to(self, folder: str | Path | None, fmt: str = "png") -> list[Path]:
        """One file per plot shown, named after its metric; asks for the folder when None."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, f"Export plots as {fmt.upper()}")
            if not folder:
                return []
        out = []
        for key, plot in self.visible_plots().items():
            self.populate(key)
            path = Path(folder) / f"{key.replace('/', '_')}.{fmt}"
            plot.export(str(path))
            out.append(path)
        return out

    def export_table_to(self, path: str | Path | None) -> Path | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export the comparison table", "comparison.csv", "CSV (*.csv)"
            )
            if not path:
                return None
        self.table_model.export_csv(path)
        return Path(path)
