"""The property inspector, generated from the selected op's `Field` declarations.

Each field gets an editor by kind (spin box, line edit, check box, combo box, list, "Edit body…")
that checks what is typed with `Field.check` and shows the engine's message under it. Only valid
values are committed, each as one SetParam command; typing into one field merges into one undo
step. Shape, count and graph-level problems come from the document's analysis.
"""

from __future__ import annotations

import itertools
import re

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import icons
from app.designer import commands
from app.designer.document import MISSING, GraphDocument
from app.designer.palette import swatch
from engine import format as fmt
from engine.fields import Field
from engine.graph import OPS, Analysis

_INT_LIMIT = 2**31 - 1
_sessions = itertools.count(1)


class FieldEditor(QWidget):
    """One form row: the editing widget with the engine's message under it when the value is invalid."""

    committed = Signal(str, object, object)  # field name, value, merge key

    def __init__(self, field: Field, parent=None):
        super().__init__(parent)
        self.field = field
        self.session = 0
        self.widget = self._make_widget()
        self.widget.setToolTip(
            f"{field.help}" + (f" ({field.describe_range()})" if field.describe_range() else "")
        )
        self.widget.installEventFilter(self)
        self.error = QLabel(objectName="fieldError", wordWrap=True)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.widget)
        layout.addWidget(self.error)

    # subclasses: build the widget, show a value, read what is typed
    def _make_widget(self) -> QWidget:
        raise NotImplementedError

    def set_value(self, value) -> None:
        raise NotImplementedError

    def check(self, raw) -> tuple[object, str | None]:
        """Validate a typed value with the engine; show (or clear) its message."""
        value, err = self.field.check(raw)
        if (err or "") != self.error.text():
            self.error.setText(err or "")
            self.error.setVisible(bool(err))
            # Re-polishing restyles the widget (red border); only when validity flips, it is not free.
            self.widget.setProperty("invalid", bool(err))
            self.widget.style().unpolish(self.widget)
            self.widget.style().polish(self.widget)
        return value, err

    def commit(self, raw) -> None:
        value, err = self.check(raw)
        if err is None:
            if value is None and self.field.default is None:
                value = MISSING
            self.committed.emit(self.field.name, value, (id(self), self.session))

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.FocusIn:
            self.session = next(_sessions)  # edits until focus leaves merge into one undo step
        return super().eventFilter(obj, event)


class _SpinBox(QSpinBox):
    """Accepts any integer typed (so the engine can say what is wrong with it) but steps only
    within the field's range."""

    def __init__(self, lo: int, hi: int):
        super().__init__()
        self.lo, self.hi = lo, hi
        self.setRange(-_INT_LIMIT, _INT_LIMIT)
        self.setKeyboardTracking(False)
        self.setAccelerated(True)

    def stepBy(self, steps: int) -> None:
        self.setValue(max(self.lo, min(self.hi, self.value() + steps)))

    def stepEnabled(self):
        flags = QSpinBox.StepEnabledFlag.StepNone
        if self.value() > self.lo:
            flags |= QSpinBox.StepEnabledFlag.StepDownEnabled
        if self.value() < self.hi:
            flags |= QSpinBox.StepEnabledFlag.StepUpEnabled
        return flags


class IntEditor(FieldEditor):
    def _make_widget(self) -> QWidget:
        f = self.field
        lo = -_INT_LIMIT if f.min is None else int(f.min) + (1 if f.min_exclusive else 0)
        hi = _INT_LIMIT if f.max is None else int(f.max)
        box = _SpinBox(lo, hi)
        box.lineEdit().textEdited.connect(lambda text: self.check(_number(text, int)))
        box.valueChanged.connect(self.commit)
        return box

    def set_value(self, value) -> None:
        self.widget.blockSignals(True)
        self.widget.setValue(int(value))
        self.widget.blockSignals(False)
        self.check(value)


