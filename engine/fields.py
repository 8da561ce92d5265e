"""Field declarations shared by the op registry and the run spec.

One `Field` says a value's type, default, range and help text. The engine validates with it,
the GUI generates its forms from it and the docs print their tables from it, so a field is
declared once and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

REQUIRED = object()  # default of a field the user must give


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

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

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
                    return value, f"every item {err.removeprefix('must ')}" if err.startswith(
                        "must "
                    ) else err
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


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def as_dict(f: Field) -> dict:
    """A JSON-friendly description, for docs and for clients that are not Python."""
    d = {"name": f.name, "kind": f.kind, "help": f.help}
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
    return d
