"""The runs table's columns, each declared once: title, tooltip, how its value is read from the
catalog, how it reads on screen, how it sorts, its alignment and its colours.

A column is named by a string, as in `engine.run_table`: one of the runs' own (`name`,
`status`...), or a lazy `spec:optim.lr`, `summary:params`, `metric:val/accuracy` (last value)
or `best:val/loss`. `column(key)` gives its `Column`; the table model asks it for every cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QIcon

from app import theme
from app.experiments.catalog import RunCatalog, is_lazy, natural_order
from app.experiments.colors import run_color, swatch
from engine import format as fmt
from engine import run_table
from engine.compare import metric_goal

LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
CENTER = Qt.AlignmentFlag.AlignCenter

DEFAULT_COLUMNS = (
    "starred", "id", "name", "kind", "status", "parent_id", "created_at", "duration",
    "spec:optim.lr", "spec:train.batch_size", "summary:params", "metric:val/accuracy", "metric:val/loss", "tags",
)  # fmt: skip
STAR_COLOR = "#e0a100"
#: spec leaves that mean nothing without their section (optim.name vs schedule.name)
GENERIC_LEAVES = frozenset(
    {"name", "kind", "path", "source", "method", "target", "scope", "ratio", "steps", "every", "keep", "seed"}
)


def _nothing(*_args) -> None:
    return None


def _plain(value) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Column:
    """How one column reads. `value(catalog, row)` is the raw value (PENDING while a lazy one is
    not fetched): the table sorts by it and the CSV export writes it. The others take that
    value: `text` for the cell, `color` (foreground), `icon`, `hint` (the cell's tooltip, given
    the catalog and row too) and `bold`."""

    key: str
    title: str
    tooltip: str
    value: Callable[[RunCatalog, int], Any]
    text: Callable[[Any], str] = _plain
    sort_key: Callable[[Any], tuple] = natural_order
    align: Qt.AlignmentFlag = LEFT
    color: Callable[[Any], QColor | None] = _nothing
    icon: Callable[[RunCatalog, int, Any], QIcon | None] = _nothing
    hint: Callable[[RunCatalog, int, Any], str | None] = _nothing
    font: Callable[[RunCatalog, int], QFont | None] = _nothing
    editable: bool = False

    @property
    def lazy(self) -> bool:
        return is_lazy(self.key)

    @property
    def csv_title(self) -> str:
        return self.key if self.lazy else self.key.removesuffix("_id").removesuffix("_at")


def _stored(key: str) -> Callable[[RunCatalog, int], Any]:
    return lambda catalog, row: catalog.get(key, row)


def _subtle(_value) -> QColor:
    return QColor(theme.current().subtext)


def _name_hint(catalog: RunCatalog, row: int, value) -> str:
    notes = (catalog.rows["notes"][row] or "").strip()
    return f"#{catalog.ids[row]} {value}" + (f"\n\n{notes[:300]}" if notes else "")


def _bold_if_starred(catalog: RunCatalog, row: int) -> QFont | None:
    if not catalog.rows["starred"][row]:
        return None
    font = QFont()
    font.setBold(True)
    return font


def _run_columns() -> dict[str, Column]:
    """The runs' own columns, in the order the header menu offers them."""
    return {
        c.key: c
        for c in (
            Column(
                "starred", "★", "Starred runs", _stored("starred"),
                text=lambda v: "★" if v else "",
                align=CENTER,
                color=lambda _v: QColor(STAR_COLOR),
                hint=lambda _c, _r, v: "Starred (click to unstar)" if v else "Click to star",
            ),
            Column("id", "#", "Run id", _stored("id"), align=RIGHT, color=_subtle),
            Column(
                "name", "Name", "Name (double-click to rename)", _stored("name"),
                icon=lambda c, r, _v: swatch(run_color(c.ids[r])),
                hint=_name_hint,
                font=_bold_if_starred,
                editable=True,
            ),
            Column("kind", "Kind", "train, prune or distill", _stored("kind")),
            Column(
                "status", "Status", "Status", _stored("status"),
                color=lambda v: QColor(theme.STATUS_COLORS.get(v, theme.current().text)),
                icon=lambda _c, _r, v: swatch(theme.STATUS_COLORS.get(v, "#8a94a3"), round_=True),
            ),
            Column(
                "parent_id", "Parent", "The run this one was pruned or distilled from", _stored("parent_id"),
                text=lambda v: f"#{v}" if v else "",
                color=_subtle,
            ),
            Column(
                "created_at", "Created", "Created", _stored("created_at"),
                text=fmt.timestamp,
                color=_subtle,
                hint=lambda _c, _r, v: fmt.timestamp(v, seconds=True) or None,
            ),
            Column(
                "duration", "Duration", "How long it ran (so far, for a live run)",
                lambda c, r: c.duration(r),
                text=fmt.duration,
                align=RIGHT,
                color=_subtle,
            ),
            Column("tags", "Tags", "Tags", lambda c, r: ", ".join(c.tags(r))),
            Column(
                "notes", "Notes", "Notes (the first line)", _stored("notes"),
                text=lambda v: (v or "").strip().split("\n", 1)[0][:80],
                hint=lambda _c, _r, v: v or None,
            ),
        )
    }  # fmt: skip


RUN_COLUMNS = _run_columns()


def column_title(key: str) -> str:
    """A column's header: a spec field by its leaf (`lr`) unless the leaf is ambiguous."""
    prefix, name = run_table.split_column(key)
    if prefix == "run":
        return RUN_COLUMNS[name].title if name in RUN_COLUMNS else name
    if prefix == "best":
        return f"{name} (best)"
    if prefix == "spec":
        section, _, leaf = name.rpartition(".")
        return name if not section or leaf in GENERIC_LEAVES else leaf
    return name


def _lazy_tooltip(prefix: str, name: str) -> str:
    if prefix == "best":
        return f"Best value of {name} ({'highest' if metric_goal(name) == 'max' else 'lowest'})"
    words = {"spec": "Spec field", "summary": "Result", "metric": "Last value of"}
    return f"{words[prefix]} {name}"


@lru_cache(maxsize=512)
def column(key: str) -> Column:
    """The column named `key` (a lazy one is made on first use)."""
    if key in RUN_COLUMNS:
        return RUN_COLUMNS[key]
    prefix, name = run_table.split_column(key)
    if prefix == "run":
        raise KeyError(f"no run column {key!r}")
    return Column(
        key,
        column_title(key),
        _lazy_tooltip(prefix, name),
        _stored(key),
        text=lambda v: fmt.field(name, v),
        align=RIGHT,
        hint=lambda _c, _r, v: repr(v) if isinstance(v, float) else None,
    )
