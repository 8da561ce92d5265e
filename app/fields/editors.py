"""One editor per kind of `Field`, chosen by `make_editor` from the field's traits and kind.

An editor shows a value, reports what the user does with it and shows the messages it is
given; it keeps no state of its own and validates nothing (see the package docstring for the
binders that decide what an edit means). Every editor:

- emits `typed(raw)` as the user changes it (each keystroke, click or step) and
  `finished(raw)` once an edit is complete (Enter, the focus leaving, a click, a step); `raw` is
  the text as typed, or the value a check box or combo box offers, for `values.parse`;
- emits `focused()` when it takes the keyboard focus;
- shows a value with `show_value(value, is_set)`: an unset value shows as the field's default
  (greyed placeholder text, or the default with the `unset` property for a spin box);
- shows messages under itself with `show_problems(messages)` (and the `invalid` property, which
  the stylesheets draw as a red border);
- takes wheel events only while focused (`app.fields.wheel`).
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app import icons, richtext
from app.fields.values import UNSET, editor_text, parse, placeholder, same
from app.fields.wheel import wheel_needs_focus
from engine.fields import Field

_INT_LIMIT = 2**31 - 1
SPIN_TEXT_INSET = 7  # the left border and padding of a line edit in the stylesheets


def field_tooltip(field: Field, section: str = "") -> str:
    """The help a field's editor shows on hover: what it does, its range, its default and when
    it applies (`section` names the spec section or is "" for an op's params)."""
    lines = [richtext.plain(field.help)] if field.help else []
    facts = []
    rng = field.describe_range()
    if rng:
        facts.append(rng)
    if not field.required and field.default not in (None, "", [], ()):
        facts.append(f"default {editor_text(field, field.default)}")
    elif field.optional:
        facts.append("may be left empty")
    if facts:
        lines.append(" · ".join(facts))
    when = field.when_text(section)
    if when:
        lines.append(when[0].upper() + when[1:])
    return "\n".join(lines)


def set_flag(widget: QWidget, name: str, on: bool) -> None:
    """A boolean dynamic property the stylesheet selects on; re-polished only when it flips,
    since re-polishing restyles the widget and is not free."""
    if bool(widget.property(name)) != on:
        widget.setProperty(name, on)
        widget.style().unpolish(widget)
        widget.style().polish(widget)


class FieldEditor(QWidget):
    """An editing widget (`widget`) with the messages about its value under it."""

    typed = Signal(object)
    finished = Signal(object)
    focused = Signal()

    def __init__(self, field: Field, parent: QWidget | None = None, *, section: str = ""):
        super().__init__(parent)
        self.field = field
        # The fields this editor edits: one, except for composites such as the device checklist,
        # whose `typed`/`finished` then carry {field name: raw} and `show_value` takes the same.
        self.fields: tuple[Field, ...] = (field,)
        self.widget = self._make_widget()
        self.widget.setToolTip(field_tooltip(field, section))
        self.widget.installEventFilter(self)
        self.error = QLabel(objectName="fieldError", wordWrap=True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self._row())
        layout.addWidget(self.error)

    def _make_widget(self) -> QWidget:
        raise NotImplementedError

    def _row(self) -> QWidget:
        """What goes above the messages: the widget, or the widget with buttons beside it."""
        return self.widget

    def show_value(self, value, is_set: bool = True) -> None:
        """Display a value without reporting it back as an edit."""
        raise NotImplementedError

    def show_problems(self, messages: list[str]) -> None:
        text = "\n".join(messages)
        if text != self.error.text():
            self.error.setText(text)
        if self.error.isHidden() == bool(messages):
            self.error.setVisible(bool(messages))
        set_flag(self.widget, "invalid", bool(messages))

    @property
    def problems(self) -> list[str]:
        text = self.error.text()
        return text.split("\n") if text and not self.error.isHidden() else []

    def _emit(self, raw) -> None:
        """A complete edit: reported both as typed and as finished."""
        self.typed.emit(raw)
        self.finished.emit(raw)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusIn:
            self.focused.emit()
        return super().eventFilter(obj, event)


class BoolEditor(FieldEditor):
    def _make_widget(self) -> QWidget:
        box = QCheckBox()
        box.toggled.connect(self._emit)
        return box

    def show_value(self, value, is_set: bool = True) -> None:
        self.widget.blockSignals(True)
        self.widget.setChecked(value is True)
        self.widget.blockSignals(False)


class _Combo(FieldEditor):
    """A combo box of values; a value it does not offer (a wrong type in a loaded file) is shown
    as an extra item, so the engine's message beside it has something to point at."""

    def _make_widget(self) -> QWidget:
        combo = QComboBox()
        wheel_needs_focus(combo)
        combo.activated.connect(lambda i: self._emit(combo.itemData(i)))
        self._extra = -1
        return combo

    def _index_of(self, value) -> int:
        combo = self.widget
        for i in range(combo.count()):
            data = combo.itemData(i)
            if i != self._extra and same(data, value):
                return i
        return -1

    def _show(self, value, unknown: str) -> None:
        combo = self.widget
        combo.blockSignals(True)
        index = self._index_of(value)
        if index < 0:
            if self._extra < 0:
                combo.addItem("")
                self._extra = combo.count() - 1
            combo.setItemText(self._extra, unknown)
            combo.setItemData(self._extra, value)
            index = self._extra
        elif self._extra >= 0:
            combo.removeItem(self._extra)
            index -= index > self._extra
            self._extra = -1
        combo.setCurrentIndex(index)
        combo.blockSignals(False)


class ChoiceEditor(_Combo):
    """The field's choices; a field without a default value (an optional one, or one the user
    must give) also offers "no choice" (UNSET), labelled by `set_unset_label`."""

    def _make_widget(self) -> QWidget:
        combo = super()._make_widget()
        if self.field.required or self.field.default is None:
            combo.addItem("Choose…" if self.field.required else "(default)", UNSET)
        for choice in self.field.choices:
            combo.addItem(str(choice), choice)
        return combo

    def set_unset_label(self, text: str) -> None:
        """What "no choice" means here ("(the parent run's)" for a value a run inherits)."""
        if self.widget.itemData(0) is UNSET:
            self.widget.setItemText(0, text)

    def show_value(self, value, is_set: bool = True) -> None:
        if not is_set and not self.field.required:
            value = self.field.default
        unset = (value is None or not is_set) and self.widget.itemData(0) is UNSET
        written = value if isinstance(value, str) else json.dumps(value, default=repr)
        self._show(UNSET if unset else value, f"{written} (not allowed)")


class RunPicker(_Combo):
    """A run id picked from the store (the `run` trait): the parent of a prune run, say. The
    binder supplies the runs on offer with `set_runs`."""

    def _make_widget(self) -> QWidget:
        combo = super()._make_widget()
        combo.setMinimumContentsLength(28)
        combo.addItem("No run yet", UNSET)
        return combo

    def set_runs(self, runs: list[tuple[int, str]]) -> None:
        """The runs offered, as (id, label), best first."""
        combo = self.widget
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        self._extra = -1
        combo.addItem("Choose a completed run…" if runs else "No completed run yet", UNSET)
        for run_id, label in runs:
            combo.addItem(label, run_id)
        combo.blockSignals(False)
        self._show(current, f"#{current}")

    def show_value(self, value, is_set: bool = True) -> None:
        self._show(UNSET if value is None else value, f"#{value} (not a completed run here)")


class _SpinBox(QSpinBox):
    """Accepts any whole number typed (so the engine can say what is wrong with it) but steps
    only within the field's range."""

    def __init__(self, lo: int, hi: int):
        super().__init__()
        self.lo, self.hi = lo, hi
        self.setRange(-_INT_LIMIT, _INT_LIMIT)
        self.setKeyboardTracking(False)  # valueChanged: when a step or an edit is complete
        self.setAccelerated(True)
        self.setGroupSeparatorShown(False)
        # as wide as the column, and free to shrink with it, like the line edits beside it
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        # Qt 6.11's stylesheet style puts a spin box's text field at its very edge, whatever its
        # padding and border: inset the text as far as a line edit's (1 px border + 6 px padding)
        self.lineEdit().setTextMargins(SPIN_TEXT_INSET, 0, 0, 0)

    def minimumSizeHint(self) -> QSize:
        """Room for a few digits: Qt sizes a spin box for the longest number its range allows
        (±2³¹), which kept a narrow inspector or form from fitting its column."""
        hint = super().minimumSizeHint()
        hint.setWidth(min(hint.width(), self.fontMetrics().horizontalAdvance("0" * 6) + 40))
        return hint

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
    """A whole number with a default: a spin box."""

    def _make_widget(self) -> QWidget:
        f = self.field
        lo = -_INT_LIMIT if f.min is None else int(f.min) + (1 if f.min_exclusive else 0)
        hi = _INT_LIMIT if f.max is None else int(f.max) - (1 if f.max_exclusive else 0)
        box = _SpinBox(lo, hi)
        wheel_needs_focus(box)
        box.lineEdit().textEdited.connect(self.typed.emit)
        box.valueChanged.connect(self._emit)
        return box

    def show_value(self, value, is_set: bool = True) -> None:
        box = self.widget
        if not is_set:
            value = self.field.default
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and abs(value) <= _INT_LIMIT and not same(parse(self.field, box.text()), value):
            box.blockSignals(True)
            box.setValue(int(value))
            box.blockSignals(False)
        # else: typed as it is (leave the cursor alone), or a value of the wrong type, which the
        # box cannot show: it keeps its number and the message beside it says what is wrong
        set_flag(box, "unset", not is_set)


class TextEditor(FieldEditor):
    """Numbers, number lists, strings and free (JSON) values, typed as text."""

    def _make_widget(self) -> QWidget:
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder(self.field))
        edit.textEdited.connect(self.typed.emit)
        edit.editingFinished.connect(self._editing_finished)
        return edit

    def _editing_finished(self) -> None:
        edit = self.widget
        if edit.isModified():
            edit.setModified(False)
            self.finished.emit(edit.text())

    def show_value(self, value, is_set: bool = True) -> None:
        edit = self.widget
        if not is_set:
            value = UNSET
        if same(parse(self.field, edit.text()), value):
            return  # the text already says this ("0." is 0.0): leave it, and the cursor, alone
        text = editor_text(self.field, value)
        if text != edit.text():
            edit.setText(text)
            edit.setModified(False)


