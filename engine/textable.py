"""Plain-text tables for the terminal: `trainbench runs`, `show`, `compare`, `ops` and whatever
command comes next print through `render`.

Columns are padded to their widest cell; numbers may be right-aligned. A column marked `wrap`
(free text: help, parameter lists) is folded onto continuation lines so the table fits the
terminal (`shutil.get_terminal_size`: the terminal's width, `$COLUMNS`, or 80 when the output is
not a terminal) instead of running to 250 columns.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

GAP = "  "
MIN_WRAP = 16  # a wrapped column never gets narrower than this


@dataclass(frozen=True)
class Col:
    """One column: the row key it shows, its heading (default: the key), right alignment for
    numbers, and whether its text may wrap."""

    key: str
    title: str = ""
    right: bool = False
    wrap: bool = False

    @property
    def heading(self) -> str:
        return self.title or self.key


def terminal_width() -> int:
    return shutil.get_terminal_size(fallback=(80, 24)).columns


def render(
    rows: Iterable[Mapping], columns: Sequence[Col | str], width: int | None = None, empty: str = "(none)"
) -> str:
    """The table as text (no trailing newline), or `empty` without rows. `width` defaults to the
    terminal's; only `wrap` columns shrink to meet it."""
    cols = [c if isinstance(c, Col) else Col(c) for c in columns]
    cells = [[_text(r.get(c.key)) for c in cols] for r in rows]
    if not cells:
        return empty
    natural = [max(len(c.heading), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    # a wrapped column is at least as wide as its longest word, so no word is cut in two
    least = [
        min(natural[i], max(MIN_WRAP, *(len(w) for row in cells for w in row[i].split())))
        if c.wrap
        else natural[i]
        for i, c in enumerate(cols)
    ]
    widths = _fit(cols, natural, least, terminal_width() if width is None else width)
    lines = [_line([c.heading for c in cols], cols, widths), _line(["-" * w for w in widths], cols, widths)]
    for row in cells:
        folded = [
            textwrap.wrap(text, widths[i], break_on_hyphens=False, break_long_words=False) or [""]
            if c.wrap
            else [text]
            for i, (c, text) in enumerate(zip(cols, row, strict=True))
        ]
        for k in range(max(map(len, folded))):
            lines.append(_line([f[k] if k < len(f) else "" for f in folded], cols, widths))
    return "\n".join(lines)


def print_table(rows: Iterable[Mapping], columns: Sequence[Col | str], width: int | None = None) -> None:
    print(render(rows, columns, width))


def _fit(cols: list[Col], natural: list[int], least: list[int], width: int) -> list[int]:
    """Column widths: natural ones, except that the `wrap` columns share what is left of
    `width`: each gets its `least`, and the rest goes in proportion to how much more it wants."""
    wrapped = [i for i, c in enumerate(cols) if c.wrap]
    total = sum(natural) + len(GAP) * (len(cols) - 1)
    if not wrapped or total <= width:
        return natural
    spare = width - (total - sum(natural[i] for i in wrapped)) - sum(least[i] for i in wrapped)
    slack = sum(natural[i] - least[i] for i in wrapped)
    widths = list(natural)
    for i in wrapped:
        widths[i] = least[i] + (max(0, spare) * (natural[i] - least[i]) // slack if slack else 0)
    return widths


def _line(texts: list[str], cols: list[Col], widths: list[int]) -> str:
    return GAP.join(
        t.rjust(w) if c.right else t.ljust(w) for t, c, w in zip(texts, cols, widths, strict=True)
    ).rstrip()


def _text(v) -> str:
    return "" if v is None else str(v)
