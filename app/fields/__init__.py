"""The field-editor kit: every form of the app edits `engine.fields.Field`s with these pieces.

- `values`: `parse(field, raw)` (text as typed → a value of the field's kind, `UNSET`, or a
  `Problem`), `editor_text` (a value → the text that parses back to it) and `placeholder`.
- `editors`: one editor per kind and trait (`make_editor`), `field_tooltip` (help, range,
  default and `when`, in words) and the editors' common interface: `typed(raw)`,
  `finished(raw)`, `focused()`, `show_value(value, is_set)`, `show_problems(messages)`.
- `wheel`: a field takes the mouse wheel only while focused; elsewhere the wheel scrolls the page.

Editors decide nothing. A *binder* connects editors to the thing they edit and owns the policy:

- The designer's inspector (`app.designer.inspector`) checks every typed value with
  `Field.check` and shows the engine's message at once, and on `finished` commits a valid value
  as one `SetParam` undo command (edits between focusing a field and leaving it merge into one
  undo step).
- The run form (`app.runs.form`) reports every `typed(raw)` as `(path, raw)` to its spec model
  (`RunSpecModel.edit`), which keeps what was typed, even when invalid; the engine validates
  the whole spec and the form shows each problem beside the editor its path names.

A third binder, for sweep ranges, would be built the same way and needs nothing new here: per
field, a toggle between the field's own editor (a fixed value) and a range editor composed of
kit pieces — a `ChoiceEditor` over a `Field("distribution", "choice", choices=("uniform",
"log_uniform", "choice"))` and two editors made by `make_editor(field)` for the bounds (or a
`TextEditor` over `Field(..., kind=field.kind + "s")` for a list of values). The binder parses
each bound with `parse(field, raw)` and checks it with the field's own `Field.check`, so a bound
obeys the field's range (a learning rate's low bound > 0) and the messages are the engine's;
it reports `(path, {"distribution": …, "low": …, "high": …})` to a sweep model that, like
`RunSpecModel`, keeps the document and its validation.
"""

from app.fields.editors import (
    BoolEditor,
    ChoiceEditor,
    FieldEditor,
    GraphEditor,
    IntEditor,
    MultilineEditor,
    PathEditor,
    RunPicker,
    TextEditor,
    field_tooltip,
    make_editor,
    set_flag,
)
from app.fields.values import UNSET, Problem, editor_text, parse, placeholder
from app.fields.wheel import wheel_needs_focus, wheel_scrolls_page

__all__ = [
    "UNSET",
    "BoolEditor",
    "ChoiceEditor",
    "FieldEditor",
    "GraphEditor",
    "IntEditor",
    "MultilineEditor",
    "PathEditor",
    "Problem",
    "RunPicker",
    "TextEditor",
    "editor_text",
    "field_tooltip",
    "make_editor",
    "parse",
    "placeholder",
    "set_flag",
    "wheel_needs_focus",
    "wheel_scrolls_page",
]