class PathEditor(TextEditor):
    """A file or folder (the `path` trait), typed or chosen; relative paths are relative to
    `start_dir`, where the dialogs open too (a spec's folder, say)."""

    start_dir: Path | None = None

    def _row(self) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.widget, 1)
        self.file_button = QPushButton("File…", objectName="browseFile")
        self.file_button.setToolTip("Choose a file")
        self.file_button.clicked.connect(lambda: self._browse(folder=False))
        self.folder_button = QPushButton("Folder…", objectName="browseFolder")
        self.folder_button.setToolTip("Choose a folder")
        self.folder_button.clicked.connect(lambda: self._browse(folder=True))
        layout.addWidget(self.file_button)
        layout.addWidget(self.folder_button)
        return row

    def _start(self) -> str:
        text = self.widget.text().strip()
        path = Path(text) if text else None
        if path is not None and not path.is_absolute() and self.start_dir is not None:
            path = self.start_dir / path
        return str(path or self.start_dir or "")

    def _browse(self, folder: bool) -> None:
        title = f"Choose the {self.field.title.lower()}"
        if folder:
            chosen = QFileDialog.getExistingDirectory(self, title, self._start())
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, title, self._start())
        if chosen:
            self.widget.setText(chosen)
            self._emit(chosen)


class MultilineEditor(FieldEditor):
    """Free text over several lines (the `multiline` trait)."""

    def _make_widget(self) -> QWidget:
        edit = QPlainTextEdit()
        edit.setTabChangesFocus(True)
        edit.setPlaceholderText(placeholder(self.field))
        lines = 3
        edit.setFixedHeight(edit.fontMetrics().lineSpacing() * lines + 14)
        wheel_needs_focus(edit)
        edit.textChanged.connect(self._text_changed)
        self._edited = False
        return edit

    def _text_changed(self) -> None:
        self._edited = True
        self.typed.emit(self.widget.toPlainText())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusOut and self._edited:
            self._edited = False
            self.finished.emit(self.widget.toPlainText())
        return super().eventFilter(obj, event)

    def show_value(self, value, is_set: bool = True) -> None:
        text = editor_text(self.field, value) if is_set else ""
        if text != self.widget.toPlainText():
            self.widget.blockSignals(True)
            self.widget.setPlainText(text)
            self.widget.blockSignals(False)


