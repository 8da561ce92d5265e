"""Field declarations shared by the op registry and the run spec.

One `Field` says a value's type, default, range, help text and presentation: its label, when
it applies (`when`) and traits an editor needs (`traits`). The engine validates with it, the
GUI generates its forms from it, the CLI its help and the docs their tables, so a field is
declared once and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED = object()  # default of a field the user must give

# Messages quote what the user gave; a 10 MB string or a list of a million items must not
# become a 10 MB message, so quotes are cut to this many characters and lists to this many items.
QUOTE_CHARS = 60
LIST_ITEMS = 8
# An error lists at most this many problems (a 20,000-node graph can have 20,000), then a count.
MAX_PROBLEMS = 50

#: Traits an editor reads: "path" (a file or folder, relative to the spec), "run" (a run id
#: picked from the store), "multiline" (free text), "measured" (set by an import from the
#: original model: shown, not edited).
TRAITS = frozenset({"path", "run", "multiline", "measured"})


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # int | float | bool | str | choice | ints | floats | graph | any
    default: Any = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    choices: tuple = ()
    optional: bool = False  # None is allowed
    max_items: int | None = None  # ints/floats: the longest list accepted
    label: str = ""  # shown in forms and docs; default: the name, capitalised
    # When the field applies: {other field: allowed values}. A name without a dot is a sibling
    # in the same section (or op); a dotted name is a spec path. Given as a dict, kept as pairs
    # so a Field stays hashable.
    when: Any = ()
    traits: frozenset = frozenset()

    def __post_init__(self):
        if isinstance(self.when, Mapping):
            object.__setattr__(self, "when", tuple((k, tuple(v)) for k, v in self.when.items()))
        if not isinstance(self.traits, frozenset):
            object.__setattr__(self, "traits", frozenset(self.traits))
        unknown = self.traits - TRAITS
        if unknown:
            raise ValueError(f"field {self.name}: unknown traits {sorted(unknown)}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def applies(self, value_of: Callable[[str], Any], section: str = "") -> bool:
        """Whether the field matters given the other fields' values; `value_of(path)` reads a
        dotted spec path (for an op's params, pass section "" and read param names)."""
        return all(value_of(_path(section, other)) in allowed for other, allowed in self.when)

    def when_text(self, section: str = "") -> str:
        """`when` in words, for help texts: "only when optim.name is 'sgd'"."""
        parts = [f"{_path(section, k)} is {' or '.join(map(repr, vals))}" for k, vals in self.when]
        return "only when " + " and ".join(parts) if parts else ""

    def describe_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo = "" if self.min is None else f"{'>' if self.min_exclusive else '>='} {_bound(self.min)}"
        hi = "" if self.max is None else f"{'<' if self.max_exclusive else '<='} {_bound(self.max)}"
        return " and ".join(p for p in (lo, hi) if p)

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Return (normalised value, None) or (value, message naming the allowed range)."""
        if value is None:
            return (None, None) if self.optional else (value, f"is required ({self.kind})")
        kind = self.kind
        if kind == "bool":
            return (
                (value, None)
                if isinstance(value, bool)
                else (value, f"must be true or false, got {shown(value)}")
            )
        if kind in ("int", "float"):
            return self._check_number(value)
        if kind == "str":
            return (
                (value, None) if isinstance(value, str) else (value, f"must be a string, got {shown(value)}")
            )
        if kind == "choice":
            if isinstance(value, str | int | float | bool) and value in self.choices:
                return value, None
            return value, f"must be {self.describe_range()}, got {shown(value)}"
        if kind in ("ints", "floats"):
            return self._check_list(value)
        if kind == "graph":
            return (value, None) if isinstance(value, dict) else (value, "must be a graph object")
        return value, None

    def _check_list(self, value: Any) -> tuple[Any, str | None]:
        if not isinstance(value, list | tuple) or not value:
            return value, f"must be a non-empty list of numbers, got {shown(value)}"
        if self.max_items is not None and len(value) > self.max_items:
            return value, f"must have at most {self.max_items} items, got {len(value):,}"
        one = Field(
            self.name,
            self.kind[:-1],
            min=self.min,
            max=self.max,
            min_exclusive=self.min_exclusive,
            max_exclusive=self.max_exclusive,
        )
        out = []
        for item in value:
            v, err = one.check(item)
            if err:
                return value, f"every item {err}"
            out.append(v)
        return out, None

    def _check_number(self, value: Any) -> tuple[Any, str | None]:
        # The range is compared on the value as given: Python compares ints and floats exactly,
        # so 1e308 for an int field or a 400-digit int for a float field are refused, not
        # converted (float(10**400) overflows; int(1e308) is a 309-digit number).
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, f"must be a number{self._range_suffix()}, got {shown(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return value, f"must be a finite number{self._range_suffix()}, got {value!r}"
        if self.kind == "int" and isinstance(value, float) and not value.is_integer():
            return value, f"must be a whole number{self._range_suffix()}, got {value!r}"
        too_low = self.min is not None and (value <= self.min if self.min_exclusive else value < self.min)
        too_high = self.max is not None and (value >= self.max if self.max_exclusive else value > self.max)
        if too_low or too_high:
            return value, f"must be {self.describe_range()}, got {number_text(value)}"
        return (int(value) if self.kind == "int" else float(value)), None

    def _range_suffix(self) -> str:
        r = self.describe_range()
        return f" {r}" if r else ""


def shown(value: Any) -> str:
    """`repr(value)` for a message, cut to QUOTE_CHARS (huge strings and lists stay short)."""
    if isinstance(value, list | tuple | dict) and len(value) > LIST_ITEMS:
        kind = type(value).__name__
        return f"a {kind} of {len(value):,} items"
    if isinstance(value, int) and not isinstance(value, bool):
        return number_text(value)
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested too deeply; an int past the digit limit
        return f"a {type(value).__name__}"
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"


def number_text(value: int | float) -> str:
    """A number for a message: `{:g}` where that is exact enough, digits counted beyond."""
    if isinstance(value, int) and abs(value) >= 10**15:
        digits = len(str(abs(value))) if abs(value) < 10**4000 else "over 4000"
        return f"a {digits}-digit number"
    return f"{value:g}"


def listed(items, limit: int = LIST_ITEMS) -> str:
    """'a, b, c' with at most `limit` items and a count of the rest."""
    items = list(items)
    text = ", ".join(shown(i) if not isinstance(i, str) else shorten(i) for i in items[:limit])
    return text + (f" … ({len(items) - limit:,} more)" if len(items) > limit else "")


def cap_problems(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first MAX_PROBLEMS problems, and one more line counting the rest."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    rest = len(problems) - MAX_PROBLEMS + 1
    return [*problems[: MAX_PROBLEMS - 1], ("", f"… and {rest:,} more problems")]


def shorten(text: str, limit: int = QUOTE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_fields(fields: tuple[Field, ...], values: dict, path: str, problems: list[tuple[str, str]]) -> dict:
    """Validate `values` against `fields`, fill defaults, report unknown keys.

    Problems are appended as (dotted path, message), so the caller reports all at once.
    """
    known = {f.name: f for f in fields}
    out: dict = {}
    if not isinstance(values, dict):
        problems.append((path, f"must be an object, got {type(values).__name__}"))
        return out
    unknown = [key for key in values if key not in known]
    for key in unknown[:LIST_ITEMS]:
        allowed = f"allowed: {', '.join(known)}" if known else "it takes no parameters"
        problems.append((join(path, key), f"unknown field ({allowed})"))
    if len(unknown) > LIST_ITEMS:
        problems.append((path, f"{len(unknown) - LIST_ITEMS:,} more unknown fields"))
    for f in fields:
        if f.name not in values:
            if f.required:
                problems.append((join(path, f.name), f"is required ({f.help or f.kind})"))
            else:
                out[f.name] = f.default
            continue
        value, err = f.check(values[f.name])
        if err:
            problems.append((join(path, f.name), err))
        out[f.name] = value
    return out


def _bound(v: float) -> str:
    """A declared limit as people write it: 1,000,000 rather than 1e+06."""
    if float(v).is_integer() and abs(v) >= 10_000:
        return f"{int(v):,}"
    return f"{v:g}"


def _path(section: str, name: str) -> str:
    """A `when` key as a spec path: dotted names are absolute, plain ones siblings."""
    return name if "." in name or not section else f"{section}.{name}"


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = shorten(str(key), 64)
    return f"{path}.{key}" if path else key


def as_dict(f: Field) -> dict:
    """A JSON-friendly description, for docs and for clients that are not Python."""
    d = {"name": f.name, "label": f.title, "kind": f.kind, "help": f.help}
    if not f.required:
        d["default"] = f.default
    for attr in ("min", "max", "choices", "max_items"):
        v = getattr(f, attr)
        if v not in (None, ()):
            d[attr] = list(v) if attr == "choices" else v
    if f.min_exclusive:
        d["min_exclusive"] = True
    if f.max_exclusive:
        d["max_exclusive"] = True
    if f.when:
        d["when"] = {k: list(v) for k, v in f.when}
    if f.traits:
        d["traits"] = sorted(f.traits)
    return d
