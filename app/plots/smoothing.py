"""Curve smoothing as TensorBoard does it: a debiased exponential moving average.

A plain EMA starts from 0 and so drags the first points of a curve towards zero; dividing by
(1 − weight^k), k the number of points seen, removes that bias, so the smoothed curve starts
where the data starts. Non-finite values pass through unsmoothed and leave the average alone.

The recurrence runs in numpy blocks (a closed form per block, the state carried between
blocks), so smoothing a million points takes milliseconds without scipy, and a live curve is
extended point batch by point batch from the returned state.

Smoothing is for dense, noisy per-step signals. A series of fewer than `DENSE_POINTS` points
(evaluations, one-off measurements) is drawn raw: an EMA of 0.6 over eight evaluations lags
them by several evaluations, enough to put the worse of two runs below the better one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_WEIGHT = 0.999
DENSE_POINTS = 50  # a series with fewer points is never smoothed (see above)
NOT_NOISY = ("val/", "sys/", "teacher/")  # evaluations and samples: exact, or averaged already
EXACT = ("train/lr", "train/epoch")  # schedules: what the run did, to the digit


def noisy(key: str) -> bool:
    """Whether a metric is a per-step signal that smoothing helps to read (train/loss, perf/*)
    rather than an evaluation, a resource sample or a schedule, which are drawn as they are."""
    return not key.startswith(NOT_NOISY) and key not in EXACT


@dataclass(frozen=True)
class EmaState:
    last: float = 0.0  # the biased average so far
    count: int = 0  # finite values averaged so far


def debiased_ema(
    values: np.ndarray, weight: float, state: EmaState | None = None
) -> tuple[np.ndarray, EmaState]:
    """Smoothed copy of `values` and the state to continue from with the next values."""
    state = state or EmaState()
    values = np.asarray(values, dtype=np.float64)
    w = min(float(weight), MAX_WEIGHT)
    if w <= 0 or not len(values):
        return values.copy(), state
    finite = np.isfinite(values)
    every = bool(finite.all())
    f = values if every else values[finite]
    if not len(f):
        return values.copy(), state
    acc = _ema(f, w, state.last)
    new_state = EmaState(float(acc[-1]), state.count + len(f))  # the biased average carries on
    # divide by 1 - w^k, k the values seen so far; past ~40/-ln(w) values that is 1 exactly
    span = min(len(f), max(0, int(40 / -math.log(w)) - state.count + 1))
    if span > 0:
        k = state.count + np.arange(1, span + 1, dtype=np.float64)
        acc[:span] /= -np.expm1(k * math.log(w))  # 1 - w**k, accurate for small k
    if every:
        return acc, new_state
    out = values.copy()
    out[finite] = acc
    return out, new_state


def _ema(f: np.ndarray, w: float, start: float) -> np.ndarray:
    """acc[j] = w·acc[j-1] + (1-w)·f[j], acc[-1] = start; in blocks of m values, where
    acc[j] = w^(j+1)·(start + (1-w)·Σ_{i≤j} w^-(i+1)·f[i]) stays within float range."""
    m = max(1, min(len(f), int(300 / -math.log(w))))  # w^-m ≤ e^300
    rows = -(-len(f) // m)
    padded = np.zeros(rows * m)
    padded[: len(f)] = f
    blocks = padded.reshape(rows, m)
    j = np.arange(1, m + 1, dtype=np.float64)
    up, down = np.exp(-j * math.log(w)), np.exp(j * math.log(w))  # w^-j, w^j
    local = (1 - w) * np.cumsum(blocks * up, axis=1) * down  # each block from a zero start
    # carry each block's final value into the next: s_b = w^m·s_{b-1} + local[b-1, -1]
    wm, s, carry = w**m, start, np.empty(rows)
    ends = local[:, -1].tolist()
    for b in range(rows):
        carry[b] = s
        s = wm * s + ends[b]
    return (local + carry[:, None] * down).ravel()[: len(f)]