class GraphEditor(FieldEditor):
    """A graph-valued field (a Repeat body): its size, and a button that asks for it to be
    opened in a designer of its own (`open_requested`), which makes the edit."""

    open_requested = Signal()

    def _make_widget(self) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.button = QPushButton(icons.icon("body"), "Edit body…")
        self.button.clicked.connect(self.open_requested.emit)
        self.summary = QLabel(objectName="subtle")
        row.addWidget(self.button)
        row.addWidget(self.summary, 1)
        return box

    def show_value(self, value, is_set: bool = True) -> None:
        nodes = value.get("nodes") if isinstance(value, dict) else None
        n = len(nodes) if isinstance(nodes, list) else 0
        self.summary.setText(f"{n} node{'s' if n != 1 else ''}" if value else "empty")


def make_editor(field: Field, parent: QWidget | None = None, *, section: str = "") -> FieldEditor:
    """The editor for `field`: by trait first (a run, a path, long text), then by kind."""
    if "run" in field.traits:
        cls = RunPicker
    elif "path" in field.traits:
        cls = PathEditor
    elif "multiline" in field.traits:
        cls = MultilineEditor
    elif field.kind == "bool":
        cls = BoolEditor
    elif field.kind == "choice":
        cls = ChoiceEditor
    elif field.kind == "graph":
        cls = GraphEditor
    elif field.kind == "int" and not field.optional and isinstance(field.default, int):
        cls = IntEditor
    else:
        cls = TextEditor
    editor = cls(field, parent, section=section)
    if "measured" in field.traits:  # line edits and spin boxes: still selectable and copyable
        editor.widget.setReadOnly(True)
    return editor
