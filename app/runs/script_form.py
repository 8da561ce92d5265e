""" "Run a script": the run form's page for a user's own training script (`engine.scripts`).

The fields are the engine's declarations — the `script` section (the file or command, its
arguments, working directory, environment, interpreter, stop grace), the run's name and tags,
and the hardware fields that mean something to a script (devices, processes per machine,
machines, CPU threads) — each with the field kit's editor, as the designed-run form has them.
This page is their binder: every edit goes into the spec document, which the engine
validates at once (`validate_script_spec`); each problem is shown beside the field its path
names, and Start stays disabled until the spec is valid. Start hands the spec to the same
launcher as a designed run: `trainbench run SPEC --events -`, in its own process.
"""

from __future__ import annotations

import copy
import json
import shlex
from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.elided import ElidedLabel
from app.fields import UNSET, FieldEditor, Problem, field_tooltip, make_editor, parse
from app.runs.hardware import DeviceDetector, DeviceList
from engine.errors import SpecError
from engine.scripts import HARDWARE_FIELDS, KIND, SCRIPT_FIELDS, TOP_FIELDS, script_argv, validate_script_spec
from engine.spec import SCHEMA_VERSION, SECTIONS

DEVICE_FIELDS = ("device", "gpus")
# As the form types them: the arguments as one shell line, the environment as NAME=value lines
# (the engine takes both and stores a list and a dict).
TYPED_AS = {
    "args": {
        "kind": "str",
        "default": None,
        "help": "the script's arguments, as typed after `python train.py`",
    },
    "env": {
        "kind": "str",
        "default": None,
        "traits": frozenset({"multiline"}),
        "help": "NAME=value, one per line",
    },
}
# What an empty field means here, where the kit's "none" would say less.
PLACEHOLDERS = {
    "name": "the script's file name",
    "script.command": "or a command instead of a Python file (bash train.sh)",
    "script.args": "--lr 0.01 --epochs 5",
    "script.cwd": "the script's folder",
    "script.env": "NAME=value, one per line",
    "script.python": "the Python running Trainbench",
}


def _field(f):
    return replace(f, **TYPED_AS[f.name]) if f.name in TYPED_AS else f


