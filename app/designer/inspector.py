"""The property inspector, generated from the selected op's `Field` declarations.

Each param gets an editor from the field kit (`app.fields`), chosen by its kind. This file is
the kit's designer binder: what is typed is parsed and checked with `Field.check` at once, the
engine's message shown under the editor; a valid value is committed when the edit is complete
(Enter, the focus leaving, a click or a step) as one SetParam command, and edits between
focusing a field and leaving it merge into one undo step. Shape, count and graph-level problems
come from the document's analysis.
"""

from __future__ import annotations

import itertools

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app import richtext
from app.designer import commands
from app.designer.document import MISSING, GraphDocument
from app.designer.palette import swatch
from app.fields import UNSET, FieldEditor, GraphEditor, Problem, field_tooltip, make_editor, parse
from engine import format as fmt
from engine.graph import OPS, Analysis

_sessions = itertools.count(1)


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
        help_label = QLabel(richtext.html(op.help), objectName="subtle", wordWrap=True)
        help_label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(help_label)
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
                label = QLabel(field.title)
                label.setToolTip(f"{field.name}\n{field_tooltip(field)}")
                label.setBuddy(editor.widget)
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
            if not force and editor.problems and editor.widget.hasFocus():
                continue  # leave what the user is typing alone
            field = editor.field
            is_set = name in params
            value = params[name] if is_set else (None if field.required else field.default)
            editor.show_value(value, is_set)
            editor.show_problems([m for m in [field.check(value)[1]] if m] if is_set else [])

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
        self._sessions: dict[int, int] = {}  # editor → its current editing session (a merge key)
        # The pages (one per op, and "nothing selected") in a column showing one at a time: a
        # stacked widget is as tall as its tallest page (its height-for-width asks them all),
        # which gave every page the scroll bar of the longest op form seen.
        self._pages = QWidget(objectName="inspectorBody")
        QVBoxLayout(self._pages).setContentsMargins(0, 0, 0, 0)
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
        self._pages.layout().addWidget(self._empty)
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
            self._show_page(self._empty)
            return
        form = self._forms.get(node.op)
        if form is None:
            form = self._forms[node.op] = self._build_form(node.op)
        self.form = form
        form.bind(node.id, node.params)
        self._sync_output()
        if self.doc.analysis is not None:
            form.show_analysis(self.doc.analysis)
        self._show_page(form)

    def _show_page(self, page: QWidget) -> None:
        for i in range(self._pages.layout().count()):
            other = self._pages.layout().itemAt(i).widget()
            if other is not page:
                other.hide()
        page.show()

    def _build_form(self, op_name: str) -> _OpForm:
        form = _OpForm(OPS[op_name])
        for editor in form.editors.values():
            # The node is read when the edit arrives, from the form, which may have been re-bound.
            editor.focused.connect(lambda e=editor: self._new_session(e))
            editor.typed.connect(lambda raw, e=editor: self._checked(e, raw))
            editor.finished.connect(lambda raw, e=editor, f=form: self._commit(f.node_id, e, raw))
            if isinstance(editor, GraphEditor):
                editor.open_requested.connect(lambda f=form: self.edit_body_requested.emit(f.node_id))
        form.output_box.toggled.connect(lambda checked, f=form: self._toggle_output(f.node_id, checked))
        form.hide()
        self._pages.layout().addWidget(form)
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

    def _new_session(self, editor: FieldEditor) -> None:
        """The editor took the focus: its edits until it loses it merge into one undo step."""
        self._sessions[id(editor)] = next(_sessions)

    @staticmethod
    def _checked(editor: FieldEditor, raw) -> tuple[object, bool]:
        """(the param value `raw` gives, whether the engine accepts it), its message shown.
        An empty editor means the op's default (MISSING: the param is left out)."""
        field = editor.field
        value = parse(field, raw)
        if isinstance(value, Problem):
            editor.show_problems([value.message])
            return value.value, False
        if value is UNSET or (value is None and field.default is None):
            err = field.check(None)[1] if field.required else None
            value = MISSING
        else:
            value, err = field.check(value)
        editor.show_problems([err] if err else [])
        return value, err is None

    def _commit(self, node_id: str | None, editor: FieldEditor, raw) -> None:
        value, ok = self._checked(editor, raw)
        name = editor.field.name
        node = self.doc.graph.nodes.get(node_id)  # the form may outlive its node by an event
        if not ok or node is None or node.params.get(name, MISSING) == value:
            return
        key = (id(editor), self._sessions.get(id(editor), 0))
        self.doc.push(commands.SetParam(self.doc, node_id, name, value, key))

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
