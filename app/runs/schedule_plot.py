"""The small learning-rate plot beside the schedule section: the engine's own schedule
(`engine.schedule.lr_factor`, torch-free) over the run's steps, so what you see is what the run
will do. At most 1,500 points: computed as you type, on the UI thread, in about a millisecond.

The plot sits in the scrolling form, so it neither zooms nor pans: the wheel over it scrolls
the page, and the view always shows the whole schedule.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.fields import wheel_scrolls_page
from app.plots import MetricPlot
from engine.schedule import lr_factor

MAX_POINTS = 1500
ASSUMED_STEPS_PER_EPOCH = 100  # before the data preview says how many samples there are
PLOT_HEIGHT = 260


def total_steps(train: dict, train_samples: int | None, processes: int = 1) -> tuple[int, bool]:
    """(optimizer steps of the run, whether the number is exact) — as `engine.tasks.train`
    counts them: max_steps, else epochs × (samples // global batch)."""
    if train.get("max_steps"):
        return int(train["max_steps"]), True
    epochs = int(train.get("epochs") or 1)
    if train_samples:
        global_batch = int(train.get("batch_size") or 1) * int(train.get("grad_accum") or 1) * processes
        return epochs * max(1, train_samples // global_batch), True
    return epochs * ASSUMED_STEPS_PER_EPOCH, False


def lr_curve(schedule: dict, lr: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.unique(np.linspace(0, max(steps - 1, 0), min(steps, MAX_POINTS)).astype(int))
    warm = int(schedule.get("warmup_steps") or 0)
    if 0 < warm < steps:  # the warm-up's corner, exactly
        xs = np.union1d(xs, [warm - 1, warm])
    return xs + 1, np.array([lr * lr_factor(schedule, int(s), steps) for s in xs])


class SchedulePlot(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = MetricPlot("Learning rate")
        self.plot.add_curve("lr", "learning rate", smooth=False)
        # a glance at the schedule, not a plot to study: about as tall as the fields beside it
        # (a pyqtgraph plot asks for ~500 px)
        self.plot.setMinimumHeight(150)
        self.plot.setMaximumHeight(PLOT_HEIGHT)
        self.plot.plot_item.setMouseEnabled(x=False, y=False)
        wheel_scrolls_page(self.plot.view)
        self.note = QLabel(objectName="subtle", wordWrap=True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)
        self._key = None

    def request(self, schedule: dict | None, lr, train: dict, train_samples: int | None) -> None:
        if schedule is None or not isinstance(lr, int | float):
            self.note.setText("Fix the optimizer and schedule fields to see the schedule.")
            return
        steps, exact = total_steps(train, train_samples)
        key = (repr(sorted(schedule.items())), lr, steps)
        where = (
            "" if exact else f" (assuming {ASSUMED_STEPS_PER_EPOCH} steps per epoch until the data is loaded)"
        )
        self.note.setText(f"{steps:,} optimizer steps{where}")
        if key != self._key:
            self._key = key
            self.plot.set_data("lr", *lr_curve(schedule, float(lr), steps))
            self.plot.auto_range()
            self.plot.refresh()