class ScriptForm(QWidget):
    start_requested = Signal(dict)  # the normalised script spec
    queue_requested = Signal(dict)

    def __init__(self, detector: DeviceDetector | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("scriptForm")
        self.doc: dict = {"schema": SCHEMA_VERSION, "task": {"kind": KIND}}
        self.spec: dict | None = None
        self.problems: dict[str, list[str]] = {}
        self.editors: dict[str, FieldEditor] = {}
        self.detector = detector or DeviceDetector.shared()

        self.status = ElidedLabel(objectName="formStatus")  # beside the buttons: it must not widen the page
        self.queue_button = QPushButton("Add to queue", objectName="queueScript")
        self.start_button = QPushButton("Start script", objectName="startScript")
        self.start_button.setToolTip("Run the script as a run in the background")
        self.start_button.clicked.connect(lambda: self._submit(self.start_requested))
        self.queue_button.clicked.connect(lambda: self._submit(self.queue_requested))
        bar = QHBoxLayout()
        bar.addWidget(self.status, 1)
        bar.addWidget(self.queue_button)
        bar.addWidget(self.start_button)

        content = QWidget(objectName="formContent")
        column = QVBoxLayout(content)
        column.setContentsMargins(20, 14, 20, 20)
        column.setSpacing(14)
        script = self._card(column, "Script")
        for f in TOP_FIELDS:
            if f.name in ("name", "tags"):
                self._add(script, "", f)
        for f in SCRIPT_FIELDS:
            self._add(script, "script", _field(f))
        hardware = self._card(column, "Hardware")
        by_name = {f.name: f for f in SECTIONS["hardware"]}
        self.devices = DeviceList(*(by_name[n] for n in DEVICE_FIELDS))
        self.devices.typed.connect(lambda raws: [self._edit(f"hardware.{n}", r) for n, r in raws.items()])
        self._place(hardware, "Devices", "hardware.device, hardware.gpus", self.devices)
        for name in HARDWARE_FIELDS:
            if name not in DEVICE_FIELDS:
                self._add(hardware, "hardware", by_name[name])
        note = QLabel(
            "More than one process runs the script through torch.distributed's elastic launcher "
            "(RANK, WORLD_SIZE and the rendezvous in its environment); trainbench.init() writes from rank 0.",
            objectName="subtle",
            wordWrap=True,
        )
        hardware.addWidget(note, hardware.rowCount(), 0, 1, 2)
        column.addStretch(1)
        scroll = QScrollArea(objectName="formScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 0, 20, 0)
        layout.setSpacing(6)
        layout.addLayout(bar)
        layout.addWidget(scroll, 1)
        self.detector.ready.connect(self.devices.set_report)
        self._validate()

    # ------------------------------------------------------------ building

    def _card(self, column: QVBoxLayout, title: str) -> QGridLayout:
        card = QFrame(objectName="formCard")
        box = QVBoxLayout(card)
        box.setContentsMargins(18, 14, 18, 16)
        box.addWidget(QLabel(title, objectName="cardTitle"))
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(7)
        grid.setColumnMinimumWidth(0, 128)
        grid.setColumnStretch(1, 1)
        box.addLayout(grid)
        card.setMaximumWidth(760)
        column.addWidget(card)
        return grid

    def _add(self, grid: QGridLayout, section: str, f) -> None:
        path = f"{section}.{f.name}" if section else f.name
        editor = make_editor(f, section=section)
        editor.widget.setObjectName(f"script:{path}")
        if path in PLACEHOLDERS:
            editor.widget.setPlaceholderText(PLACEHOLDERS[path])
        editor.typed.connect(lambda raw, f=f, p=path: self._edit(p, parse(f, raw)))
        self.editors[path] = editor
        self._place(grid, f.title, f"{path}\n{field_tooltip(f, section)}", editor)

    def _place(self, grid: QGridLayout, title: str, tip: str, editor: FieldEditor) -> None:
        label = QLabel(title, objectName="fieldLabel")
        label.setToolTip(tip)
        label.setBuddy(editor.widget)
        r = grid.rowCount()
        grid.addWidget(label, r, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        grid.addWidget(editor, r, 1)

    # ------------------------------------------------------------ the document

    def _edit(self, path: str, value) -> None:
        if isinstance(value, Problem):
            value = value.value  # kept as typed, for the engine to say what is wrong with it
        section, _, name = path.rpartition(".")
        node = self.doc.setdefault(section, {}) if section else self.doc
        if value is UNSET:
            node.pop(name, None)
        else:
            node[name] = value
        self._validate()

    def set_script(self, file: str, args: list[str] = ()) -> None:
        """Fill in a script and its arguments (as the file picker and typing would)."""
        self.editors["script.file"].show_value(file)
        self.editors["script.args"].show_value(shlex.join(args))
        self.doc.setdefault("script", {}).update({"file": file, "args": shlex.join(args)})
        self._validate()

    def document(self) -> dict:
        return copy.deepcopy(self.doc)

    def _validate(self) -> None:
        try:
            self.spec = validate_script_spec(self.doc)
            self.problems = {}
        except SpecError as err:
            self.spec = None
            self.problems = {}
            for path, message in err.problems:
                self.problems.setdefault(path.split("[", 1)[0], []).append(message)
        for path, editor in self.editors.items():
            editor.show_problems(self.problems.get(path, []))
        self.devices.show_problems([m for n in DEVICE_FIELDS for m in self.problems.get(f"hardware.{n}", [])])
        valid = self.spec is not None
        self.start_button.setEnabled(valid)
        self.queue_button.setEnabled(valid)
        if valid:
            self.status.set_full_text(f"✔ Ready: {shlex.join(script_argv(self.spec))}")
            self.status.setToolTip(json.dumps(self.spec, indent=2))
        else:
            first = next(iter(self.problems.items()), ("", ["?"]))
            n = sum(len(v) for v in self.problems.values())
            self.status.set_full_text(f"✖ {n} problem{'s' if n != 1 else ''} — {first[0]}: {first[1][0]}")
            self.status.setToolTip("\n".join(f"{p}: {m}" for p, ms in self.problems.items() for m in ms))
        state = "ok" if valid else "error"
        if self.status.property("state") != state:
            self.status.setProperty("state", state)
            self.status.style().unpolish(self.status)
            self.status.style().polish(self.status)

    def _submit(self, signal) -> None:
        self._validate()
        if self.spec is not None:
            signal.emit(self.spec)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.detector.request()
