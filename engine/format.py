"""How numbers read to people: counts, metric values, sizes, durations and times.

One module, Qt-free, so the GUI's tables and plots and the CLI's `runs`/`show`/`compare` print
the same value the same way.
"""

from __future__ import annotations

import math
import time

#: words in a field's name that make its value a count (shown as 1.2k, 3.4M)
COUNT_WORDS = ("params", "flops", "bytes", "size")


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
    """A metric value in four significant digits: 0.019013814628124237 → '0.01901', 3e-05 →
    '3e-05' (Python's `g` turns to an exponent below 1e-4 and drops trailing zeros, so a
    learning rate reads as typed); thousands with a separator (and a decimal unless whole), a
    million and more with an exponent; '' when missing."""
    if v is None:
        return ""
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    if 1000 <= abs(v) < 1e6:
        return f"{v:,.0f}" if v.is_integer() else f"{v:,.1f}"
    return f"{v:.4g}"


def field(name: str, v) -> str:
    """A named hyperparameter or result as it reads in a table cell: counts (`params`,
    `flops`, `bytes`...) compact, other numbers by `value`, flags as yes/no, '' when missing."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        if any(w in name for w in COUNT_WORDS) and float(v).is_integer():
            return count(v)
        if name.endswith("mfu"):
            return utilization(v)
        return value(v)
    return str(v)


def utilization(v: float) -> str:
    """A share of a device's peak (MFU): '41.7%', '0.32%' (small shares keep two digits)."""
    return f"{v:.1%}" if v >= 0.1 else f"{v * 100:.2g}%"


def size(n: int | float | None) -> str:
    """Bytes in binary units: '612.0 KiB', '1.52 MiB'; '' when unknown."""
    if n is None:
        return ""
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.2f} MiB"
    return f"{n / 1024:.1f} KiB"


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


def timestamp(t: float | None, seconds: bool = False) -> str:
    """A unix time as local 'YYYY-MM-DD HH:MM' (with ':SS' when `seconds`); '' when unset."""
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(t)) if t else ""
