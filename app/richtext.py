"""Help text on screen. The registries write help in plain text with `code` in backticks (the
CLI prints it as is); tooltips, the palette, the inspector and notes show it as HTML, with the
backticked parts as <code> and everything else escaped, so a `<` in a help text stays a `<`.
"""

from __future__ import annotations

import html as _html
import re

_CODE = re.compile(r"`([^`\n]+)`")


def html(text: str) -> str:
    """Plain help text as an HTML fragment: escaped, `code` → <code>code</code>."""
    parts = _CODE.split(str(text))
    # split() alternates: text, code, text, code, ..., text
    return "".join(
        f"<code>{_html.escape(part, quote=False)}</code>" if i % 2 else _html.escape(part, quote=False)
        for i, part in enumerate(parts)
    )


def tooltip(text: str) -> str:
    """Help text as a tooltip: Qt guesses rich text from the first tag, so mark it as such."""
    return f"<qt>{html(text)}</qt>"


def plain(text: str) -> str:
    """Help text for places that show plain text (status bar, plain labels): backticks dropped."""
    return _CODE.sub(r"\1", str(text))
