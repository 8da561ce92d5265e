"""`CurveBuffer`: a growing (x, y) series that draws in time independent of its length.

Points go into preallocated numpy arrays grown by doubling, so appending a batch is a slice
copy. Beside the points the buffer keeps a min/max pyramid — level k holds, for every block of
BLOCK**k consecutive points, the block's first x and its lowest and highest y — extended as
points arrive. `view(x0, x1, max_points)` then answers from the coarsest level that still gives
about `max_points` points across the visible span: peak decimation (every spike survives, as
the envelope), in time proportional to the screen's width rather than to the series' length.

A live plot at a million points therefore re-renders in well under a millisecond, where handing
pyqtgraph the whole array costs ~10 ms per curve and per frame (its own downsampling is O(n)).
"""

from __future__ import annotations

import math

import numpy as np

BLOCK = 4  # points per block, at every level of the pyramid
_EMPTY = np.empty(0, dtype=np.float64)


def _grow(arr: np.ndarray, need: int) -> np.ndarray:
    """`arr` with room for `need` items: doubled (at least) and the old contents kept."""
    if need <= len(arr):
        return arr
    out = np.empty(max(need, 2 * len(arr), 16), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _blocks(op, values: np.ndarray) -> np.ndarray:
    """op (np.fmin or np.fmax: NaN-skipping) over each run of BLOCK values: strided elementwise
    passes, several times faster than `op.reduce(values.reshape(-1, BLOCK), axis=1)`."""
    out = values[0::BLOCK].copy()
    for j in range(1, BLOCK):
        op(out, values[j::BLOCK], out=out)
    return out


class _Level:
    """One pyramid level: per block, the x of its first point and the min and max of y."""

    __slots__ = ("x", "lo", "hi", "n")

    def __init__(self):
        self.x, self.lo, self.hi, self.n = _EMPTY, _EMPTY, _EMPTY, 0

    def append(self, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        end = self.n + len(x)
        self.x, self.lo, self.hi = _grow(self.x, end), _grow(self.lo, end), _grow(self.hi, end)
        self.x[self.n : end], self.lo[self.n : end], self.hi[self.n : end] = x, lo, hi
        self.n = end


class CurveBuffer:
    """An append-mostly series of (x, y) float64 points, with x normally non-decreasing (steps).

    `n` and `generation` tell a view what changed: `n` grows on append; `generation` increases
    when points are removed or replaced, so anything derived (a smoothed copy, a drawn curve)
    must be rebuilt rather than extended.
    """

    def __init__(self, capacity: int = 1024):
        self._x = np.empty(capacity, dtype=np.float64)
        self._y = np.empty(capacity, dtype=np.float64)
        self.n = 0
        self.generation = 0
        self.sorted = True  # x non-decreasing: views clip with a binary search
        self._levels: list[_Level] = []  # _levels[k] has blocks of BLOCK ** (k + 1) points

    def __len__(self) -> int:
        return self.n

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.n]

    @property
    def capacity(self) -> int:
        return len(self._x)

    def last(self) -> tuple[float, float] | None:
        return (float(self._x[self.n - 1]), float(self._y[self.n - 1])) if self.n else None

    # ------------------------------------------------------------ changing it

    def extend(self, x, y) -> None:
        """Append points (array-likes of equal length)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} points, y has {len(y)}")
        if not len(x):
            return
        if self.sorted and ((self.n and x[0] < self._x[self.n - 1]) or np.any(np.diff(x) < 0)):
            self.sorted = False
        end = self.n + len(x)
        self._x, self._y = _grow(self._x, end), _grow(self._y, end)
        self._x[self.n : end] = x
        self._y[self.n : end] = y
        self.n = end
        self._extend_levels()

    def replace(self, x, y) -> None:
        """Make the buffer hold exactly these points."""
        self.clear()
        self.extend(x, y)

    def clear(self) -> None:
        self.n = 0
        self.sorted = True
        self._levels.clear()
        self.generation += 1

    def truncate_after(self, x_max: float) -> None:
        """Drop the points with x > x_max (a resumed run replays the steps after its checkpoint)."""
        if not self.n:
            return
        if self.sorted:
            keep = int(np.searchsorted(self.x, x_max, side="right"))
            if keep == self.n:
                return
            self.n = keep
            below = keep
            for level in self._levels:
                level.n = min(level.n, below // BLOCK)
                below = level.n
            self.generation += 1
            return
        mask = self.x <= x_max
        if not mask.all():
            self.replace(self.x[mask].copy(), self.y[mask].copy())

    def _extend_levels(self) -> None:
        below_x, below_lo, below_hi, below_n = self._x, self._y, self._y, self.n
        k = 0
        while below_n >= BLOCK:
            if k == len(self._levels):
                self._levels.append(_Level())
            level = self._levels[k]
            full = below_n // BLOCK
            if full > level.n:
                a, b = level.n * BLOCK, full * BLOCK
                level.append(
                    below_x[a:b:BLOCK], _blocks(np.fmin, below_lo[a:b]), _blocks(np.fmax, below_hi[a:b])
                )
            below_x, below_lo, below_hi, below_n = level.x, level.lo, level.hi, level.n
            k += 1

    # ------------------------------------------------------------ reading it

    def nearest(self, x: float) -> int | None:
        """Index of the point whose x is closest to `x` (None when empty)."""
        if not self.n:
            return None
        xs = self.x
        if not self.sorted:
            return int(np.nanargmin(np.abs(xs - x)))
        i = int(np.searchsorted(xs, x))
        if i <= 0:
            return 0
        if i >= self.n:
            return self.n - 1
        return i if xs[i] - x < x - xs[i - 1] else i - 1

    def view(
        self, x0: float | None = None, x1: float | None = None, max_points: int = 2000
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points that draw the span [x0, x1] faithfully: the raw points when there are at most
        `max_points`, else each block's min and max at the block's x, from the coarsest level
        giving at least `max_points` (so fewer than BLOCK × max_points). One
        point beyond each end is included so the line runs off the edges of the view."""
        n = self.n
        if not n:
            return _EMPTY, _EMPTY
        i0, i1 = 0, n
        if self.sorted and x0 is not None and x1 is not None:
            xs = self.x
            i0 = max(0, int(np.searchsorted(xs, x0, side="left")) - 1)
            i1 = min(n, int(np.searchsorted(xs, x1, side="right")) + 1)
        count = i1 - i0
        max_points = max(2, int(max_points))
        if count <= max_points or not self._levels:
            return self._x[i0:i1].copy(), self._y[i0:i1].copy()
        # each block draws as two points (min, max): the coarsest level with ≥ max_points of them
        level = math.floor(math.log(2 * count / max_points, BLOCK))
        return self._span(i0, i1, min(max(level, 1), len(self._levels)) - 1)

    def _span(self, i0: int, i1: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Points i0..i1 drawn from level k's complete blocks, the rest from finer levels."""
        if k < 0:
            return self._x[i0:i1].copy(), self._y[i0:i1].copy()
        level, size = self._levels[k], BLOCK ** (k + 1)
        b0, b1 = i0 // size, min(-(-i1 // size), level.n)
        if b1 <= b0:  # in the tail no block of this size is complete yet
            return self._span(i0, i1, k - 1)
        xs = np.repeat(level.x[b0:b1], 2)
        ys = np.empty(2 * (b1 - b0))
        ys[0::2], ys[1::2] = level.lo[b0:b1], level.hi[b0:b1]
        if b1 * size < i1:
            tx, ty = self._span(b1 * size, i1, k - 1)
            xs, ys = np.concatenate([xs, tx]), np.concatenate([ys, ty])
        return xs, ys
