"""The Runs area: configure a run, start it in the background, watch it, stop or resume it.

Left, the list of runs (live ones with sparkline and progress, the queue, finished and past
runs); right, the run form or the selected run's monitor. One QTimer (~10 Hz) redraws the
visible monitor and the list with whatever arrived since the last tick.

Public slots for the rest of the app: `set_model_provider` (the designer's graph), `open_spec`
(a run's spec into the form — the Experiments browser's "clone"), `follow_run`, and for closing
the window `live_runs`, `stop_all` and `confirm_close`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.runs.form import RunForm
from app.runs.launcher import RunLauncher
from app.runs.live import LiveRun
from app.runs.monitor import RunMonitor
from app.runs.run_list import ENTRY_ROLE, Entry, RunListModel, RunListView
from app.runs.spec_model import RunSpecModel
from app.runs.style import stylesheet
from engine.store import RESUMABLE

TICK_MS = 100  # the one redraw timer: ~10 Hz
HISTORY = 25  # past runs listed


class RunsArea(QWidget):
    def __init__(self, db_path: Path | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runsArea")
        if db_path is None:
            from engine.store import default_db_path

            db_path = default_db_path()
        self.db_path = Path(db_path)
        self.launcher = RunLauncher(self.db_path, self)
        self.model = RunSpecModel(self)
        self.model.taken_names = self._recent_names
        self.form = RunForm(self.model, self.launcher.completed_runs)
        self.form.db_path = self.db_path  # where the LR finder records its sweeps
        self.monitors: dict[int, RunMonitor] = {}  # id(LiveRun) → its monitor
        self._list_state: tuple = ()
        self._closed = False

        self._build()
        self._apply_theme(theme.current())
        theme.changed().connect(self._apply_theme)  # a bound slot: disconnected when the area goes

        self.launcher.run_added.connect(self._on_run_added)
        self.launcher.run_finished.connect(self._on_run_finished)
        self.launcher.queue_changed.connect(self._rebuild_list)
        self.form.start_requested.connect(self.start)
        self.form.queue_requested.connect(self.enqueue)
        self.form.sweep_requested.connect(self.start_sweep)

        self.clock = QTimer(self, interval=TICK_MS)
        self.clock.timeout.connect(self._tick)
        self.launcher.reattach()
        self._rebuild_list()
        if self.launcher.crashed_while_away:
            names = ", ".join(r.title for r in self.launcher.crashed_while_away[:3])
            more = len(self.launcher.crashed_while_away) - 3
            self.notice.setText(
                f"{len(self.launcher.crashed_while_away)} run(s) ended without reporting while Trainbench was "
                f"closed and are marked crashed: {names}{f' and {more} more' if more > 0 else ''}."
            )
            self.notice.show()
        live = self.launcher.live_runs()
        if live:
            self.show_run(live[0])

    # ------------------------------------------------------------ building

    def _apply_theme(self, t: theme.Theme) -> None:
        self.setStyleSheet(stylesheet(t))

    def _build(self) -> None:
        sidebar = QWidget(objectName="runsSidebar")
        title = QLabel("Runs", objectName="sidebarTitle")
        self.new_button = QPushButton("New run", objectName="newRunButton")
        self.new_button.setToolTip("Configure a run from scratch, with the designer's model")
        self.new_button.clicked.connect(self.new_run)
        head = QHBoxLayout()
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(self.new_button)
        self.notice = QLabel(objectName="notice", wordWrap=True)
        self.notice.hide()
        self.queue_state = QLabel(objectName="queueState", wordWrap=True)
        self.queue_toggle = QPushButton(objectName="queueToggle")
        self.queue_toggle.clicked.connect(
            lambda: self.launcher.set_queue_paused(not self.launcher.queue_paused)
        )
        queue_row = QHBoxLayout()
        queue_row.addWidget(self.queue_state, 1)
        queue_row.addWidget(self.queue_toggle)
        self.queue_bar = QWidget()
        self.queue_bar.setLayout(queue_row)
        queue_row.setContentsMargins(0, 0, 0, 0)
        self.queue_bar.hide()

        self.list_model = RunListModel(self)
        self.list = RunListView()
        self.list.setModel(self.list_model)
        self.list.selectionModel().currentChanged.connect(self._on_current)
        self.list.customContextMenuRequested.connect(self._context_menu)
        side = QVBoxLayout(sidebar)
        side.setContentsMargins(12, 12, 6, 8)
        side.setSpacing(8)
        side.addLayout(head)
        side.addWidget(self.notice)
        side.addWidget(self.queue_bar)
        side.addWidget(self.list, 1)
        self.empty_list = QLabel(
            "No runs yet. Set one up on the right and press Start run; it is listed here as it goes.",
            objectName="subtle",
            wordWrap=True,
        )
        self.empty_list.hide()
        side.insertWidget(side.indexOf(self.list), self.empty_list)

        self.pages = QStackedWidget(objectName="runPages")
        self.pages.addWidget(self.form)

        split = QSplitter(Qt.Orientation.Horizontal, objectName="runsSplit")
        split.addWidget(sidebar)
        split.addWidget(self.pages)
        split.setStretchFactor(1, 1)
        split.setSizes([300, 1100])
        split.setChildrenCollapsible(False)
        sidebar.setMinimumWidth(240)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ------------------------------------------------------------ public slots

    def set_model_provider(self, provider: Callable[[], dict]) -> None:
        """Where "the designer's model" comes from: a callable returning the graph as a dict."""
        self.model.model_provider = provider
        self.model.refresh_model()

    def new_run(self) -> None:
        """A fresh form: the default spec with the designer's model, named after it."""
        self.form.start_new()
        self.show_form()

    def open_spec(self, spec: dict) -> None:
        """Show a spec (a run to clone, say) in the run form."""
        self.model.replace(spec)
        self.show_form()
        self._bring_forward()

    def follow_run(self, run_id: int) -> LiveRun:
        """Show a run's monitor: live if it is running (here or in another process), else its record."""
        live = self.launcher.open_run(run_id)
        self.show_run(live)
        self._bring_forward()
        return live

    def start(self, spec: dict) -> LiveRun:
        live = self.launcher.start(spec)
        self.show_run(live)
        return live

    def start_sweep(self, spec: dict) -> None:
        """A sweep runs as its own engine process; its window follows it (its trials are runs:
        Experiments lists them under it). Promote best opens the best trial here."""
        from app.sweeps.launch import SweepWindow

        window = SweepWindow(self.db_path, self)
        window.setWindowFlag(Qt.WindowType.Window)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.promote_requested.connect(self.open_spec)
        window.open_run_requested.connect(self.follow_run)
        window.start(spec)
        window.show()

    def enqueue(self, spec: dict) -> None:
        self.launcher.enqueue(spec)

    def live_runs(self) -> list[LiveRun]:
        return self.launcher.live_runs()

    def stop_all(self) -> None:
        self.launcher.stop_all()

    def confirm_close(self) -> bool:
        """Before the window closes: with runs live, ask whether they keep running in the
        background or stop. Returns False when the user cancels the close."""
        if self._closed:
            return True
        live = self.live_runs()
        if live:
            choice = self.ask_close_choice(live)
            if choice == "cancel":
                return False
            if choice == "stop":
                self.launcher.stop_all()
        self.shutdown()
        return True

    def ask_close_choice(self, live: list[LiveRun]) -> str:
        """'keep', 'stop' or 'cancel', from a dialog."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Runs are still going")
        lines = "".join(
            f"<li>{r.title} — {r.status}"
            + (f", step {r.step:,} of {r.total_steps:,}" if r.total_steps else "")
            + "</li>"
            for r in live[:6]
        )
        queued = len(self.launcher.queue)
        box.setText(
            f"<b>{len(live)} run{'s are' if len(live) > 1 else ' is'} still going.</b><ul>{lines}</ul>"
        )
        them, each = ("them", "each saves") if len(live) > 1 else ("it", "it saves")
        box.setInformativeText(
            f"Keep {them} running in the background? Trainbench reattaches to {them} the next time it opens. "
            f"Or stop {them} now: {each} a checkpoint, so it can be resumed later."
            + (
                f"\n{queued} queued run{' waits' if queued == 1 else 's wait'} until Trainbench is opened again."
                if queued
                else ""
            )
        )
        keep = box.addButton("Keep running", QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton(f"Stop {them}", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)
        box.exec()
        clicked = box.clickedButton()
        return "keep" if clicked is keep else "stop" if clicked is stop else "cancel"

    def shutdown(self) -> None:
        """The window goes away: runs live on in their processes; background jobs finish."""
        if self._closed:
            return
        self._closed = True
        self.clock.stop()
        self.launcher.release_all()
        self.form.shutdown()
        from app.runs.hardware import DeviceDetector

        DeviceDetector.shared().shutdown()

    # ------------------------------------------------------------ pages

    def show_form(self) -> None:
        self.pages.setCurrentWidget(self.form)
        self.list.selectionModel().clearCurrentIndex()
        self.list.clearSelection()

    def show_run(self, live: LiveRun) -> RunMonitor:
        monitor = self.monitors.get(id(live))
        if monitor is None:
            monitor = RunMonitor(live, self.db_path)
            monitor.stop_requested.connect(self.launcher.stop)
            monitor.kill_requested.connect(self.launcher.kill)
            monitor.resume_requested.connect(self.resume)
            monitor.clone_requested.connect(self.open_spec)
            self.monitors[id(live)] = monitor
            self.pages.addWidget(monitor)
        self.pages.setCurrentWidget(monitor)
        monitor.refresh()
        self._select(Entry("live", live=live).key, notify=False)
        return monitor

    def resume(self, live: LiveRun) -> None:
        if live.status in RESUMABLE:
            self.launcher.resume(live)
            self._rebuild_list()

    def current_monitor(self) -> RunMonitor | None:
        page = self.pages.currentWidget()
        return page if isinstance(page, RunMonitor) else None

    def _bring_forward(self) -> None:
        """Make this area the current tab of the window's tab widget."""
        w = self.parentWidget()
        while w is not None and not isinstance(w, QTabWidget):
            w = w.parentWidget()
        if w is not None:
            w.setCurrentWidget(self)

    # ------------------------------------------------------------ the list

    def _on_run_added(self, live: LiveRun) -> None:
        live.status_changed.connect(lambda _s: self._rebuild_list())
        self._rebuild_list()

    def _on_run_finished(self, live: LiveRun) -> None:
        self._rebuild_list()
        self.form.refresh_runs()

    def _rebuild_list(self) -> None:
        launcher = self.launcher
        entries: list[Entry] = []
        live = launcher.live_runs()
        if live:
            entries.append(Entry("header", "Running"))
            entries += [Entry("live", live=r) for r in live]
        if launcher.queue:
            entries.append(Entry("header", "Queue · paused" if launcher.queue_paused else "Queue"))
            entries += [Entry("queued", queued=q) for q in launcher.queue]
        finished = [r for r in reversed(launcher.runs) if not r.live]
        if finished:
            entries.append(Entry("header", "This session"))
            entries += [Entry("stored", live=r) for r in finished]
        shown = {r.run_id for r in launcher.runs}
        try:
            history = [row for row in launcher.recent_rows(HISTORY) if row["id"] not in shown]
        except Exception:  # noqa: BLE001 - a busy or damaged store must not break the list
            history = []
        if history:
            entries.append(Entry("header", "History"))
            entries += [Entry("stored", row=row) for row in history]
        current = self._current_entry()
        self.list_model.set_entries(entries)
        self.empty_list.setVisible(not entries)
        if current is not None:
            self._select(current.key, notify=False)
        n = len(launcher.queue)
        self.queue_bar.setVisible(bool(n))
        self.queue_state.setText(
            f"{n} queued" + (" — paused" if launcher.queue_paused else " — starts as runs end")
        )
        self.queue_toggle.setText("Resume queue" if launcher.queue_paused else "Pause queue")

    def _recent_names(self) -> list[str]:
        """Names a new run should not repeat: this session's runs and the store's recent ones."""
        names = [r.name for r in self.launcher.runs]
        try:
            names += [row["name"] for row in self.launcher.recent_rows(HISTORY)]
        except Exception:  # noqa: BLE001 - a busy or damaged store: the name may repeat, no more
            pass
        return names

    def _current_entry(self) -> Entry | None:
        index = self.list.currentIndex()
        return index.data(ENTRY_ROLE) if index.isValid() else None

    def _select(self, key, notify: bool = True) -> None:
        row = self.list_model.row_of(key)
        if row < 0:
            return
        index = self.list_model.index(row)
        sel = self.list.selectionModel()
        if not notify:
            sel.blockSignals(True)
        sel.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        if not notify:
            sel.blockSignals(False)
            self.list.viewport().update()

    def _on_current(self, index, _previous) -> None:
        entry: Entry | None = index.data(ENTRY_ROLE) if index.isValid() else None
        if entry is None or entry.kind in ("header", "queued"):
            return
        if entry.live is not None:
            live = entry.live
        else:
            try:
                live = self.launcher.open_run(entry.row["id"])
            except Exception as err:  # noqa: BLE001 - a run deleted meanwhile, say
                QMessageBox.warning(self, "Cannot open the run", str(err))
                return
            QTimer.singleShot(0, self._rebuild_list)
        self.show_run(live)

    def _context_menu(self, pos) -> None:
        index = self.list.indexAt(pos)
        entry: Entry | None = index.data(ENTRY_ROLE) if index.isValid() else None
        if entry is None or entry.kind == "header":
            return
        menu = QMenu(self)
        if entry.queued is not None:
            item = entry.queued
            menu.addAction("Start now", lambda: self.show_run(self.launcher.start_queued(item)))
            menu.addAction("Remove from queue", lambda: self.launcher.remove_queued(item))
        else:
            live = entry.live or self.launcher.open_run(entry.row["id"])
            menu.addAction("Open", lambda: self.show_run(live))
            if live.live:
                menu.addAction("Stop", lambda: self.launcher.stop(live))
                menu.addAction("Kill", lambda: self.launcher.kill(live))
            if live.status in RESUMABLE and live.run_id is not None:
                menu.addAction("Resume", lambda: self.resume(live))
            if live.spec:
                menu.addAction("Clone settings into the form", lambda: self.open_spec(live.spec))
        menu.exec(self.list.viewport().mapToGlobal(pos))

    # ------------------------------------------------------------ the clock

    def _tick(self) -> None:
        monitor = self.current_monitor()
        if monitor is not None:
            monitor.refresh()
        state = tuple((id(r), r.version) for r in self.launcher.runs if r.live)
        if state != self._list_state:
            self._list_state = state
            self.list.viewport().update()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._closed:
            self.clock.start()

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.clock.stop()
