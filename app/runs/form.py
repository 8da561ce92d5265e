"""The run setup form, generated from the engine's spec registry (`engine.spec.SECTIONS`).

Every section and field the engine declares gets an editor from the field kit (`app.fields`),
so a field added to the registry appears here with no change to this file: its label is
`Field.title`, its editor follows its kind and traits (a path, a run), its tooltip is its help,
range and `when`, and it is shown while `Field.applies` (or while it is set away from its
default or has a problem, so nothing that matters is hidden). A section named after a task kind
(`prune`, `distill`) is shown for that kind only.

This file is the run form's binder: each edit goes to `RunSpecModel.edit` as (path, raw); each
problem the engine reports appears beside the field its dotted path names, the first one in the
header, and Start stays disabled until the engine accepts the spec.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QBoxLayout,
    QButtonGroup,
    QCheckBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import theme
from app.elided import ElidedLabel
from app.fields import UNSET, ChoiceEditor, FieldEditor, PathEditor, RunPicker, field_tooltip, make_editor
from app.fields.ranges import RangeBinder
from app.runs.background import LatestJob
from app.runs.data_preview import DataPreview, resolve_data_paths
from app.runs.freeze_list import FreezeList
from app.runs.hardware import DeviceDetector, DeviceList, describe_fit, estimate_fit, join_command
from app.runs.schedule_plot import SchedulePlot
from app.runs.script_form import ScriptForm
from app.runs.spec_model import RunSpecModel, field_at, field_path, inherits
from engine import format as fmt
from engine.compare import headline
from engine.errors import TrainbenchError
from engine.fields import Field, check_fields
from engine.jsonfile import read_json
from engine.spec import INHERITED, SECTIONS, TOP_LEVEL

SECTION_TITLES = {
    "data": "Data",
    "task": "Task",
    "optim": "Optimizer",
    "schedule": "Schedule",
    "train": "Training",
    "checkpoint": "Checkpoints",
    "hardware": "Hardware",
    "prune": "Pruning",
    "distill": "Distillation",
}
# Cards: (title, sections side by side, visual beside them). Sections the engine adds later
# get a card of their own after these.
CARDS = (
    ("Data", ("data",), "preview"),
    ("Task", ("task",), None),
    ("Optimizer and schedule", ("optim", "schedule"), "lr"),
    ("Training", ("train", "checkpoint"), None),
    ("Hardware", ("hardware",), "machines"),
)
DEVICE_FIELDS = ("device", "gpus")  # hardware fields drawn by the device checklist
MACHINE_FIELDS = ("nnodes", "node_rank", "rdzv_endpoint", "rdzv_id")  # the "several machines" box
SKIP_TOP = ("schema", "model")
FREEZE = "train.freeze"  # drawn as checkboxes on the model's node list (the model box)
LR_PATH = "optim.lr"  # the LR finder's button sits beside it
HINT = "Focus a field to see what it does. Every value is checked by the engine as you type."
LABEL_WIDTH = 128  # the label column, at least
GRID_WIDTH = 500  # a column of fields; wider screens give the room to the previews
SIDE_BY_SIDE = 900  # below this page width, or where they do not fit, a card's preview goes under its fields


def task_sections() -> list[str]:
    """Sections named after a task kind other than the default (prune, distill): each belongs
    to its kind and is shown for it only."""
    kind = field_at("task.kind")
    if kind is None:
        return []
    return [k for k in kind.choices if k in SECTIONS and k != kind.default]


def section_title(name: str) -> str:
    return SECTION_TITLES.get(name) or name.replace("_", " ").capitalize()


def run_label(row: dict) -> str:
    """How a stored run is offered as a parent or teacher: id, name, kind and headline result."""
    head = headline(row.get("summary") or {})
    result = f" — {head[0].split('/', 1)[-1]} {fmt.value(head[1])}" if head else ""
    return f"#{row['id']} {row['name']} ({row['kind']}){result}"


class _Row:
    """One field of the form: its label and editor, and where the engine's values live."""

    def __init__(self, section: str, f: Field, label: QLabel, editor: FieldEditor):
        self.section, self.field, self.label, self.editor = section, f, label, editor
        self.path = f"{section}.{f.name}" if section else f.name

    def set_visible(self, on: bool) -> None:
        if self.label.isHidden() == on:
            self.label.setVisible(on)
            self.editor.setVisible(on)