class TextEditor(FieldEditor):
    """Line edit for floats, optional numbers, strings and number lists: parse, check, commit
    when editing finishes."""

    def _make_widget(self) -> QWidget:
        edit = QLineEdit()
        if self.field.optional:
            edit.setPlaceholderText("auto" if self.field.kind in ("int", "float") else "empty")
        if self.field.kind in ("ints", "floats"):
            edit.setPlaceholderText("e.g. 1, 28, 28")
        edit.textEdited.connect(lambda text: self.check(self.parse(text)))
        edit.editingFinished.connect(self._finished)
        return edit

    def _finished(self) -> None:
        raw = self.parse(self.widget.text())
        if self.widget.isModified():
            self.widget.setModified(False)
            self.commit(raw)

    def parse(self, text: str):
        text = text.strip()
        kind = self.field.kind
        if not text and (self.field.optional or kind != "str"):
            return None
        if kind == "str":
            return text
        if kind in ("int", "float"):
            return _number(text, int if kind == "int" else float)
        parts = [p for p in re.split(r"[\s,×x\[\]()]+", text) if p]
        values = [_number(p, int if kind == "ints" else float) for p in parts]
        # Anything that is not a number goes to the engine as typed, for its message.
        return values if all(isinstance(v, int | float) for v in values) and values else text

    def set_value(self, value) -> None:
        if value is None:
            text = ""
        elif isinstance(value, list | tuple):
            text = ", ".join(_fmt(v) for v in value)
        else:
            text = _fmt(value)
        self.widget.setText(text)
        self.widget.setModified(False)
        self.check(value)


class BoolEditor(FieldEditor):
    def _make_widget(self) -> QWidget:
        box = QCheckBox()
        box.toggled.connect(self.commit)
        return box

    def set_value(self, value) -> None:
        self.widget.blockSignals(True)
        self.widget.setChecked(bool(value))
        self.widget.blockSignals(False)


class ChoiceEditor(FieldEditor):
    def _make_widget(self) -> QWidget:
        combo = QComboBox()
        for choice in self.field.choices:
            combo.addItem(str(choice), choice)
        combo.activated.connect(lambda i: self.commit(combo.itemData(i)))
        return combo

    def set_value(self, value) -> None:
        self.widget.blockSignals(True)
        self.widget.setCurrentIndex(max(0, self.widget.findData(value)))
        self.widget.blockSignals(False)


class GraphFieldEditor(FieldEditor):
    """A graph-valued field (a Repeat body): a button that opens its own designer."""

    open_requested = Signal(str)

    def _make_widget(self) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel(objectName="subtle")
        self.button = QPushButton(icons.icon("body"), "Edit body…")
        self.button.clicked.connect(lambda: self.open_requested.emit(self.field.name))
        row.addWidget(self.button)
        row.addWidget(self.summary, 1)
        return box

    def set_value(self, value) -> None:
        n = len(value.get("nodes", [])) if isinstance(value, dict) else 0
        self.summary.setText(f"{n} node{'s' if n != 1 else ''}" if value else "empty")


def make_editor(field: Field) -> FieldEditor:
    if field.kind == "int" and not field.optional:
        return IntEditor(field)
    if field.kind == "bool":
        return BoolEditor(field)
    if field.kind == "choice":
        return ChoiceEditor(field)
    if field.kind == "graph":
        return GraphFieldEditor(field)
    return TextEditor(field)


