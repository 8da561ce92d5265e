"""The monitor's Health panel: per-node curves of one health statistic (gradient norm, update
ratio, dead fraction, …) for the nodes the filter keeps, and the warnings the run's health
checks gave (exploding or vanishing gradients, dead units), each naming its node and step.

The curves are the run's own series (`health/<node>/<stat>`, see `engine.health`), drawn from
the LiveRun's buffers by one `MetricPlot`, so they grow live like every other curve; the
warnings come from the run's events in the store. Clicking a warning shows that node alone.
"""

from __future__ import annotations

import fnmatch

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.plots import PALETTE, MetricPlot
from app.runs.live import LiveRun
from app.runs.run_events import RunEventsFeed
from engine.health import split_key

STAT_TITLES = {
    "grad_norm": "Gradient norm",
    "update_ratio": "Update / weight ratio",
    "weight_norm": "Weight norm",
    "act_std": "Activation std",
    "act_mean": "Activation mean",
    "dead_fraction": "Dead fraction",
}
LOG_STATS = {"grad_norm", "update_ratio", "weight_norm"}  # spans orders of magnitude


def node_order(live: LiveRun) -> list[str]:
    """Node ids in the model's order (from the run's spec), for stable colours and lists."""
    model = (live.spec or {}).get("model") or {}
    return [n.get("id") for n in model.get("nodes", []) if isinstance(n, dict)]


def matches(node: str, text: str) -> bool:
    """The node filter: comma-separated words or globs (`conv*`); empty keeps every node."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    return not words or any(
        fnmatch.fnmatch(node, w if any(c in w for c in "*?[") else f"*{w}*") for w in words
    )


class HealthPanel(QWidget):
    def __init__(self, live: LiveRun, feed: RunEventsFeed, parent: QWidget | None = None):
        super().__init__(parent, objectName="healthPanel")
        self.live, self.feed = live, feed
        self.nodes: list[str] = []  # nodes with health series, in model order
        self._seen_version = -1
        self._seen_events = -1
        self.stat = QComboBox(objectName="healthStat")
        for stat, title in STAT_TITLES.items():
            self.stat.addItem(title, stat)
        self.filter = QLineEdit(objectName="healthFilter", placeholderText="filter nodes: conv1, fc*")
        self.filter.setClearButtonEnabled(True)
        self.log_y = QCheckBox("Log scale", objectName="healthLog", checked=True)
        self.plot = MetricPlot("Gradient norm")
        self.plot.setMinimumHeight(260)
        self.empty = QLabel(
            "No health measurements yet: they come every health.every steps (the spec's health section).",
            objectName="subtle",
            wordWrap=True,
        )
        self.warnings = QListWidget(objectName="healthWarnings")
        self.warnings.itemClicked.connect(self._show_warning_node)
        top = QHBoxLayout()
        top.setContentsMargins(16, 6, 16, 0)
        top.addWidget(QLabel("Statistic", objectName="fieldLabel"))
        top.addWidget(self.stat)
        top.addSpacing(12)
        top.addWidget(QLabel("Nodes", objectName="fieldLabel"))
        top.addWidget(self.filter, 1)
        top.addWidget(self.log_y)
        warn_box = QWidget()
        wl = QVBoxLayout(warn_box)
        wl.setContentsMargins(16, 0, 16, 8)
        self.warn_title = QLabel("WARNINGS", objectName="groupTitle")
        wl.addWidget(self.warn_title)
        wl.addWidget(self.warnings)
        plot_box = QWidget()
        pl = QVBoxLayout(plot_box)
        pl.setContentsMargins(16, 0, 16, 0)
        pl.addWidget(self.empty)
        pl.addWidget(self.plot, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(plot_box)
        split.addWidget(warn_box)
        split.setSizes([500, 140])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        self.stat.currentIndexChanged.connect(lambda _i: self._rebuild())
        self.filter.textChanged.connect(lambda _t: self._rebuild())
        self.log_y.toggled.connect(self.plot.set_log_y)
        self.plot.set_log_y(True)
        self.refresh()

    @property
    def statistic(self) -> str:
        return self.stat.currentData()

    def set_statistic(self, stat: str) -> None:
        self.stat.setCurrentIndex(self.stat.findData(stat))

    def shown_nodes(self) -> list[str]:
        return [n for n in self.nodes if matches(n, self.filter.text())]

    def refresh(self) -> None:
        if self.live.version != self._seen_version:
            self._seen_version = self.live.version
            found = {parts[0] for k in self.live.series if (parts := split_key(k))}
            if found - set(self.nodes):
                order = node_order(self.live)
                self.nodes = sorted(found, key=lambda n: (order.index(n) if n in order else len(order), n))
                self._rebuild()
        if self.feed.version != self._seen_events:
            self._seen_events = self.feed.version
            self._list_warnings()
        self.plot.refresh()

    def _rebuild(self) -> None:
        """The plot's curves for the chosen statistic and the nodes the filter keeps."""
        stat = self.statistic
        self.plot.title.setText(STAT_TITLES[stat])
        self.log_y.setChecked(stat in LOG_STATS)
        wanted = {f"health/{n}/{stat}": n for n in self.shown_nodes()}
        for k in self.plot.keys():
            if k not in wanted:
                self.plot.remove_curve(k)
        # colours by the node's place among those with this statistic (not among all nodes, where
        # the ReLUs between two layers gave them the same colour), the same whatever the filter
        having = [n for n in self.nodes if f"health/{n}/{stat}" in self.live.series]
        for k, node in wanted.items():
            buf = self.live.series.get(k)
            if buf is not None and not self.plot.has_curve(k):
                color = PALETTE[having.index(node) % len(PALETTE)]
                self.plot.add_curve(k, node, color, buffer=buf, smooth=False)
        self.empty.setVisible(not self.plot.keys())
        self.plot.auto_range()
        self.plot.refresh(force=True)

    def _list_warnings(self) -> None:
        found = self.feed.of_kind("health")
        self.warnings.clear()
        for e in found:
            item = QListWidgetItem(f"step {e['step']:,} · {e['data'].get('message', '')}")
            item.setData(Qt.ItemDataRole.UserRole, e["data"].get("node"))
            self.warnings.addItem(item)
        self.warn_title.setText(f"WARNINGS ({len(found)})" if found else "WARNINGS — none")

    def _show_warning_node(self, item: QListWidgetItem) -> None:
        node = item.data(Qt.ItemDataRole.UserRole)
        if node:
            self.filter.setText(node)
