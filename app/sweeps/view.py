"""`SweepView`: one sweep, live while it runs — the trials table (state, values, objective,
pruned-at step), the best objective so far, each trial's objective curve with pruned trials
marked where they were judged, the objective against each parameter, the parameters'
importance (fANOVA) and the parallel coordinates coloured by the objective.

Everything is read from the run store (read-only) through `engine.sweep.results`; the plots
are the app's own: `MetricPlot` for curves, the Experiments tab's `TradeoffScatter` and
`ParallelCoordinates` over a `RunCatalog` limited to the sweep's trials. Only the table and
the best-so-far curve are built at once; a tab's plot is drawn when the tab is first shown,
and importance is computed off the UI thread, so a sweep of thousands of trials opens at
once (tests/benchmarks/bench_sweep.py view).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.experiments.catalog import RunCatalog
from app.experiments.parallel import ParallelCoordinates
from app.experiments.scatter import TradeoffScatter
from app.plots import MetricPlot
from app.runs.background import LatestJob
from app.sweeps.trials import STATE_COLORS, TrialsModel
from engine import format as fmt
from engine.store import HOST, RESUMABLE, RunStore
from engine.sweep.results import SweepResults, importance, load_sweep, promoted_spec

REFRESH_MS = 1000  # while the sweep runs
MAX_CURVES = 100  # trial curves overlaid: the best ones and the newest, never thousands
TABS = ("Best so far", "Curves", "Objective vs parameters", "Importance", "Parallel coordinates")


class _ParamScatter(TradeoffScatter):
    """The objective against one parameter: the Experiments scatter with its axes preset."""

    def __init__(self, catalog: RunCatalog, x: str, y: str, parent=None):
        super().__init__(catalog, parent)
        self.preset = (x, y)

    def rebuild(self) -> None:
        super().rebuild()
        self.set_fields(*self.preset)


class SweepView(QWidget):
    promote_requested = Signal(dict)  # the best trial's spec, for the run form
    open_run_requested = Signal(int)  # a trial's run, double-clicked
    resume_requested = Signal(int)  # the sweep, stopped or crashed

    def __init__(self, db_path: str | Path, sweep_id: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sweepView")
        self.store = RunStore(db_path, readonly=True)
        self.sweep_id = sweep_id
        self.results: SweepResults = load_sweep(self.store, sweep_id)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._importance = LatestJob(self.pool, self)
        self._importance.finished.connect(self._show_importance)
        self._importance_for: int = -1  # complete trials the shown importance counts
        self._built: set[str] = set()
        self.catalog: RunCatalog | None = None

        self.title = QLabel(objectName="pageTitle")
        self.summary = QLabel(objectName="subtle", wordWrap=True)
        self.promote = QPushButton("Promote best", objectName="promoteBest")
        self.promote.setToolTip("Open the best trial's spec in the run form, to train it on its own")
        self.promote.clicked.connect(self._promote)
        self.stop = QPushButton("Stop", objectName="stopSweep")
        self.stop.setToolTip(
            "Stop the sweep and its trials, each with a checkpoint; Resume finishes the budget"
        )
        self.stop.clicked.connect(self._stop)
        self.resume = QPushButton("Resume", objectName="resumeSweep")
        self.resume.setToolTip(
            "Continue the sweep until its budget is spent (trials that were running go on)"
        )
        self.resume.clicked.connect(lambda: self.resume_requested.emit(self.sweep_id))
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.stop)
        head.addWidget(self.resume)
        head.addWidget(self.promote)

        self.model = TrialsModel(self)
        self.table = QTableView(objectName="sweepTrials")
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.doubleClicked.connect(lambda i: self.open_run_requested.emit(self.model.run_id(i.row())))

        self.tabs = QTabWidget(objectName="sweepTabs", documentMode=True)
        self.best_plot = MetricPlot("Best objective so far", x_mode="step")
        self.best_plot.add_curve("trials", "each trial", "#8a94a3", smooth=False)
        self.best_plot.add_curve("best", "best so far", "#2e9e5b", smooth=False)
        self.best_plot.plot_item.setLabel("bottom", "trial")
        self.tabs.addTab(self.best_plot, TABS[0])
        for name in TABS[1:]:
            self.tabs.addTab(QWidget(), name)
        self.tabs.currentChanged.connect(lambda _i: self._build_current())

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.tabs)
        split.setSizes([300, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addLayout(head)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)

        self.timer = QTimer(self, interval=REFRESH_MS)
        self.timer.timeout.connect(self.reload)
        self._show()

    # ------------------------------------------------------------ data

    def reload(self) -> None:
        """Re-read the sweep (while it runs); the shown tab follows."""
        self.results = load_sweep(self.store, self.sweep_id)
        self._built = {TABS[0]}  # the shown tab redraws now, the others when next shown
        self._show()

    def _show(self) -> None:
        r = self.results
        sweep = r.sweep
        self.title.setText(f"Sweep #{self.sweep_id} {sweep['name']}")
        counts = r.counts()
        done = sum(counts.get(s, 0) for s in ("complete", "pruned", "failed"))
        parts = [
            sweep["status"],
            f"{done}/{sweep['summary'].get('trials', r.section.get('trials') or '?')} trials",
        ]
        parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in ("complete",)]
        best = r.best()
        if best is not None:
            parts.append(
                f"best {r.metric} {fmt.value(best.objective)} (trial {best.number}, run #{best.run_id})"
            )
        params = ", ".join(f"{p}: {next(iter(d))} {d[next(iter(d))]}" for p, d in r.section["params"].items())
        self.summary.setText(
            " · ".join(parts) + f"\n{r.section['sampler']} sampler, {r.section['pruner']} pruner; {params}"
        )
        self.promote.setEnabled(best is not None)
        here = sweep["host"] == HOST and sweep["pid"] is not None
        self.stop.setVisible(r.live)
        self.stop.setEnabled(r.live and here)
        self.resume.setVisible(sweep["status"] in RESUMABLE)
        self.model.set_results(r)
        numbers = [t.number for t in r.trials if t.objective is not None]
        values = [t.objective for t in r.trials if t.objective is not None]
        self.best_plot.set_data("trials", numbers, values)
        self.best_plot.set_data("best", *r.best_so_far())
        self.best_plot.refresh()
        if r.live and not self.timer.isActive():
            self.timer.start()
        elif not r.live:
            self.timer.stop()
        self._build_current()

    def _build_current(self) -> None:
        name = self.tabs.tabText(self.tabs.currentIndex())
        if name in self._built:
            return
        self._built.add(name)
        if name == "Curves":
            self._replace_tab(name, self._curves())
        elif name == "Objective vs parameters":
            self._replace_tab(name, self._scatters())
        elif name == "Parallel coordinates":
            self._replace_tab(name, self._parallel())
        elif name == "Importance":
            if not isinstance(self.tabs.widget(self.tabs.currentIndex()), QLabel):
                self._replace_tab(name, QLabel("Computing…", objectName="sweepImportance", wordWrap=True))
            self._request_importance()

    def _replace_tab(self, name: str, widget: QWidget) -> None:
        index = TABS.index(name)
        old = self.tabs.widget(index)
        self.tabs.blockSignals(True)
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, widget, name)
        self.tabs.setCurrentIndex(index)
        self.tabs.blockSignals(False)
        old.deleteLater()

    # ------------------------------------------------------------ tabs

    def _curves(self) -> QWidget:
        """Each trial's objective over its steps; a pruned trial ends in a cross at the step
        where it was judged (`MAX_CURVES` of them: the best, then the newest)."""
        r = self.results
        plot = MetricPlot(f"{r.metric} of each trial", legend=False)
        done = sorted(
            (t for t in r.trials if t.objective is not None),
            key=lambda t: -t.objective if r.maximize else t.objective,
        )
        chosen = {t.number: t for t in done[: MAX_CURVES // 2]}
        for t in reversed(r.trials):
            if len(chosen) >= MAX_CURVES:
                break
            chosen.setdefault(t.number, t)
        marks_x, marks_y = [], []
        for t in sorted(chosen.values(), key=lambda t: t.number):
            steps, values, _ = self.store.series(t.run_id, r.metric)
            if not len(steps):
                continue
            color = STATE_COLORS.get(t.state, "#8a94a3")
            plot.add_curve(t.number, f"trial {t.number}", color, smooth=False)
            plot.set_data(t.number, steps, values)
            if t.pruned_step is not None:
                at = values[steps <= t.pruned_step]
                marks_x.append(t.pruned_step)
                marks_y.append(float(at[-1]) if len(at) else float(values[0]))
        marks = pg.ScatterPlotItem(
            marks_x, marks_y, symbol="x", size=11, pen=pg.mkPen(STATE_COLORS["pruned"], width=2)
        )
        marks.setZValue(1000)
        plot.plot_item.addItem(marks)
        plot.pruned_marks = marks
        plot.refresh()
        note = QLabel(
            f"{len(chosen)} of {len(r.trials)} trials; ✕ marks where a pruned trial was stopped",
            objectName="subtle",
        )
        return _stacked(plot, note)

    def _trial_catalog(self) -> tuple[RunCatalog, list[int]]:
        if self.catalog is None:
            self.catalog = RunCatalog(self.store)
        else:
            self.catalog.load()
        ids = {t.run_id for t in self.results.trials}
        rows = [i for i, rid in enumerate(self.catalog.ids) if rid in ids]
        return self.catalog, rows

    def _scatters(self) -> QWidget:
        catalog, rows = self._trial_catalog()
        host = QWidget()
        grid = QGridLayout(host)
        grid.setContentsMargins(0, 4, 0, 0)
        self.scatters = []
        for i, p in enumerate(self.results.params):
            scatter = _ParamScatter(catalog, f"spec:{p}", "summary:objective")
            scatter.show_front.setChecked(False)
            scatter.set_rows(rows)
            self.scatters.append(scatter)
            grid.addWidget(scatter, i // 2, i % 2)
        return host

    def _parallel(self) -> QWidget:
        catalog, rows = self._trial_catalog()
        self.parallel = ParallelCoordinates(catalog)
        self.parallel.metric_column = "summary:objective"
        self.parallel.columns = [f"spec:{p}" for p in self.results.params]
        self.parallel.set_rows(rows)
        return self.parallel

    def _request_importance(self) -> None:
        results = self.results
        complete = results.counts().get("complete", 0)
        if complete != self._importance_for:
            self._importance_for = complete
            self._importance.submit(lambda: importance(results))

    def _show_importance(self, scores, error) -> None:
        label = self.tabs.widget(TABS.index("Importance"))
        if not isinstance(label, QLabel):
            return
        if error is not None:
            label.setText(f"No importance: {error}")
        elif not scores:
            label.setText("Importance needs two complete trials or more.")
        else:
            width = 40
            lines = [
                f"<tr><td>{p}</td><td style='font-family:monospace'>{'█' * max(1, round(v * width))}</td>"
                f"<td align='right'>{v:.0%}</td></tr>"
                for p, v in scores.items()
            ]
            label.setText(
                f"<p>Share of the objective's variance each parameter explains (fANOVA, "
                f"{self._importance_for} complete trials):</p><table cellspacing='6'>{''.join(lines)}</table>"
            )
        label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

    # ------------------------------------------------------------ actions

    def _stop(self) -> None:
        """SIGTERM to the sweep's process: it stops its trials gracefully and records `stopped`."""
        pid = self.results.sweep["pid"]
        if pid and self.results.sweep["host"] == HOST:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.stop.setEnabled(False)

    def _promote(self) -> None:
        spec = promoted_spec(self.store, self.results)
        if spec is not None:
            self.promote_requested.emit(spec)

    def closeEvent(self, event) -> None:
        self.timer.stop()
        self.pool.clear()
        self.pool.waitForDone(5000)
        self.store.close()
        super().closeEvent(event)


def _stacked(*widgets: QWidget) -> QWidget:
    host = QWidget()
    layout = QVBoxLayout(host)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    for w in widgets:
        layout.addWidget(w, 1 if isinstance(w, MetricPlot) else 0)
    return host
