"""Editors for the run form, one per spec `Field`, chosen by the field's kind.

An editor shows a value and reports edits as (dotted path, value) the moment they are typed;
it keeps no state of its own. Values go to the model as typed — "3e-4" becomes a number, "abc"
stays a string — so the engine's validation, not the widget, says what is wrong, and the
message appears under the editor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.runs.spec_model import UNSET
from engine import format as fmt
from engine.compare import headline
from engine.fields import Field

_INT_LIMIT = 2**31 - 1


def field_tooltip(f: Field) -> str:
    rng = f.describe_range()
    return f"{f.help}" + (f"\n({rng})" if rng else "")


def format_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def parse_number(text: str):
    """'3' → 3, '3e-4' → 0.0003; anything else stays the string the user typed."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


class FieldEditor(QWidget):
    """A field's editing widget with the engine's message under it."""

    edited = Signal(str, object)  # dotted path, value (UNSET: back to the default)
    focused = Signal(str)  # dotted path, when the editor takes the focus

    def __init__(self, path: str, field: Field, parent: QWidget | None = None):
        super().__init__(parent)
        self.path, self.field = path, field
        self.widget = self._make_widget()
        self.widget.setToolTip(field_tooltip(field))
        self.widget.setObjectName(f"field:{path}")
        self.widget.installEventFilter(self)
        self.error = QLabel(objectName="fieldError", wordWrap=True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self._row())
        layout.addWidget(self.error)

    def _row(self) -> QWidget:
        return self.widget

    def _make_widget(self) -> QWidget:
        raise NotImplementedError

    def show_value(self, value, is_set: bool) -> None:
        """Display the model's value (without reporting it back as an edit)."""
        raise NotImplementedError

    def show_problems(self, messages: list[str]) -> None:
        text = "; ".join(messages)
        self.error.setText(text)
        self.error.setVisible(bool(messages))
        if bool(self.widget.property("invalid")) != bool(messages):
            self.widget.setProperty("invalid", bool(messages))
            self.widget.style().unpolish(self.widget)
            self.widget.style().polish(self.widget)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == event.Type.FocusIn:
            self.focused.emit(self.path)
        return super().eventFilter(obj, event)


class BoolEditor(FieldEditor):
    def _make_widget(self) -> QWidget:
        box = QCheckBox()
        box.toggled.connect(lambda on: self.edited.emit(self.path, bool(on)))
        return box

    def show_value(self, value, is_set: bool) -> None:
        self.widget.blockSignals(True)
        self.widget.setChecked(bool(value))
        self.widget.blockSignals(False)


class ChoiceEditor(FieldEditor):
    def _make_widget(self) -> QWidget:
        combo = QComboBox()
        if self.field.optional and self.field.default is None:
            combo.addItem("default", UNSET)
        for choice in self.field.choices:
            combo.addItem(str(choice), choice)
        combo.activated.connect(lambda i: self.edited.emit(self.path, combo.itemData(i)))
        return combo

    def show_value(self, value, is_set: bool) -> None:
        combo = self.widget
        combo.blockSignals(True)
        index = combo.findData(value) if value is not None else 0
        if index < 0:  # a value the registry does not offer: show it, for the engine's message
            combo.addItem(f"{value} (unknown)", value)
            index = combo.count() - 1
        combo.setCurrentIndex(index)
        combo.blockSignals(False)


class IntEditor(FieldEditor):
    """A spin box that accepts any whole number typed, so the engine can say what is wrong."""

    def _make_widget(self) -> QWidget:
        box = QSpinBox()
        box.setRange(-_INT_LIMIT, _INT_LIMIT)
        box.setAccelerated(True)
        box.setGroupSeparatorShown(False)
        box.valueChanged.connect(lambda v: self.edited.emit(self.path, int(v)))
        return box

    def show_value(self, value, is_set: bool) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        self.widget.blockSignals(True)
        self.widget.setValue(int(value))
        self.widget.blockSignals(False)


