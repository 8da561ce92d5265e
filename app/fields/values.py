"""Text ⇄ value for a `Field`: the one parser every editor and binder of the kit uses.

Qt-free, so it is tested without widgets and a headless caller could reuse it. `parse` only
turns what was typed into a value of the field's kind; whether that value is allowed (its
range, its choices) is the engine's `Field.check`, which binders call or the engine's own
validation applies, so the wording of every message is the engine's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from engine.fields import Field


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "No value given": the field takes its default (a spec leaves the key out, a node the param).
UNSET: Any = _Unset()


@dataclass(frozen=True)
class Problem:
    """Text that makes no value of the field's kind ("fast" for a learning rate).

    `value` is what was typed, as near as JSON gets (a number when it is one, else the text),
    so a binder that keeps invalid input, as the run form does, stores something the engine
    words exactly like `message`, which is `Field.check`'s message for that value.
    """

    value: Any
    message: str


# Separators of a number list: "1, 28, 28", "1x28x28", "1×28×28", "[1 28 28]", "(1; 28; 28)".
_LIST_SEPARATORS = re.compile(r"[\s,;×x\[\]()]+")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse(field: Field, raw: Any) -> Any:
    """What the user gave, as a value of `field`'s kind: the value, `UNSET`, or a `Problem`.

    `raw` is text as typed, or a value from a widget that offers only values (a check box, a
    combo box, a run picker, a sub-designer), which passes through unchanged. Empty text is
    `UNSET`. Accepted text, by kind:

    - int, float: Python number syntax ("3", "3e-4", "1_000"); an int field takes "1e3" as 1000
      and keeps "2.5" as 2.5 for the engine to refuse; "nan"/"inf" are problems.
    - ints, floats: numbers separated by commas, spaces, ";", "x" or "×", optionally in
      brackets ("1, 28, 28", "1x28x28", "[1, 28, 28]").
    - bool: true/false, yes/no, on/off, 1/0. choice: a choice as written.
    - str: the text, stripped. any: JSON when the text is JSON ("[1, 2]", "4", "null"),
      otherwise the text itself ("1:4").
    """
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if not text:
        return UNSET
    kind = field.kind
    if kind in ("str", "graph"):
        return text
    if kind in ("int", "float"):
        number = _number(text, kind)
        return number if number is not None else _problem(field, text)
    if kind in ("ints", "floats"):
        parts = [p for p in _LIST_SEPARATORS.split(text) if p]
        numbers = [_number(p, kind[:-1]) for p in parts]
        if numbers and all(n is not None for n in numbers):
            return numbers
        return _problem(field, text)
    if kind == "bool":
        word = text.lower()
        return True if word in _TRUE else False if word in _FALSE else _problem(field, text)
    if kind == "choice":
        for choice in field.choices:
            if str(choice) == text:
                return choice
        return _problem(field, text)
    try:  # "any"
        return json.loads(text)
    except ValueError:
        return text


def _number(text: str, kind: str) -> int | float | None:
    """An int or float of `text`, None when it is no finite number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return int(value) if kind == "int" and value.is_integer() else value


def _problem(field: Field, text: str) -> Problem:
    return Problem(text, field.check(text)[1] or f"cannot be {text!r}")


def same(parsed: Any, value: Any) -> bool:
    """Whether text that parsed to `parsed` already says `value` ("0." says 0.0), so an editor
    showing the model's value can leave the text, and the cursor, alone."""
    if isinstance(parsed, Problem):
        parsed = parsed.value
    if isinstance(parsed, bool) != isinstance(value, bool):
        return False
    return parsed is value if parsed is UNSET or value is UNSET else parsed == value


def editor_text(field: Field, value: Any) -> str:
    """The text an editor shows for `value`; `parse` reads it back as the same value (floats
    are written in full, not rounded: an edit must not change digits the user did not touch)."""
    if value is None or value is UNSET:
        return ""
    if field.kind == "any":
        # text that is not JSON stands for itself; anything else is written as JSON ("2" → '"2"')
        return value if isinstance(value, str) and _is_plain_text(value) else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if field.kind in ("int", "ints") and value.is_integer() else repr(value)
    if isinstance(value, list | tuple):
        return ", ".join(editor_text(field, v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _is_plain_text(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return bool(text.strip()) and text == text.strip()
    return False


def placeholder(field: Field) -> str:
    """What an empty editor says: the default it stands for, or what empty means."""
    default = field.default
    if not field.required and default not in (None, "", [], ()):
        return f"default {default if isinstance(default, str) else editor_text(field, default)}"
    if field.kind in ("ints", "floats"):
        return "e.g. 1, 28, 28"
    if field.optional:
        return "auto" if field.kind in ("int", "float") else "none"
    return ""
