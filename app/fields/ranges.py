"""The kit's third binder: any field of the run form switched from one value to a range of
values for a sweep (`engine.spec.check_sweep` reads what it writes).

`RangeEditor` is composed of kit pieces: a `ChoiceEditor` for the distribution (those the
field's kind allows: uniform, log_uniform and int for numbers, choice and grid for any
field), two editors made by `make_editor(field)` for the bounds, and a `TextEditor` for a list
of values. Each bound and value is parsed with `parse(field, raw)` and checked with the field's
own `Field.check`, so a learning rate's low bound must be > 0 and the message is the engine's.

`RangeBinder` gives each eligible row of the run form a toggle beside its editor that swaps
the field's editor for a range editor, and writes the range into the spec document's
`sweep.params` (a key with dots of its own, which `RunSpecModel`'s dotted paths cannot
address). The first range adds a `sweep` section with its defaults; removing the last range
removes the section. The sweep's own fields (trials, sampler, objective…) are edited on a card
of their own whose editors the binder also binds, parsing with the declared `Field`s.
"""

from __future__ import annotations

import copy

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from app.fields.editors import ChoiceEditor, FieldEditor, TextEditor, field_tooltip, make_editor, set_flag
from app.fields.values import UNSET, Problem, editor_text, parse
from engine.fields import Field
from engine.spec import OBJECTIVE, PLACED_BY_SWEEP, SWEEP

LISTS = ("choice", "grid")
EDITABLE_KINDS = ("int", "float", "bool", "str", "choice")
DEFAULT_OBJECTIVE = {"metric": "val/loss", "direction": "minimize"}  # logged by every objective


def distributions_for(field: Field) -> tuple[str, ...]:
    if field.kind == "float":
        return ("log_uniform", "uniform", *LISTS)
    if field.kind == "int":
        return ("int", *LISTS)
    return LISTS