def _number(text: str, kind):
    try:
        return kind(text)
    except ValueError:
        try:
            return float(text) if kind is int else text  # "2.5" for an int: let the engine say so
        except ValueError:
            return text


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class _OpForm(QWidget):
    """The form for one op, built once and re-bound to whichever node of that op is selected."""

    def __init__(self, op, parent=None):
        super().__init__(parent)
        self.op = op
        self.node_id: str | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.setSpacing(8)
        head = QHBoxLayout()
        icon = QLabel()
        icon.setPixmap(swatch(op.category, 14).pixmap(14, 14))
        head.addWidget(icon)
        title = QLabel(op.name, objectName="inspectorTitle")
        title.setToolTip(op.name)
        # A long op name may be clipped; it must not widen the dock.
        title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        head.addWidget(title, 1)
        layout.addLayout(head)
        ident = QHBoxLayout()
        self.ident = QLabel(objectName="nodeId")
        self.ident.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ident.addWidget(self.ident)
        ident.addStretch(1)
        ident.addWidget(QLabel(op.category, objectName="subtle"))
        layout.addLayout(ident)
        layout.addWidget(QLabel(op.help, objectName="subtle", wordWrap=True))
        self.output_box = QCheckBox("Model output")
        self.output_box.setToolTip("The node whose result the model returns")
        layout.addWidget(self.output_box)

        self.editors: dict[str, FieldEditor] = {}
        if op.params:
            layout.addWidget(_section("Parameters"))
            form = QFormLayout()
            form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form.setHorizontalSpacing(10)
            form.setVerticalSpacing(6)
            for field in op.params:
                editor = make_editor(field)
                label = QLabel(field.name)
                label.setToolTip(field.help)
                form.addRow(label, editor)
                self.editors[field.name] = editor
            layout.addLayout(form)

        layout.addWidget(_section("Shapes"))
        self.info = QLabel(objectName="shapeInfo", wordWrap=True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.info)
        self.problems = QLabel(objectName="problems", wordWrap=True)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems.hide()
        layout.addWidget(self.problems)
        layout.addStretch(1)

    def bind(self, node_id: str, params: dict) -> None:
        self.node_id = node_id
        self.ident.setText(node_id)
        self.set_values(params, force=True)

    def set_values(self, params: dict, force: bool = False) -> None:
        for name, editor in self.editors.items():
            field = editor.field
            if not force and editor.error.isVisible() and editor.widget.hasFocus():
                continue  # leave what the user is typing alone
            editor.set_value(params.get(name, None if field.required else field.default))

    def set_output(self, explicit: str | None, effective: str | None) -> None:
        """Checked when this node is the output, whether marked or inferred (the only node that
        ends a path); unchecking clears a marked output."""
        mine = effective == self.node_id or explicit == self.node_id
        inferred = mine and explicit != self.node_id
        self.output_box.blockSignals(True)
        self.output_box.setChecked(mine)
        self.output_box.setText("Model output (inferred)" if inferred else "Model output")
        self.output_box.blockSignals(False)

    def show_analysis(self, analysis: Analysis) -> None:
        info = analysis.nodes.get(self.node_id)
        rows = []
        if info is not None:
            rows = [
                ("Input", ", ".join(str(t) for t in info.inputs) or "—"),
                ("Output", str(info.out) if info.out else "?"),
                ("Parameters", f"{info.n_params:,}"),
                ("FLOPs", fmt.count(info.flops)),
            ]
        _set_text(
            self.info,
            "<table cellspacing='0' cellpadding='2'>"
            + "".join(f"<tr><td style='padding-right:12px'>{k}</td><td><b>{v}</b></td></tr>" for k, v in rows)
            + "</table>",
        )
        messages = analysis.problems_of(self.node_id)
        _set_text(self.problems, "\n".join(f"⚠ {m}" for m in messages))
        if self.problems.isHidden() == bool(messages):
            self.problems.setVisible(bool(messages))


