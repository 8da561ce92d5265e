"""How numbers read to people: counts, metric values, durations and times.

One module, Qt-free, so the GUI's tables and plots and the CLI's `runs`/`show`/`compare` print
the same value the same way.
"""

from __future__ import annotations

import math
import time


def count(n: int | float | None) -> str:
    """1234 → '1.23k', 5_600_000 → '5.6M', None → '—'."""
    if n is None:
        return "—"
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.3g}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return str(int(n)) if float(n).is_integer() else f"{n:.3g}"


def value(v: float | int | None) -> str:
    """A metric value in four significant digits: 0.019013814628124237 → '0.01901'; very small
    or large magnitudes in scientific notation; thousands with a separator."""
    if v is None:
        return ""
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e6):
        return f"{v:.3e}"
    return f"{v:.4g}" if a < 1000 else f"{v:,.1f}"


def duration(seconds: float | None) -> str:
    """'42 s', '3 min 05 s', '2 h 07 min'; '' when unknown."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def clock(seconds: float | None) -> str:
    """A running time as a clock: '1:05', '2:07:40'; '—' when unknown."""
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def timestamp(t: float | None) -> str:
    """A unix time as local 'YYYY-MM-DD HH:MM'; '' when unset."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""
