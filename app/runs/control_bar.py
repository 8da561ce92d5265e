"""The monitor's live-control row: pause or continue a running run, set or scale its learning
rate, change its length, evaluate or checkpoint it now — and, once a run has a checkpoint,
open its evaluation and explanations.

Every button sends a command with `engine.control.send` (the same function as `trainbench
control`), which appends it to the run's control file and returns at once; the run applies it
within a few steps and records it, and this row learns of it from the run's events
(`RunEventsFeed`), so it shows the same state for a run it started and one it reattached to.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from app.runs.live import LiveRun
from app.runs.run_events import RunEventsFeed
from engine.control import describe, send
from engine.errors import TrainbenchError


class ControlBar(QWidget):
    def __init__(self, live: LiveRun, feed: RunEventsFeed, parent: QWidget | None = None):
        super().__init__(parent, objectName="controlBar")
        self.live, self.feed = live, feed
        self._sent: str | None = None  # the command sent last, until the run records it
        self._seen = -1
        self.pause_button = QPushButton("Pause", objectName="pauseButton")
        self.pause_button.setToolTip(
            "Hold the run between two steps (no checkpoint needed); press again to continue"
        )
        self.lr_edit = QLineEdit(objectName="lrEdit", placeholderText="e.g. 0.001")
        self.lr_edit.setFixedWidth(90)
        self.lr_edit.setToolTip("The learning rate of the next step; the schedule keeps its shape from there")
        self.lr_button = QPushButton("Set LR", objectName="setLrButton")
        self.half_button = QPushButton("LR ×½", objectName="halveLrButton")
        self.double_button = QPushButton("LR ×2", objectName="doubleLrButton")
        self.steps_edit = QLineEdit(objectName="stepsEdit", placeholderText="total steps")
        self.steps_edit.setFixedWidth(90)
        self.steps_edit.setToolTip("End the run at this step (the schedule is recomputed for the new length)")
        self.steps_button = QPushButton("Set length", objectName="setStepsButton")
        self.eval_button = QPushButton("Evaluate now", objectName="evalNowButton")
        self.checkpoint_button = QPushButton("Checkpoint now", objectName="checkpointNowButton")
        self.explain_button = QPushButton("Evaluate && explain…", objectName="explainButton")
        self.explain_button.setToolTip(
            "Confusion matrix, per-class scores, most confused samples, saliency and attention maps "
            "from the run's newest checkpoint (computed by the engine, `trainbench explain`)"
        )
        self.state = QLabel(objectName="subtle")
        self.pause_button.clicked.connect(lambda: self.command("resume" if self.paused else "pause"))
        self.lr_button.clicked.connect(lambda: self.command(f"lr={self.lr_edit.text().strip()}"))
        self.lr_edit.returnPressed.connect(self.lr_button.click)
        self.half_button.clicked.connect(lambda: self.command("lr*=0.5"))
        self.double_button.clicked.connect(lambda: self.command("lr*=2"))
        self.steps_button.clicked.connect(lambda: self.command(f"steps={self.steps_edit.text().strip()}"))
        self.steps_edit.returnPressed.connect(self.steps_button.click)
        self.eval_button.clicked.connect(lambda: self.command("eval"))
        self.checkpoint_button.clicked.connect(lambda: self.command("checkpoint"))
        self.explain_button.clicked.connect(self.open_evaluation)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self.live_widgets = [
            self.pause_button,
            self.lr_edit,
            self.lr_button,
            self.half_button,
            self.double_button,
            self.steps_edit,
            self.steps_button,
            self.eval_button,
            self.checkpoint_button,
        ]
        for w in self.live_widgets:
            row.addWidget(w)
        row.addWidget(self.state, 1)
        row.addWidget(self.explain_button)
        self.dialog = None
        self.refresh()

    @property
    def paused(self) -> bool:
        return self.feed.paused()

    def command(self, text: str) -> bool:
        """Send `text` to the run; False (with the reason shown) when it cannot go."""
        store = self.feed.store
        if self.live.run_id is None or store is None:
            return False
        try:
            send(store, self.live.run_id, text, wait_s=0)
        except TrainbenchError as err:
            self.state.setText(str(err))
            self.state.setToolTip(str(err))
            return False
        self._sent = text
        self.state.setText(f"sent {text}…")
        self.feed.poll(force=True)
        return True

    def refresh(self) -> None:
        """Follow the run's state and events (called on the monitor's tick)."""
        running = self.live.status == "running" and self.live.run_id is not None
        for w in self.live_widgets:
            w.setVisible(self.live.live)
            w.setEnabled(running)
        self.explain_button.setVisible(not self.live.live or bool(self.live.checkpoints))
        if self.feed.version == self._seen:
            return
        self._seen = self.feed.version
        self.pause_button.setText("Continue" if self.paused else "Pause")
        changes = self.feed.of_kind("control")
        if changes:
            last = changes[-1]
            self._sent = None
            self.state.setText(f"step {last['step']:,}: {describe(last['data'])}")
            self.state.setToolTip(
                "\n".join(f"step {e['step']:,}: {describe(e['data'])}" for e in changes[-20:])
            )

    def open_evaluation(self) -> None:
        from app.experiments.evaluation import EvaluationDialog

        if self.live.run_id is None or self.feed.db_path is None:
            return
        self.dialog = EvaluationDialog(Path(self.feed.db_path), self.live.run_id, self)
        self.dialog.show()