class Card(QFrame):
    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("formCard")
        self.title = QLabel(title, objectName="cardTitle")
        self.problems = QLabel(objectName="fieldError", wordWrap=True)
        self.problems.hide()
        self.body = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.body.setSpacing(28)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 16)
        layout.setSpacing(10)
        layout.addWidget(self.title)
        layout.addLayout(self.body)
        layout.addWidget(self.problems)

    def add_grid(self, subtitle: str | None = None) -> QGridLayout:
        host = QWidget()
        host.setMaximumWidth(GRID_WIDTH)
        box = QVBoxLayout(host)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(6)
        if subtitle:
            box.addWidget(QLabel(subtitle.upper(), objectName="groupTitle"))
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(7)
        grid.setColumnMinimumWidth(0, LABEL_WIDTH)
        grid.setColumnStretch(1, 1)
        box.addLayout(grid)
        box.addStretch(1)
        self.body.addWidget(host, 3)
        return grid

    def side_by_side_width(self) -> int:
        """The width the card needs with its parts side by side: their minimum widths, the gaps
        between them, and the card's margins and frame."""
        items = [self.body.itemAt(i) for i in range(self.body.count())]
        parts = [item.minimumSize().width() for item in items if not item.isEmpty()]
        margins = self.layout().contentsMargins()
        gaps = self.body.spacing() * max(0, len(parts) - 1)
        return sum(parts) + gaps + margins.left() + margins.right() + 2 * self.frameWidth()

    def set_side_by_side(self, on: bool) -> None:
        """Fields and previews side by side, or (on a narrow page) one under the other."""
        direction = QBoxLayout.Direction.LeftToRight if on else QBoxLayout.Direction.TopToBottom
        if self.body.direction() != direction:
            self.body.setDirection(direction)

    def show_problems(self, messages: list[str]) -> None:
        self.problems.setText("\n".join(messages))
        self.problems.setVisible(bool(messages))


