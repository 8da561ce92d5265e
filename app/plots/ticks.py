"""Axis ranges and ticks that stay readable on any data, a degenerate range included.

Left alone, pyqtgraph gives a series whose values are all equal the previous scale around the
value: a constant learning rate of 1e-3 got an axis from -0.5 to 0.5 with the line at "0". And a
narrow range labelled with a fixed number of significant digits prints one value five times
("0.994 0.994 0.993", "151498" ×5). Here a range without width is widened around its value, ticks
fall on round multiples of a 1-, 2- or 5-times-a-power-of-ten step, and labels carry as many
digits as that step needs, so two ticks never read alike. Pure Python: the metric plots, the
scatter and the parallel coordinates all label from here.
"""

from __future__ import annotations

import math

REL_PAD = 0.1  # a range without width shows ±10 % around its value...
ZERO_PAD = 1.0  # ...or ±1 around 0
LOG_PAD = math.log10(1 + REL_PAD)  # on a log axis (in decades): the same ±10 %
SCIENTIFIC_BELOW, SCIENTIFIC_FROM = 1e-3, 1e6  # magnitudes written as 1.5e-4, 2.0e6
GROUP_FROM = 1e4  # thousands separators from here: 151,500
MAX_TICKS = 50


def is_degenerate(lo: float, hi: float) -> bool:
    """No width worth an axis: equal ends, or a difference lost in float rounding."""
    return abs(hi - lo) <= 1e-9 * max(abs(lo), abs(hi))


def padded_range(lo: float, hi: float, *, log: bool = False) -> tuple[float, float]:
    """[lo, hi] as an axis should show it: unchanged when it has a width, else widened around
    its value by ±10 % (±1 around 0; on a log axis, whose values are decades, by ±10 % of the
    value too). Non-finite ends pass through."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return lo, hi
    lo, hi = min(lo, hi), max(lo, hi)
    if not is_degenerate(lo, hi):
        return lo, hi
    mid = (lo + hi) / 2
    pad = LOG_PAD if log else (REL_PAD * abs(mid) if mid else ZERO_PAD)
    return mid - pad, mid + pad


def nice_step(span: float, target: int) -> float:
    """The finest 1, 2 or 5 × 10^k step that cuts `span` into at most 1.5 × `target` parts."""
    target = max(1, target)
    raw = span / target
    if not math.isfinite(raw) or raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if span / (m * magnitude) <= 1.5 * target * (1 + 1e-9))


def nice_ticks(lo: float, hi: float, target: int = 5, *, integer: bool = False) -> tuple[float, list[float]]:
    """(step, values): about `target` round values inside [lo, hi], which is padded first when it
    has no width. `integer`: never a step below 1 (steps of a run have no halves)."""
    lo, hi = padded_range(lo, hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 1.0, []
    step = nice_step(hi - lo, target)
    if integer:
        step = max(1.0, step)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    if last - first > MAX_TICKS:
        step = nice_step(hi - lo, MAX_TICKS)
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    decimals = _decimals(step)
    return step, [float(round(k * step, decimals + 1)) or 0.0 for k in range(first, last + 1)]


def tick_labels(values: list[float], step: float) -> list[str]:
    """Labels that differ wherever the values do: as many decimals as `step` needs, or for
    magnitudes below 1e-3 or from 1e6 scientific notation with as many mantissa digits as the
    step needs (1.00e-3, 1.05e-3)."""
    if not len(values):
        return []
    big = max(abs(v) for v in values)
    step = abs(step) or big or 1.0
    if big and (big < SCIENTIFIC_BELOW or big >= SCIENTIFIC_FROM):
        digits = max(0, math.floor(math.log10(big)) - math.floor(math.log10(step) + 1e-9))
        return [_scientific(v, digits) for v in values]
    decimals = _decimals(step)
    grouping = "," if big >= GROUP_FROM else ""
    return [_fixed(v, decimals, grouping) for v in values]


def _decimals(step: float) -> int:
    """Decimals that write every multiple of `step` exactly (0.25 → 2, 0.2 → 1, 5 → 0)."""
    step = abs(step)
    for d in range(0, 24):
        scaled = step * 10**d
        if scaled >= 1 - 1e-9 and abs(scaled - round(scaled)) < 1e-6 * scaled:
            return d
    return 23


def _fixed(v: float, decimals: int, grouping: str) -> str:
    text = f"{v:{grouping}.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text  # never "-0"


def _scientific(v: float, digits: int) -> str:
    if v == 0:
        return "0"
    mantissa, exponent = f"{v:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"