class TextEditor(FieldEditor):
    """Numbers, optional numbers, strings, number lists and free values, typed as text."""

    def _make_widget(self) -> QWidget:
        edit = QLineEdit()
        edit.setClearButtonEnabled(False)
        edit.textEdited.connect(lambda text: self.edited.emit(self.path, self.parse(text)))
        return edit

    def parse(self, text: str):
        text = text.strip()
        kind = self.field.kind
        if not text:
            return UNSET
        if kind == "str":
            return text
        if kind in ("int", "float"):
            return parse_number(text)
        if kind in ("ints", "floats"):
            parts = [p for p in re.split(r"[\s,×\[\]()]+", text) if p]
            values = [parse_number(p) for p in parts]
            return values if values and all(isinstance(v, int | float) for v in values) else text
        try:  # "any": JSON when it parses (a list, a number), else the text itself
            return json.loads(text)
        except ValueError:
            return text

    def show_value(self, value, is_set: bool) -> None:
        edit = self.widget
        default = self.field.default
        edit.setPlaceholderText(format_value(default) if default is not None else self._empty_hint())
        typed = self.parse(edit.text())
        if typed == value if is_set else typed is UNSET:
            return  # the text already says this ("0." is 0.0): leave it, and the cursor, alone
        edit.setText(format_value(value) if is_set else "")

    def _empty_hint(self) -> str:
        if self.field.kind in ("ints", "floats"):
            return "e.g. 1, 2"
        return "auto" if self.field.optional else ""


class PathEditor(TextEditor):
    """A file or folder path with a Browse button; `folder()` says which the field wants now."""

    def __init__(self, path: str, field: Field, folder: Callable[[], bool] = lambda: False, parent=None):
        self.folder = folder
        super().__init__(path, field, parent)

    def _row(self) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.widget, 1)
        self.browse = QPushButton("Browse…", objectName="browseButton")
        self.browse.clicked.connect(self._browse)
        layout.addWidget(self.browse)
        return row

    def _browse(self) -> None:
        start = self.widget.text()
        if self.folder():
            chosen = QFileDialog.getExistingDirectory(self, "Choose the image folder", start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(
                self, "Choose the data file", start, "Data files (*.csv *.txt *.tsv);;All files (*)"
            )
        if chosen:
            self.widget.setText(chosen)
            self.edited.emit(self.path, chosen)


class RunPickerEditor(FieldEditor):
    """The parent or teacher of a prune/distill run: a completed run from the store."""

    def _make_widget(self) -> QWidget:
        combo = QComboBox()
        combo.setMinimumContentsLength(28)
        combo.activated.connect(lambda i: self.edited.emit(self.path, combo.itemData(i)))
        return combo

    def set_runs(self, rows: list[dict]) -> None:
        combo = self.widget
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("Choose a completed run…" if rows else "No completed run yet", UNSET)
        for row in rows:
            combo.addItem(_run_label(row), row["id"])
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.blockSignals(False)

    def show_value(self, value, is_set: bool) -> None:
        combo = self.widget
        combo.blockSignals(True)
        index = combo.findData(value) if value is not None else 0
        if index < 0:
            combo.addItem(f"#{value} (not a completed run here)", value)
            index = combo.count() - 1
        combo.setCurrentIndex(index)
        combo.blockSignals(False)


def _run_label(row: dict) -> str:
    summary = row.get("summary") or {}
    head = headline(summary)
    result = f" — {head[0].split('/', 1)[-1]} {fmt.value(head[1])}" if head else ""
    return f"#{row['id']} {row['name']} ({row['kind']}){result}"


def make_editor(path: str, field: Field, parent: QWidget | None = None) -> FieldEditor:
    """The editor for a field, by kind."""
    if field.kind == "bool":
        return BoolEditor(path, field, parent)
    if field.kind == "choice":
        return ChoiceEditor(path, field, parent)
    if field.kind == "int" and not field.optional and field.default is not None:
        return IntEditor(path, field, parent)
    return TextEditor(path, field, parent)