class RunForm(QWidget):
    start_requested = Signal(dict)  # the normalised spec
    queue_requested = Signal(dict)
    sweep_requested = Signal(dict)  # the normalised spec, with its sweep section

    def __init__(
        self,
        model: RunSpecModel,
        completed_runs: Callable[[], list[dict]] = lambda: [],
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("runForm")
        self.model = model
        self.completed_runs = completed_runs
        self.db_path: Path | None = None  # the run store (the LR finder records its sweeps there)
        # One worker, so jobs run in order: the memory estimate (which imports torch) counts the
        # data set the preview loaded, and two big imports never compete for the GIL.
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.rows: dict[str, _Row] = {}
        self.cards: dict[str, Card] = {}  # by section
        self.paths: list[PathEditor] = []
        self._grids: dict[int, QGridLayout] = {}  # every grid of fields, to align their labels
        self.detector = DeviceDetector.shared()
        self._memory_job = LatestJob(self.pool, self)
        self._memory_job.finished.connect(self._show_fit)
        self.ranges = RangeBinder(model, self)  # each field's ⇆ toggle: a range for a sweep

        self._build_header()
        self.tabs = QTabWidget(objectName="formTabs", documentMode=True)
        self.tabs.addTab(self._build_form(), "Form")
        self.tabs.addTab(self._build_json(), "JSON")
        self.tabs.currentChanged.connect(lambda _i: self._update_json())
        self.hint = QLabel(HINT, objectName="formHint", wordWrap=True)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.script_form = ScriptForm(self.detector)  # "Run a script": its own fields and Start
        self.script_form.start_requested.connect(self.start_requested)
        self.script_form.queue_requested.connect(self.queue_requested)
        self.script_form.hide()
        layout.addWidget(self.header)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.script_form, 1)
        layout.addWidget(self.hint)

        model.changed.connect(self._on_changed)
        model.validated.connect(self._on_validated)
        self.detector.ready.connect(self._on_devices)
        self.preview.loaded.connect(self._on_preview)
        self._on_changed("")
        self._on_validated()

    # ------------------------------------------------------------ building

    def _build_header(self) -> None:
        self.header = QFrame(objectName="formHeader")
        title = QLabel("New run", objectName="pageTitle")
        # "✖ 3 problems" always whole; the first problem beside it, elided to the room left,
        # every problem in the tooltip; a click shows the field the first one is about
        self.status = QLabel(objectName="formStatus")
        self.status_detail = ElidedLabel(objectName="formStatusDetail")
        self.status_detail.setCursor(Qt.CursorShape.PointingHandCursor)
        self.status_detail.clicked.connect(self._reveal_first_problem)
        self.load_button = QPushButton("Load spec…", objectName="loadSpec")
        self.save_button = QPushButton("Save spec…", objectName="saveSpec")
        self.queue_button = QPushButton("Add to queue", objectName="queueButton")
        self.queue_button.setToolTip("Start when the runs going now end (at once when none is)")
        self.start_button = QPushButton("Start run", objectName="startButton")
        self.start_button.setToolTip("Start the run in the background (Ctrl+Return)")
        self.start_button.setShortcut("Ctrl+Return")
        # A spec with ranges is a sweep: one action, standing where Queue and Start do.
        self.sweep_button = QPushButton("Sweep", objectName="sweepButton", visible=False)
        self.sweep_button.setToolTip("Run a sweep over the fields switched to ranges (Ctrl+Return)")
        self.sweep_button.setShortcut("Ctrl+Return")
        self.sweep_button.clicked.connect(lambda: self._submit(self.sweep_requested))
        self.load_button.clicked.connect(self.load_spec)
        self.save_button.clicked.connect(self.save_spec)
        self.start_button.clicked.connect(lambda: self._submit(self.start_requested))
        self.queue_button.clicked.connect(lambda: self._submit(self.queue_requested))
        top = QHBoxLayout()
        top.addWidget(title)
        top.addStretch(1)
        for b in (self.load_button, self.save_button):
            top.addWidget(b)
        top.addSpacing(12)
        top.addWidget(self.queue_button)
        top.addWidget(self.sweep_button)
        top.addWidget(self.start_button)
        # the state on a line of its own, so the first problem has the page's width to be read
        # the mode's switch starts that line: beside the title and the buttons, the title line
        # was wider than the page at 1024 px
        state = QHBoxLayout()
        state.setSpacing(6)
        self.mode_buttons = QButtonGroup(self)
        for key, text in (("designed", "Design a run"), ("script", "Run a script")):
            button = QRadioButton(text, objectName=f"mode:{key}", checked=key == "designed")
            button.toggled.connect(lambda on, k=key: on and self.set_mode(k))
            self.mode_buttons.addButton(button)
            state.addWidget(button)
        state.addSpacing(12)
        state.addWidget(self.status)
        state.addWidget(self.status_detail, 1)
        state.addStretch(0)  # the switch keeps its place when the state is hidden (a script run)
        layout = QVBoxLayout(self.header)
        layout.setContentsMargins(20, 10, 20, 8)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addLayout(state)

    def _build_form(self) -> QWidget:
        content = QWidget(objectName="formContent")
        column = QVBoxLayout(content)
        column.setContentsMargins(20, 14, 20, 20)
        column.setSpacing(14)

        run_card = self.run_card = Card("Run")
        grid = run_card.add_grid()
        for f in TOP_LEVEL:
            if f.name not in SKIP_TOP:
                self._add_row(grid, "", f)
        self._build_model_box(run_card)
        column.addWidget(run_card)

        placed: set[str] = set()
        for title, sections, visual in CARDS:
            sections = tuple(s for s in sections if s in SECTIONS)
            if not sections:
                continue
            column.addWidget(self._build_card(title, sections, visual))
            placed.update(sections)
            if "task" in sections:  # each task kind's own section right below the task
                for kind in task_sections():
                    column.addWidget(self._build_card(section_title(kind), (kind,), None))
                    placed.add(kind)
        for name in SECTIONS:
            if name not in placed:
                column.addWidget(self._build_card(section_title(name), (name,), None))
        column.addWidget(self._build_sweep_card())
        column.addStretch(1)

        scroll = QScrollArea(objectName="formScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        # its width, and what the cards hold, decide whether each card's parts sit side by side
        scroll.viewport().installEventFilter(self)
        content.installEventFilter(self)
        self.scroll = scroll
        return scroll

    def eventFilter(self, obj, event) -> bool:
        if (obj is self.scroll.viewport() and event.type() == event.Type.Resize) or (
            obj is self.scroll.widget() and event.type() == event.Type.LayoutRequest
        ):
            self._arrange_cards()
        return super().eventFilter(obj, event)

    def _arrange_cards(self) -> None:
        """Each card's parts side by side on a wide page where they fit, else one under the
        other: a card wider than the page would be cut off at its edge (it never scrolls
        sideways)."""
        width = self.scroll.viewport().width()
        margins = self.scroll.widget().layout().contentsMargins()
        room = width - margins.left() - margins.right()
        for card in self._all_cards():
            card.set_side_by_side(width >= SIDE_BY_SIDE and card.side_by_side_width() <= room)

    def _align_labels(self) -> None:
        """One label column for the whole form, as wide as its widest label, so that every
        editor starts at the same x (a grid sizes its column to its own labels only)."""
        width = max([LABEL_WIDTH, *(row.label.sizeHint().width() for row in self.rows.values())])
        for grid in self._grids.values():
            grid.setColumnMinimumWidth(0, width)

    def _all_cards(self) -> list[Card]:
        return [self.run_card, *{id(c): c for c in self.cards.values()}.values()]

    def _build_card(self, title: str, sections: tuple[str, ...], visual: str | None) -> Card:
        card = Card(title)
        for section in sections:
            self.cards[section] = card
            grid = card.add_grid(section_title(section) if len(sections) > 1 else None)
            fields = SECTIONS[section]
            if section == "hardware":
                self._add_device_list(grid, fields)
            for f in fields:
                if section == "hardware" and f.name in DEVICE_FIELDS + MACHINE_FIELDS:
                    continue
                if f"{section}.{f.name}" == FREEZE:  # checkboxes on the model's nodes instead
                    continue
                self._add_row(grid, section, f)
        if visual == "preview":
            self.preview = DataPreview(self.pool)
            self.preview.setMinimumWidth(380)
            card.body.addWidget(self.preview, 4)
        elif visual == "lr":
            self.schedule_plot = SchedulePlot()
            self.schedule_plot.setMinimumWidth(340)
            card.body.addWidget(self.schedule_plot, 4)
        elif visual == "machines":
            card.body.addWidget(self._build_machines_box(), 3)
        else:
            card.body.addStretch(1)
        return card

    def _build_sweep_card(self) -> Card:
        """The sweep's own fields, shown once a field is switched to a range."""
        card = self.sweep_card = self.cards["sweep"] = Card("Sweep")
        grid = card.add_grid()
        for path, f in self.ranges.sweep_fields():
            editor = make_editor(f, section=path.rpartition(".")[0])
            editor.widget.setObjectName(f"field:{path}")
            title = f"Objective {f.title.lower()}" if path.startswith("sweep.objective.") else f.title
            label = QLabel(title, objectName="fieldLabel")
            label.setToolTip(f"{path}\n{field_tooltip(f, path.rpartition('.')[0])}")
            r = grid.rowCount()
            grid.addWidget(label, r, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            grid.addWidget(editor, r, 1)
            self.ranges.bind_sweep_field(path, f, editor)
        card.body.addStretch(1)
        card.hide()
        return card

    def _add_row(self, grid: QGridLayout, section: str, f: Field) -> _Row:
        path = f"{section}.{f.name}" if section else f.name
        editor = make_editor(f, section=section)
        editor.widget.setObjectName(f"field:{path}")
        if isinstance(editor, PathEditor):
            self.paths.append(editor)
        label = QLabel(f.title, objectName="fieldLabel")
        label.setToolTip(f"{path}\n{field_tooltip(f, section)}")
        label.setBuddy(editor.widget)
        self._grids[id(grid)] = grid
        r = grid.rowCount()
        grid.addWidget(label, r, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        beside = self._beside(path, editor)
        grid.addWidget(beside, r, 1)
        self.ranges.attach(grid, r, path, f, beside, label)
        editor.typed.connect(lambda raw: self.model.edit(path, raw))
        editor.focused.connect(lambda: self._show_hint(path))
        row = _Row(section, f, label, editor)
        self.rows[path] = row
        return row

    def _beside(self, path: str, editor: FieldEditor) -> QWidget:
        """The editor, with the action that belongs beside it: the LR finder beside optim.lr."""
        if path != LR_PATH:
            return editor
        from app.runs.lr_finder import LrFinderButton

        self.lr_finder = LrFinderButton(self.model, lambda: self.db_path)
        editor.widget.setMinimumWidth(90)  # the button must not squeeze the number out of sight
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(editor, 1)
        row.addWidget(self.lr_finder, 0, Qt.AlignmentFlag.AlignTop)
        return box

    def _add_device_list(self, grid: QGridLayout, fields: tuple[Field, ...]) -> None:
        by_name = {f.name: f for f in fields}
        if not all(name in by_name for name in DEVICE_FIELDS):
            return
        self.devices = DeviceList(*(by_name[name] for name in DEVICE_FIELDS))
        self.devices.typed.connect(self._edit_devices)
        self.devices.focused.connect(lambda: self._show_hint("hardware.device"))
        label = QLabel("Devices", objectName="fieldLabel")
        label.setToolTip("hardware.device, hardware.gpus")
        label.setBuddy(self.devices.widget)
        grid.addWidget(label, 0, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.devices, 0, 1)

    def _edit_devices(self, raws: dict) -> None:
        for name, raw in raws.items():
            self.model.edit(f"hardware.{name}", raw)

    def _build_machines_box(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(QLabel("SEVERAL MACHINES", objectName="groupTitle"))
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(7)
        grid.setColumnMinimumWidth(0, LABEL_WIDTH)
        grid.setColumnStretch(1, 1)
        for f in SECTIONS["hardware"]:
            if f.name in MACHINE_FIELDS:
                self._add_row(grid, "hardware", f)
        host = QWidget()
        host.setMaximumWidth(GRID_WIDTH)
        host.setLayout(grid)
        grid.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(host)
        self.join_label = QLabel("Run this on each other machine (node rank 1, 2, …):", objectName="subtle")
        self.join_command = QLineEdit(objectName="joinCommand", readOnly=True)
        self.join_command.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        copy = QPushButton("Copy", objectName="copyJoin")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.join_command.text()))
        join_row = QHBoxLayout()
        join_row.addWidget(self.join_command, 1)
        join_row.addWidget(copy)
        self.join_box = QWidget()
        join_layout = QVBoxLayout(self.join_box)
        join_layout.setContentsMargins(0, 4, 0, 0)
        join_layout.addWidget(self.join_label)
        join_layout.addLayout(join_row)
        layout.addWidget(self.join_box)
        layout.addSpacing(8)
        layout.addWidget(QLabel("MEMORY", objectName="groupTitle"))
        self.memory = QLabel(objectName="memoryFit", wordWrap=True)
        self.memory.setTextFormat(Qt.TextFormat.RichText)
        self.memory.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.memory)
        layout.addStretch(1)
        return box

    def _build_model_box(self, card: Card) -> None:
        box = QVBoxLayout()
        box.setSpacing(6)
        box.addWidget(QLabel("MODEL", objectName="groupTitle"))
        self.model_buttons = QButtonGroup(self)
        self.model_radios: dict[str, QRadioButton] = {}
        for key, text in (
            ("designer", "The designer's model"),
            ("file", "A graph file"),
            ("inline", "The model in the loaded spec"),
            ("parent", "The parent run's model"),
        ):
            radio = QRadioButton(text, objectName=f"model:{key}")
            self.model_radios[key] = radio
            self.model_buttons.addButton(radio)
            radio.toggled.connect(lambda on, k=key: on and self._choose_model(k))
            row = QHBoxLayout()
            row.addWidget(radio)
            if key == "designer":
                refresh = QPushButton("Refresh", objectName="refreshModel")
                refresh.setToolTip("Take the designer's graph as it is now")
                refresh.clicked.connect(lambda: self.model.refresh_model())
                row.addWidget(refresh)
            elif key == "file":
                self.model_file = ElidedLabel(Qt.TextElideMode.ElideMiddle, objectName="subtle")
                browse = QPushButton("Browse…", objectName="browseModel")
                browse.clicked.connect(self._browse_model)
                row.addWidget(self.model_file, 1)
                row.addWidget(browse)
            row.addStretch(1)
            box.addLayout(row)
        self.model_summary = QLabel(objectName="modelSummary", wordWrap=True)
        self.model_problems = QLabel(objectName="fieldError", wordWrap=True)
        box.addWidget(self.model_summary)
        box.addWidget(self.model_problems)
        self.freeze_list = FreezeList()
        self.freeze_list.edited.connect(lambda value: self.model.set(FREEZE, value or UNSET))
        box.addWidget(self.freeze_list)
        box.addStretch(1)
        card.body.addLayout(box, 4)

    def _build_json(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(20, 12, 20, 16)
        bar = QHBoxLayout()
        self.json_complete = QCheckBox("Complete spec (every default filled in, as the run records it)")
        self.json_complete.toggled.connect(lambda _on: self._update_json())
        copy = QPushButton("Copy")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.json_view.toPlainText()))
        bar.addWidget(self.json_complete)
        bar.addStretch(1)
        bar.addWidget(copy)
        self.json_view = QPlainTextEdit(objectName="specJson", readOnly=True)
        self.json_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addLayout(bar)
        layout.addWidget(self.json_view, 1)
        return page

    # ------------------------------------------------------------ model → widgets

    def _on_changed(self, path: str) -> None:
        everything = not path or path == "model"
        for row in self.rows.values() if everything else [r for p, r in self.rows.items() if p == path]:
            row.editor.show_value(self.model.value(row.path), self.model.is_set(row.path))
        if everything or path.startswith("hardware."):
            self.devices.show_value({name: self.model.value(f"hardware.{name}") for name in DEVICE_FIELDS})
        if everything:
            radio = self.model_radios[self.model.model_source]
            radio.blockSignals(True)
            radio.setChecked(True)
            radio.blockSignals(False)
            model_path = str(self.model.model_path) if self.model.model_path else ""
            self.model_file.set_full_text(model_path or "none chosen")
            self.model_file.setToolTip(model_path)
            for editor in self.paths:
                editor.start_dir = self.model.base_dir
        self._update_visibility()

    def _update_visibility(self) -> None:
        kind = self.model.value("task.kind")
        problems = self.model.all_problems()
        problem_fields = {field_path(p) for p in problems}
        for section in task_sections():
            self.cards[section].setVisible(section == kind)
        derived = inherits(self.model.doc)
        parents_data = derived and self.model.value("data.source") is None
        for name, section in INHERITED.items():  # what "no value" means for an inherited field
            row = self.rows.get(f"{section}.{name}" if section else name)
            if row is not None and isinstance(row.editor, ChoiceEditor):
                row.editor.set_unset_label("(the parent run's)" if derived else "Choose…")
        for row in self.rows.values():
            if parents_data and row.section == "data":
                applies = row.field.name == "source"  # the parent's data, unless a source is chosen
            else:
                applies = row.field.applies(self.model.value, row.section)
            changed = self.model.is_set(row.path) and self.model.value(row.path) != row.field.default
            row.set_visible(applies or changed or row.path in problem_fields)
        self.ranges.follow_rows()
        self.model_radios["parent"].setVisible(derived)
        self.model_radios["inline"].setVisible(self.model.model_source == "inline" or "model" in problems)

    def _on_validated(self) -> None:
        problems = self.model.all_problems()
        by_field: dict[str, list[str]] = {}
        for p, ms in problems.items():
            by_field.setdefault(field_path(p), []).extend(ms)
        shown: set[str] = set()
        for path, row in self.rows.items():
            row.editor.show_problems(by_field.get(path, []))
            if path in by_field:
                shown.add(path)
        devices = [f"hardware.{name}" for name in DEVICE_FIELDS]
        self.devices.show_problems([m for p in devices for m in by_field.get(p, [])])
        shown.update(devices)
        shown.update(self.ranges.show_problems(problems))
        model_msgs = [
            f"{p}: {m}" if p != "model" else m
            for p, ms in problems.items()
            if p == "model" or p.startswith("model.")
            for m in ms
        ]
        shown.update(p for p in problems if p == "model" or p.startswith("model."))
        shown.update(p for p in problems if field_path(p) == FREEZE)  # the freeze list shows them
        self.model_problems.setText("\n".join(model_msgs))
        self.model_problems.setVisible(bool(model_msgs))
        # what no editor shows goes on the card of its section (top-level ones on the Run card)
        per_card: dict[int, list[str]] = {}
        for p, ms in problems.items():
            if field_path(p) in shown or p in shown:
                continue
            card = self.cards.get(p.split(".", 1)[0], self.run_card)
            per_card.setdefault(id(card), []).extend(f"{p}: {m}" if p else m for m in ms)
        for card in self._all_cards():
            card.show_problems(per_card.get(id(card), []))
        self._update_visibility()
        self._update_status(problems)
        self._update_model_summary()
        self._request_previews()
        self._update_machines()
        if self.tabs.currentIndex() == 1:
            self._update_json()

    def _update_status(self, problems: dict[str, list[str]]) -> None:
        valid = self.model.valid
        self.start_button.setEnabled(valid)
        self.queue_button.setEnabled(valid)
        self.sweep_button.setEnabled(valid and self.ranges.sweeping)
        self.sweep_card.setVisible(self.ranges.sweeping)
        self._show_actions()
        lines = [f"{p}: {m}" if p else m for p, ms in problems.items() for m in ms]
        if valid:
            self.status.setText("✔ Ready to sweep" if self.ranges.sweeping else "✔ Ready to start")
        else:
            n = len(lines) or 1
            self.status.setText(f"✖ {n} problem{'s' if n != 1 else ''}")
        self.status_detail.set_full_text(f"— {lines[0]}" if lines and not valid else "")
        tip = "\n".join(lines)
        self.status.setToolTip(tip)
        self.status_detail.setToolTip(tip + ("\n\nClick to show the field." if lines else ""))
        state = "ok" if valid else "error"
        for label in (self.status, self.status_detail):
            if label.property("state") != state:
                label.setProperty("state", state)
                label.style().unpolish(label)
                label.style().polish(label)

    def _reveal_first_problem(self) -> None:
        """Scroll to the field the header's first problem names, and focus it."""
        first = next(iter(self.model.all_problems()), None)
        if first is None:
            return
        path = field_path(first)
        row = self.rows.get(path)
        if row is not None and row.editor.isVisibleTo(self):
            target: QWidget = row.editor
        elif path in (f"hardware.{name}" for name in DEVICE_FIELDS):
            target = self.devices
        else:
            target = self.cards.get(path.split(".", 1)[0], self.run_card)
        self.tabs.setCurrentIndex(0)
        self.scroll.ensureWidgetVisible(target, 40, 60)
        if isinstance(target, FieldEditor):
            target.widget.setFocus(Qt.FocusReason.OtherFocusReason)

    def _update_model_summary(self) -> None:
        from engine.graph import Graph, analyze

        source = self.model.model_source
        model = (self.model.spec or {}).get("model") if self.model.spec else None
        if model is None and isinstance(self.model.doc.get("model"), dict):
            model = self.model.doc["model"]
        freeze_problems = [
            f"{p}: {m}" for p, ms in self.model.all_problems().items() if field_path(p) == FREEZE for m in ms
        ]
        self.freeze_list.show_model(
            None if source == "parent" else model, self.model.value(FREEZE), freeze_problems
        )
        if source == "parent":
            self.model_summary.setText("The run starts from its parent's trained model.")
            return
        if model is None:
            self.model_summary.setText(
                "No model yet." if source != "designer" else "The designer has no model."
            )
            return
        try:
            analysis = analyze(Graph.from_dict(model))
        except Exception:  # noqa: BLE001 - a summary is a courtesy; the model's problems say why
            self.model_summary.setText("")
            return
        inputs = [str(i.out) for i in analysis.nodes.values() if i.op == "Input" and i.out is not None]
        out = str(analysis.output_type) if analysis.output_type else "?"
        self.model_summary.setText(
            f"<b>{html.escape(str(model.get('name') or 'model'))}</b> · {len(analysis.nodes)} nodes · "
            f"{fmt.count(analysis.total_params)} parameters · {fmt.count(analysis.total_flops)} FLOPs/sample · "
            f"{' + '.join(inputs) or '?'}\u00a0→\u00a0{out}"  # the shapes never split at the arrow
        )

    def _checked(self, section: str) -> dict | None:
        """A section as the engine normalises it, or None while it has problems."""
        if self.model.spec is not None:
            return self.model.spec[section]
        problems: list = []
        out = check_fields(SECTIONS[section], self.model.doc.get(section, {}), section, problems)
        return None if problems else out

    def _request_previews(self) -> None:
        data = self._checked("data")
        if inherits(self.model.doc) and self.model.value("data.source") is None:
            self.preview.request(None, "auto")
            self.preview.message.setText("The run uses its parent's data.")
        else:
            task = self._checked("task") or {}
            self.preview.request(
                resolve_data_paths(data, self.model.base_dir) if data else None, task.get("objective", "auto")
            )
        optim = self._checked("optim") or {}
        self.schedule_plot.request(
            self._checked("schedule"),
            optim.get("lr"),
            self._checked("train") or {},
            (self.preview.summary or {}).get("train_samples"),
        )

    def _on_preview(self, summary: dict | None, error: str | None) -> None:
        self.model.set_extra_problems({"data": [f"the data cannot be loaded: {error}"]} if error else {})
        if summary:
            self._request_previews()
            self._update_machines()  # the estimate now counts the data set

    def _update_machines(self) -> None:
        command = join_command(self.model.file, self.model.spec) if self.model.spec else None
        self.join_box.setVisible(command is not None)
        if command:
            self.join_command.setText(command)
            self.join_label.setText(
                "Run this on each other machine, with node rank 1, 2, …"
                + ("" if self.model.file else " (save the spec first and copy it to each machine)")
            )
        spec = self.model.spec
        if spec is None:
            self.memory.setText("The estimate follows once the spec is valid.")
        elif spec.get("model") is None:
            self.memory.setText(
                "The model comes from the parent run; its memory is estimated when the run starts."
            )
        elif self.preview.busy:  # estimated once the data is in (it counts the data set's bytes)
            self.memory.setText("Estimating once the data is loaded…")
        else:
            dataset = self.preview.dataset
            if not self._memory_job.busy:
                self.memory.setText("Estimating…")
            self._memory_job.submit(lambda: estimate_fit(spec, dataset))

    def _show_fit(self, estimate, error) -> None:
        if error is not None:
            self.memory.setText(f"No estimate: {error}")
            return
        t = theme.current()
        self.memory.setText(describe_fit(estimate, {"ok": t.ok, "error": t.error, "subtext": t.subtext}))

    def _update_json(self) -> None:
        if self.tabs.currentIndex() != 1:
            return
        doc = (
            self.model.spec if (self.json_complete.isChecked() and self.model.spec) else self.model.document()
        )
        self.json_view.setPlainText(json.dumps(doc, indent=2))

    def _show_hint(self, path: str) -> None:
        f = field_at(path)
        if f is None:
            return
        section = path.rpartition(".")[0]
        about = html.escape(field_tooltip(f, section)).replace("\n", " · ")
        self.hint.setText(f"<b>{html.escape(path)}</b> — {about}")

    def set_mode(self, mode: str) -> None:
        """ "designed": the spec form; "script": a script of the user's own (app.runs.script_form)."""
        script = mode == "script"
        for w in (self.tabs, self.hint, self.status, self.status_detail):
            w.setVisible(not script)
        self.script_form.setVisible(script)
        self.findChild(QRadioButton, f"mode:{mode}").setChecked(True)
        self._show_actions()

    def _show_actions(self) -> None:
        """The header's buttons for the mode: a script has its own; a spec with ranges is a sweep."""
        designed = not self.script_form.isVisibleTo(self)
        sweeping = designed and self.ranges.sweeping
        for b in (self.load_button, self.save_button):
            b.setVisible(designed)
        for b in (self.queue_button, self.start_button):
            b.setVisible(designed and not sweeping)
        self.sweep_button.setVisible(sweeping)

    def _on_devices(self, report: dict) -> None:
        self.devices.set_report(report)
        self._update_machines()

    # ------------------------------------------------------------ actions

    def _choose_model(self, source: str) -> None:
        if source == "file" and self.model.model_path is None:
            if not self._browse_model():
                self.model_radios[self.model.model_source].setChecked(True)
            return
        self.model.set_model_source(source)

    def _browse_model(self) -> bool:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a model graph", "", "Model graphs (*.json);;All files (*)"
        )
        if path:
            self.model.set_model_source("file", path)
        return bool(path)

    def _submit(self, signal) -> None:
        self.model.refresh_model()
        if self.model.valid:
            signal.emit(self.model.spec)

    def load_spec(self, path: str | Path | None = None) -> bool:
        if not path:
            path, _ = QFileDialog.getOpenFileName(
                self, "Load a run spec", "", "Run specs (*.json);;All files (*)"
            )
            if not path:
                return False
        path = Path(path)
        try:
            doc = read_json(path)  # refuses folders, FIFOs, devices, huge and deeply nested files
        except TrainbenchError as err:
            return self._refuse(str(err))
        except (OSError, ValueError, RecursionError) as err:  # what a reader may raise besides
            return self._refuse(f"{path}: cannot read the file ({err})")
        if not isinstance(doc, dict):
            return self._refuse(f"{path}: a run spec is a JSON object {{…}}, not {_json_kind(doc)}")
        self.model.replace(doc, base_dir=path.parent, file=path)
        return True

    def _refuse(self, message: str) -> bool:
        """A file that is no spec: say so in one line and keep the form as it was."""
        QMessageBox.warning(self, "Cannot load the spec", message.splitlines()[0] if message else "")
        return False

    def start_new(self) -> None:
        """Forget the spec being edited: the default one, the Form tab, scrolled to the top."""
        self.model.reset()
        self.tabs.setCurrentIndex(0)
        self.scroll.verticalScrollBar().setValue(0)
        self.hint.setText(HINT)

    def save_spec(self, path: str | Path | None = None) -> bool:
        if not path:
            suggested = str(self.model.file or f"{self.model.value('name') or 'run'}.json")
            path, _ = QFileDialog.getSaveFileName(self, "Save the run spec", suggested, "Run specs (*.json)")
            if not path:
                return False
        path = Path(path)
        path.write_text(json.dumps(self.model.document(), indent=2) + "\n", encoding="utf-8")
        self.model.file = path
        self._update_machines()
        return True

    # ------------------------------------------------------------ lifecycle

    def refresh_runs(self) -> None:
        """Re-read the completed runs offered as parents and teachers."""
        runs = [(row["id"], run_label(row)) for row in self.completed_runs()]
        for path, row in self.rows.items():
            if isinstance(row.editor, RunPicker):
                row.editor.set_runs(runs)
                row.editor.show_value(self.model.value(path), self.model.is_set(path))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._align_labels()
        self.detector.request()
        self.refresh_runs()
        self.model.refresh_model()

    def shutdown(self) -> None:
        """Wait for background jobs (a preview, a schedule) before the widgets go away."""
        self.pool.clear()
        self.pool.waitForDone(5000)


def _json_kind(value) -> str:
    """What a JSON document is, in words: 'an array [...]', 'a number'."""
    if isinstance(value, list):
        return "an array [...]"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__