class InspectorWidget(QScrollArea):
    """Shows the selected node: op, id and help; its params as generated editors; whether it is
    the model output; its shapes and counts; and every problem the engine reports for it.

    One form per op is built on first use and kept: selecting a node only re-binds values,
    which keeps selection instant on large graphs."""

    edit_body_requested = Signal(str)  # node id

    def __init__(self, doc: GraphDocument, parent=None):
        super().__init__(parent)
        self.setObjectName("inspector")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.doc = doc
        self.form: _OpForm | None = None
        self._forms: dict[str, _OpForm] = {}
        self._pages = QStackedWidget(objectName="inspectorBody")
        self._empty = QWidget()
        empty = QVBoxLayout(self._empty)
        empty.setContentsMargins(12, 10, 12, 12)
        self._empty_title = QLabel(objectName="inspectorTitle")
        empty.addWidget(self._empty_title)
        empty.addWidget(
            QLabel(
                "Select a node to edit its parameters. Add layers by dragging them from the palette, "
                "double-clicking the canvas, or dragging out of a node's output port.",
                objectName="subtle",
                wordWrap=True,
            )
        )
        empty.addStretch(1)
        self._pages.addWidget(self._empty)
        self.setWidget(self._pages)
        doc.node_changed.connect(self._node_changed)
        doc.node_removed.connect(self._node_removed)
        doc.output_changed.connect(self._sync_output)
        doc.analyzed.connect(self._show_analysis)
        doc.reset.connect(self.show_node)
        self.show_node(None)

    @property
    def node_id(self) -> str | None:
        return self.form.node_id if self.form else None

    @property
    def editors(self) -> dict[str, FieldEditor]:
        return self.form.editors if self.form else {}

    @property
    def output_box(self) -> QCheckBox:
        return self.form.output_box

    @property
    def problems(self) -> QLabel:
        return self.form.problems

    def show_node(self, node_id: str | None = None, selected: int = 0) -> None:
        node = self.doc.graph.nodes.get(node_id) if node_id else None
        if node is None:
            self.form = None
            self._empty_title.setText("Nothing selected" if selected == 0 else f"{selected} nodes selected")
            self._pages.setCurrentWidget(self._empty)
            return
        form = self._forms.get(node.op)
        if form is None:
            form = self._forms[node.op] = self._build_form(node.op)
        self.form = form
        form.bind(node.id, node.params)
        self._sync_output()
        if self.doc.analysis is not None:
            form.show_analysis(self.doc.analysis)
        self._pages.setCurrentWidget(form)

    def _build_form(self, op_name: str) -> _OpForm:
        form = _OpForm(OPS[op_name])
        for editor in form.editors.values():
            # The node is read at commit time from the form, which may have been re-bound.
            editor.committed.connect(
                lambda name, value, key, f=form: self._commit(f.node_id, name, value, key)
            )
            if isinstance(editor, GraphFieldEditor):
                editor.open_requested.connect(lambda _name, f=form: self.edit_body_requested.emit(f.node_id))
        form.output_box.toggled.connect(lambda checked, f=form: self._toggle_output(f.node_id, checked))
        self._pages.addWidget(form)
        return form

    # ------------------------------------------------------------ following the document

    def _node_removed(self, node_id: str) -> None:
        if node_id == self.node_id:
            self.show_node(None)

    def _node_changed(self, node_id: str) -> None:
        if node_id == self.node_id:
            self.form.set_values(self.doc.graph.nodes[node_id].params)

    def _sync_output(self) -> None:
        if self.form is not None:
            explicit = self.doc.graph.output
            effective = explicit or (self.doc.analysis.output if self.doc.analysis else None)
            self.form.set_output(explicit, effective)

    def _show_analysis(self, analysis: Analysis) -> None:
        if self.form is not None:
            self.form.show_analysis(analysis)
            self._sync_output()

    # ------------------------------------------------------------ edits

    def _commit(self, node_id: str | None, name: str, value, merge_key) -> None:
        node = self.doc.graph.nodes.get(node_id)  # the form may outlive its node by an event
        if node is None or node.params.get(name, MISSING) == value:
            return
        self.doc.push(commands.SetParam(self.doc, node_id, name, value, merge_key))

    def _toggle_output(self, node_id: str | None, checked: bool) -> None:
        if node_id not in self.doc.graph.nodes:
            return
        new = node_id if checked else None
        if new != self.doc.graph.output:
            self.doc.push(commands.SetOutput(self.doc, new))
        else:
            self._sync_output()  # unchecking an inferred output: nothing to undo, show it again


def _section(title: str) -> QLabel:
    return QLabel(title.upper(), objectName="section")


def _set_text(label: QLabel, text: str) -> None:
    if label.text() != text:  # an unchanged label must not relayout its panel
        label.setText(text)
