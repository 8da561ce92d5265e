"""`train.freeze` as checkboxes on the model's node list, with trainable and frozen counts.

One row per node that has parameters: checked means frozen (no gradient; a frozen norm keeps
its statistics). A Repeat's row also takes how many of its first copies are frozen, the usual
"freeze the lower layers". The counts come from the engine's analysis (`engine.freeze.counts`),
so the GUI shows what the run will log, without torch. The widget holds nothing of its own:
it shows the spec's list and emits the edited one.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QGridLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from engine import format as fmt
from engine import freeze
from engine.graph import Graph, analyze

MAX_ROWS = 200  # a list longer than this is edited as text (the JSON tab); the counts still show


class FreezeList(QWidget):
    edited = Signal(list)  # the new train.freeze

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("freezeList")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(4)
        self.title = QLabel("Freeze (no gradient)", objectName="fieldLabel")
        self.title.setToolTip(
            "train.freeze: checked nodes keep their weights (a frozen norm also keeps its statistics); "
            "for a Repeat, its first copies"
        )
        layout.addWidget(self.title)
        self.rows_box = QWidget()
        self.grid = QGridLayout(self.rows_box)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(8)
        self.grid.setVerticalSpacing(2)
        layout.addWidget(self.rows_box)
        self.counts = QLabel(objectName="freezeCounts")
        layout.addWidget(self.counts)
        self.problems = QLabel(objectName="fieldError", wordWrap=True)
        self.problems.hide()
        layout.addWidget(self.problems)
        self.boxes: dict[str, QCheckBox] = {}
        self.copies: dict[str, QSpinBox] = {}
        self._shape: list[tuple[str, str, int, int | None]] = []
        self._freeze: list = []

    def show_model(self, graph_doc: dict | None, freeze_value, problems: list[str] = ()) -> None:
        """Rows for `graph_doc`'s nodes, ticked as `freeze_value` says."""
        listed = freeze_value if isinstance(freeze_value, list) else []
        analysis = None
        if graph_doc is not None:
            try:
                analysis = analyze(Graph.from_dict(graph_doc))
            except Exception:  # noqa: BLE001 - the model's own problems are shown above
                analysis = None
        shape = []
        if analysis is not None:
            for nid in analysis.order:
                info = analysis.nodes[nid]
                copies = info.params.get("times") if info.body is not None else None
                if info.n_params or copies:
                    shape.append((nid, info.op, info.n_params, copies))
        if shape != self._shape:
            self._rebuild(shape[:MAX_ROWS])
            self._shape = shape
        self._freeze = list(listed)
        selected = {p[0]: p[1] for p in map(freeze.parse, listed) if p is not None}
        for nid, box in self.boxes.items():
            box.blockSignals(True)
            box.setChecked(nid in selected)
            box.blockSignals(False)
            spin = self.copies.get(nid)
            if spin is not None:
                spin.blockSignals(True)
                spin.setValue(selected.get(nid) or spin.maximum())
                spin.setEnabled(nid in selected)
                spin.blockSignals(False)
        self.setVisible(bool(shape))
        if analysis is not None:
            trainable, frozen = freeze.counts(analysis, listed)
            self.counts.setText(f"Trainable {fmt.count(trainable)} · frozen {fmt.count(frozen)} parameters")
        self.problems.setText("\n".join(problems))
        self.problems.setVisible(bool(problems))

    def _rebuild(self, shape) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self.boxes, self.copies = {}, {}
        for row, (nid, op, n_params, copies) in enumerate(shape):
            box = QCheckBox(f"{nid}", objectName=f"freeze:{nid}")
            box.setToolTip(f"{nid} ({op}, {n_params:,} parameters)")
            box.toggled.connect(lambda _on: self._emit())
            self.boxes[nid] = box
            self.grid.addWidget(box, row, 0)
            self.grid.addWidget(QLabel(f"{op} · {fmt.count(n_params)}", objectName="subtle"), row, 1)
            if copies:
                spin = QSpinBox(objectName=f"freezeCopies:{nid}")
                spin.setRange(1, copies)
                spin.setValue(copies)
                spin.setSuffix(f" of {copies} copies")
                spin.setToolTip("freeze the first copies only (the lower layers)")
                spin.valueChanged.connect(lambda _v: self._emit())
                self.copies[nid] = spin
                self.grid.addWidget(spin, row, 2)
        self.grid.setColumnStretch(3, 1)

    def _emit(self) -> None:
        """The list the boxes say, in the model's order; entries no row shows are kept."""
        shown = set(self.boxes)
        kept = [e for e in self._freeze if (freeze.parse(e) or ("",))[0] not in shown]
        out = []
        for nid, box in self.boxes.items():
            if not box.isChecked():
                continue
            spin = self.copies.get(nid)
            out.append(nid if spin is None or spin.value() == spin.maximum() else f"{nid}[:{spin.value()}]")
        self.edited.emit(kept + out)