def starting_range(field: Field, value) -> dict:
    """What a field switched to a range starts from: a decade either side of a positive
    number (log-uniform), half to double a whole number, else the one value as a list."""
    if field.kind == "float" and isinstance(value, int | float) and value > 0:
        hi = value * 10 if field.max is None else min(value * 10, field.max)
        return {"log_uniform": [value / 10, hi]}
    if field.kind == "int" and isinstance(value, int) and value > 1:
        hi = value * 2 if field.max is None else min(value * 2, int(field.max))
        return {"int": [max(value // 2, int(field.min or 1)), hi]}
    return {"choice": [value] if value is not None else []}


# Not offered a range: what a run is (its kind) and how its machines meet.
NOT_SWEPT = frozenset({"task.kind", "hardware.rdzv_id"})


def can_range(path: str, field: Field) -> bool:
    """Whether a field of the run form may be swept: a single value, not placed by the pool."""
    return (
        field.kind in EDITABLE_KINDS
        and not field.traits
        and path not in PLACED_BY_SWEEP
        and path not in NOT_SWEPT
    )


class RangeEditor(QWidget):
    """A field's range: a distribution and its bounds, or a list of values. `typed` carries
    the section's value ({"log_uniform": [1e-5, 1.0]}), or None while a bound is no value."""

    typed = Signal(object)

    def __init__(self, field: Field, section: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.field = field
        self.kind = ChoiceEditor(
            Field("distribution", "choice", distributions_for(field)[0], choices=distributions_for(field))
        )
        self.low, self.high = make_editor(field, section=section), make_editor(field, section=section)
        for editor, word in ((self.low, "low"), (self.high, "high")):
            editor.widget.setToolTip(f"The {word} bound\n{field_tooltip(field, section)}")
        self.values = TextEditor(Field(field.name, "str", "", "values separated by commas"))
        self.values.widget.setPlaceholderText(self._values_hint())
        self.error = QLabel(objectName="fieldError", wordWrap=True)
        self.error.hide()
        bounds = QHBoxLayout()
        bounds.setContentsMargins(0, 0, 0, 0)
        bounds.addWidget(self.low, 1)
        bounds.addWidget(QLabel("to"))
        bounds.addWidget(self.high, 1)
        self.bounds = QWidget()
        self.bounds.setLayout(bounds)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.kind)
        layout.addWidget(self.bounds)
        layout.addWidget(self.values)
        layout.addWidget(self.error)
        self._raw = {"low": UNSET, "high": UNSET, "values": ""}
        self.kind.typed.connect(lambda _raw: self._changed())
        self.low.typed.connect(lambda raw: self._changed(low=raw))
        self.high.typed.connect(lambda raw: self._changed(high=raw))
        self.values.typed.connect(lambda raw: self._changed(values=raw))
        self._arrange()

    def _values_hint(self) -> str:
        if self.field.choices:
            return ", ".join(map(str, self.field.choices))
        return {"bool": "true, false", "int": "e.g. 32, 64, 128", "float": "e.g. 0.1, 0.01"}.get(
            self.field.kind, "values separated by commas"
        )

    @property
    def distribution(self) -> str:
        return self.kind.widget.currentData()

    def _arrange(self) -> None:
        listed = self.distribution in LISTS
        self.bounds.setVisible(not listed)
        self.values.setVisible(listed)

    def show_range(self, dist: dict | None) -> None:
        """Display a range (from the document, or a starting one) without reporting it back."""
        name, values = next(iter(dist.items())) if isinstance(dist, dict) and dist else (None, None)
        if name in distributions_for(self.field):
            self.kind.show_value(name)
            if name in LISTS and isinstance(values, list):
                self._raw["values"] = ", ".join(editor_text(self.field, v) for v in values)
                self.values.show_value(self._raw["values"])
            elif isinstance(values, list) and len(values) == 2:
                self._raw.update(low=values[0], high=values[1])
                self.low.show_value(values[0])
                self.high.show_value(values[1])
        self._arrange()

    def value(self) -> dict | None:
        """The range as the section holds it; None while something typed is no value. Bounds
        and values are checked with the field's own rules and the messages shown here."""
        draft, messages = self.draft()
        return None if messages else draft

    def draft(self) -> tuple[dict, list[str]]:
        """The range as typed (text that is no value kept as typed, for the engine to name)
        and the messages about it, shown here: a bound's under its editor, the rest below."""
        name, messages = self.distribution, []
        if name in LISTS:
            items = [p.strip() for p in str(self._raw["values"]).split(",") if p.strip()]
            out = []
            for item in items:
                value = parse(self.field, item)
                value, err = (
                    (value.value, value.message) if isinstance(value, Problem) else self.field.check(value)
                )
                if err:
                    messages.append(f"{item}: {err}")
                out.append(value)
            if not items:
                messages.append("list one value or more, separated by commas")
            self._show(messages, bounds_ok=True)
            return {name: out}, messages
        bounds, bad = [], False
        for key, editor in (("low", self.low), ("high", self.high)):
            value = parse(self.field, self._raw[key])
            if value is UNSET:
                value, err = None, "a bound is needed"
            elif isinstance(value, Problem):
                value, err = value.value, value.message
            else:
                value, err = self.field.check(value)
            editor.show_problems([f"{self.field.name} {err}"] if err else [])
            bad = bad or bool(err)
            bounds.append(value)
        if bad:
            self.show_problems([])
            return {name: bounds}, ["a bound is no value"]
        low, high = bounds
        if not low < high:
            messages.append("the low bound must be below the high one")
        elif name == "log_uniform" and low <= 0:
            messages.append("a log-uniform range needs a low bound > 0")
        self._show(messages, bounds_ok=False)
        return {name: bounds}, messages

    def _show(self, messages: list[str], bounds_ok: bool) -> None:
        if bounds_ok:  # a list: the bound editors are hidden and say nothing
            self.low.show_problems([])
            self.high.show_problems([])
        self.show_problems(messages)

    def show_problems(self, messages: list[str]) -> None:
        """Messages about the range as a whole (the engine's, or this editor's own)."""
        self.error.setText("\n".join(messages))
        self.error.setVisible(bool(messages))
        set_flag(self.kind.widget, "invalid", bool(messages))

    def _changed(self, **raw) -> None:
        self._raw.update(raw)
        self._arrange()
        self.typed.emit(self.draft()[0])


class RangeBinder(QObject):
    """Range toggles for the run form's rows, and the sweep section they write to."""

    changed = Signal()  # ranges were switched on or off

    def __init__(self, model, parent: QObject | None = None):
        super().__init__(parent)
        self.model = model  # app.runs.spec_model.RunSpecModel
        self.ranges: dict[str, RangeEditor] = {}
        self.toggles: dict[str, QToolButton] = {}
        self.fixed: dict[str, FieldEditor] = {}
        self.labels: dict[str, QWidget] = {}
        self.sweep_editors: dict[str, tuple[Field, FieldEditor]] = {}
        model.changed.connect(self._show_document)

    # ------------------------------------------------------------ the rows

    def attach(
        self, grid: QGridLayout, row: int, path: str, field: Field, editor: QWidget, label: QWidget
    ) -> None:
        """Give the row `row` of `grid` (the field's editor, or the box holding it, in column 1)
        a range toggle. The row is shown or hidden by its owner through `label`; `follow_rows`
        follows it."""
        if not can_range(path, field):
            return
        section = path.rpartition(".")[0]
        if not section:
            return
        ranged = RangeEditor(field, section)
        ranged.setObjectName(f"range:{path}")
        ranged.hide()
        toggle = QToolButton(text="⇆", checkable=True, objectName=f"rangeToggle:{path}")
        toggle.setToolTip("Sweep this field: try a range or a list of values instead of one value")
        grid.addWidget(ranged, row, 1)
        grid.addWidget(toggle, row, 2, Qt.AlignmentFlag.AlignTop)
        self.ranges[path], self.toggles[path], self.fixed[path] = ranged, toggle, editor
        self.labels[path] = label
        toggle.toggled.connect(lambda on: self.set_ranged(path, on))
        ranged.typed.connect(lambda value: self._write(path, value))

    def set_ranged(self, path: str, on: bool) -> None:
        """Switch a field to a range (starting from its value) or back to its one value."""
        if self.toggles[path].isChecked() != on:
            self.toggles[path].setChecked(on)  # comes back here through `toggled`
            return
        ranged = self.ranges[path]
        if on and path not in self.params():
            ranged.show_range(starting_range(ranged.field, self.model.value(path)))
            ranged.typed.emit(ranged.draft()[0])
            return
        if not on:
            self._write(path, None, remove=True)
        self._arrange(path)

    def _arrange(self, path: str) -> None:
        shown = not self.labels[path].isHidden()
        on = path in self.params() or self.toggles[path].isChecked()
        for widget, visible in ((self.fixed[path], shown and not on), (self.ranges[path], shown and on)):
            if widget.isHidden() == visible:
                widget.setVisible(visible)
        if self.toggles[path].isHidden() == shown:
            self.toggles[path].setVisible(shown)

    def follow_rows(self) -> None:
        """After the owner showed or hid rows: each row shows its value or its range."""
        for path in self.ranges:
            self._arrange(path)

    def params(self) -> dict:
        sweep = self.model.doc.get("sweep")
        params = sweep.get("params") if isinstance(sweep, dict) else None
        return params if isinstance(params, dict) else {}

    def _write(self, path: str, value: dict | None, remove: bool = False) -> None:
        """Put a range (as typed: the engine names what is wrong with it) into the document."""
        doc = self.model.doc
        if remove:
            self.params().pop(path, None)
            if not self.params() and isinstance(doc.get("sweep"), dict):
                del doc["sweep"]  # no range left: a plain run again
        else:
            sweep = doc.setdefault("sweep", {"objective": dict(DEFAULT_OBJECTIVE)})
            sweep.setdefault("params", {})[path] = copy.deepcopy(value)
        self.model.changed.emit("sweep")
        self.model.validate()
        self.changed.emit()

    def _show_document(self, path: str) -> None:
        """A document loaded or cloned: its ranges on the rows, its sweep fields on the card."""
        if path not in ("", "sweep"):
            return
        params = self.params()
        for p, ranged in self.ranges.items():
            on = p in params
            toggle = self.toggles[p]
            toggle.blockSignals(True)
            toggle.setChecked(on)
            toggle.blockSignals(False)
            if on and path == "":
                ranged.show_range(params[p])
        for key, (field, editor) in self.sweep_editors.items():
            node = self._sweep_node(key)
            name = key.rpartition(".")[2]
            editor.show_value(
                node.get(name, field.default) if node is not None else field.default,
                node is not None and name in node,
            )
        self.changed.emit()

    @property
    def sweeping(self) -> bool:
        return bool(self.params())

    # ------------------------------------------------------------ the sweep's own fields

    def sweep_fields(self) -> list[tuple[str, Field]]:
        """(path, field) of the sweep card's editors: the section's fields and the objective's."""
        out = [(f"sweep.{f.name}", f) for f in SWEEP if f.name not in ("params", "objective")]
        return [(f"sweep.objective.{f.name}", f) for f in OBJECTIVE] + out

    def bind_sweep_field(self, path: str, field: Field, editor: FieldEditor) -> None:
        self.sweep_editors[path] = (field, editor)
        editor.typed.connect(lambda raw: self._write_sweep_field(path, field, raw))

    def _sweep_node(self, path: str) -> dict | None:
        node = self.model.doc.get("sweep")
        for key in path.split(".")[1:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else None

    def _write_sweep_field(self, path: str, field: Field, raw) -> None:
        if not isinstance(self.model.doc.get("sweep"), dict):
            return  # no range yet: the card is hidden
        node = self.model.doc["sweep"]
        for key in path.split(".")[1:-1]:
            node = node.setdefault(key, {})
        value = parse(field, raw)
        value = value.value if isinstance(value, Problem) else value
        name = path.rpartition(".")[2]
        if value is UNSET:
            node.pop(name, None)
        else:
            node[name] = value
        self.model.validate()

    def show_problems(self, problems: dict[str, list[str]]) -> set[str]:
        """Show the engine's problems about ranges and sweep fields beside their editors;
        returns the problem paths shown."""
        shown: set[str] = set()
        for path, ranged in self.ranges.items():
            prefix = f"sweep.params.{path}"
            mine = [(p, ms) for p, ms in problems.items() if p == prefix or p.startswith(prefix + ".")]
            # The editor's own messages (said as the field says them) come first; the engine's
            # stand in once what was typed is a range.
            if path in self.params() and ranged.value() is not None:
                ranged.show_problems([m for _, ms in mine for m in ms])
            shown.update(p for p, _ in mine)
        for path, (_field, editor) in self.sweep_editors.items():
            editor.show_problems(problems.get(path, []))
            if path in problems:
                shown.add(path)
        return shown
