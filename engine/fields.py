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

#: Traits an editor reads: "path" (a file or folder, relative to the spec), "run" (a run id
#: picked from the store), "multiline" (free text).
TRAITS = frozenset({"path", "run", "multiline"})


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
        lo = "" if self.min is None else (f"> {self.min:g}" if self.min_exclusive else f">= {self.min:g}")
        hi = "" if self.max is None else (f"< {self.max:g}" if self.max_exclusive else f"<= {self.max:g}")
        return " and ".join(p for p in (lo, hi) if p)

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Return (normalised value, None) or (value, message naming the allowed range)."""
        if value is None:
            return (None, None) if self.optional else (value, f"is required ({self.kind})")
        kind = self.kind
        if kind == "bool":
            return (
                (value, None) if isinstance(value, bool) else (value, f"must be true or false, got {value!r}")
            )
        if kind in ("int", "float"):
            return self._check_number(value)
        if kind == "str":
            return (value, None) if isinstance(value, str) else (value, f"must be a string, got {value!r}")
        if kind == "choice":
            if value in self.choices:
                return value, None
            return value, f"must be {self.describe_range()}, got {value!r}"
        if kind in ("ints", "floats"):
            if not isinstance(value, list | tuple) or not value:
                return value, f"must be a non-empty list of numbers, got {value!r}"
            out = []
            for item in value:
                one = Field(
                    self.name,
                    kind[:-1],
                    min=self.min,
                    max=self.max,
                    min_exclusive=self.min_exclusive,
                    max_exclusive=self.max_exclusive,
                )
                v, err = one.check(item)
                if err:
                    return value, f"every item {err}"
                out.append(v)
            return out, None
        if kind == "graph":
            return (value, None) if isinstance(value, dict) else (value, "must be a graph object")
        return value, None

    def _check_number(self, value: Any) -> tuple[Any, str | None]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, f"must be a number{self._range_suffix()}, got {value!r}"
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                return value, f"must be a whole number{self._range_suffix()}, got {value!r}"
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                return value, f"must be finite, got {value!r}"
        too_low = self.min is not None and (value <= self.min if self.min_exclusive else value < self.min)
        too_high = self.max is not None and (value >= self.max if self.max_exclusive else value > self.max)
        if too_low or too_high:
            return value, f"must be {self.describe_range()}, got {value:g}"
        return value, None

    def _range_suffix(self) -> str:
        r = self.describe_range()
        return f" {r}" if r else ""


def check_fields(fields: tuple[Field, ...], values: dict, path: str, problems: list[tuple[str, str]]) -> dict:
    """Validate `values` against `fields`, fill defaults, report unknown keys.

    Problems are appended as (dotted path, message), so the caller reports all at once.
    """
    known = {f.name: f for f in fields}
    out: dict = {}
    if not isinstance(values, dict):
        problems.append((path, f"must be an object, got {type(values).__name__}"))
        return out
    for key in values:
        if key not in known:
            allowed = f"allowed: {', '.join(known)}" if known else "it takes no parameters"
            problems.append((join(path, key), f"unknown field ({allowed})"))
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


def _path(section: str, name: str) -> str:
    """A `when` key as a spec path: dotted names are absolute, plain ones siblings."""
    return name if "." in name or not section else f"{section}.{name}"


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def as_dict(f: Field) -> dict:
    """A JSON-friendly description, for docs and for clients that are not Python."""
    d = {"name": f.name, "label": f.title, "kind": f.kind, "help": f.help}
    if not f.required:
        d["default"] = f.default
    for attr in ("min", "max", "choices"):
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
