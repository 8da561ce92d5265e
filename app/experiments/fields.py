"""Which run fields the many-runs views offer, and how a column of values maps onto an axis.

Shared by the parallel coordinates and the scatter: both plot columns of the runs table
(`spec:`, `summary:`, `metric:`, `best:`), fetched whole through the table's catalog.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from app.experiments.catalog import RunCatalog
from app.experiments.columns import column_title
from engine import run_table
from engine.compare import NOT_HYPERPARAMETERS

#: hyperparameters worth an axis first, when they vary
PREFERRED = (
    "optim.lr", "optim.name", "optim.weight_decay", "train.batch_size", "train.epochs", "schedule.name",
    "schedule.warmup_steps", "train.grad_accum", "train.precision", "prune.ratio", "prune.method",
    "distill.temperature", "distill.alpha", "train.seed",
)  # fmt: skip
#: spec fields that are never worth an axis (paths, ids of other runs, machine settings)
SKIP_PREFIXES = ("hardware.", "checkpoint.", "data.path", "data.target", "prune.parent", "distill.teacher")
PREFERRED_METRICS = ("metric:val/accuracy", "metric:val/loss", "metric:val/perplexity", "metric:val/rmse")
SAMPLE = 300  # runs looked at to find which hyperparameters vary


def hyperparameter_choices(catalog: RunCatalog) -> list[str]:
    """Spec columns a user may pick as axes (skipping ones that never make sense)."""
    spec_keys, _ = run_table.field_keys(catalog.store)
    return [
        f"spec:{k}"
        for k in spec_keys
        if k not in NOT_HYPERPARAMETERS and not k.startswith(SKIP_PREFIXES) and "." in k
    ]


def metric_choices(catalog: RunCatalog) -> list[str]:
    """Result columns: final and best metrics, then the summary's numeric fields."""
    keys = run_table.metric_keys(catalog.store)
    _, summary_keys = run_table.field_keys(catalog.store)
    ordered = [c for c in PREFERRED_METRICS if c.split(":", 1)[1] in keys]
    ordered += [f"metric:{k}" for k in keys if f"metric:{k}" not in ordered and k != "train/epoch"]
    ordered += [f"best:{k}" for k in keys if k not in ("train/epoch", "train/lr")]
    ordered += [f"summary:{k}" for k in summary_keys]
    return ordered


def varying_hyperparameters(catalog: RunCatalog, rows: list[int], limit: int = 6) -> list[str]:
    """Spec columns whose value differs among a sample of `rows`, preferred ones first."""
    candidates = hyperparameter_choices(catalog)
    if not rows or not candidates:
        return []
    step = max(1, len(rows) // SAMPLE)
    ids = [catalog.ids[r] for r in rows[::step]]
    values = run_table.column_values(catalog.store, candidates, ids)
    varying = [c for c in candidates if len({_key(values.get(c, {}).get(i)) for i in ids}) > 1]
    rank = {f"spec:{k}": i for i, k in enumerate(PREFERRED)}
    varying.sort(key=lambda c: (rank.get(c, len(rank)), c))
    return varying[:limit]


def default_metric(choices: list[str]) -> str | None:
    return next((c for c in PREFERRED_METRICS if c in choices), choices[0] if choices else None)


@dataclass
class Axis:
    """A column mapped onto [0, 1]: numbers linearly (or by log10 when they span decades and
    are all positive), anything else as evenly spaced categories. Missing values are NaN."""

    column: str
    positions: np.ndarray  # per run, in [0, 1] or NaN
    log: bool = False
    lo: float = 0.0
    hi: float = 1.0
    categories: list | None = None

    @property
    def title(self) -> str:
        return column_title(self.column)

    def ticks(self, n: int = 5) -> list[tuple[float, str]]:
        """(position, label) pairs along the axis."""
        if self.categories is not None:
            k = len(self.categories)
            return [(i / (k - 1) if k > 1 else 0.5, _label(c)) for i, c in enumerate(self.categories)]
        if self.hi == self.lo:
            return [(0.5, _label(self.lo))]
        out = []
        for i in range(n):
            f = i / (n - 1)
            v = 10 ** (self.lo + f * (self.hi - self.lo)) if self.log else self.lo + f * (self.hi - self.lo)
            out.append((f, _label(v)))
        return out

    def value_at(self, position: float):
        """The value at a position (for brush labels)."""
        if self.categories is not None:
            k = len(self.categories)
            return self.categories[min(k - 1, max(0, round(position * (k - 1))))] if k else None
        v = self.lo + position * (self.hi - self.lo)
        return 10**v if self.log else v


def make_axis(column: str, values: list) -> Axis:
    numbers = [v for v in values if _is_number(v)]
    if numbers and len(numbers) == sum(v is not None for v in values):
        arr = np.array([float(v) if _is_number(v) else np.nan for v in values])
        finite = arr[np.isfinite(arr)]
        if not len(finite):
            return Axis(column, np.full(len(values), np.nan))
        lo, hi = float(finite.min()), float(finite.max())
        log = lo > 0 and hi / lo >= 100
        if log:
            arr, lo, hi = np.log10(arr), math.log10(lo), math.log10(hi)
        positions = (arr - lo) / (hi - lo) if hi > lo else np.where(np.isfinite(arr), 0.5, np.nan)
        return Axis(column, positions, log, lo, hi)
    keys = [None if v is None else _key(v) for v in values]
    distinct = sorted({k for k in keys if k is not None}, key=lambda k: (type(k).__name__, k))
    index = {k: i for i, k in enumerate(distinct)}
    n = len(distinct)
    positions = np.array([np.nan if k is None else (index[k] / (n - 1) if n > 1 else 0.5) for k in keys])
    return Axis(column, positions, categories=[_unkey(k) for k in distinct])


def _key(v):
    """A hashable, orderable stand-in for a value: itself, or a list's or dict's JSON."""
    return (
        v if isinstance(v, str | int | float | bool) or v is None else "\x00" + json.dumps(v, sort_keys=True)
    )


def _unkey(k):
    return json.loads(k[1:]) if isinstance(k, str) and k.startswith("\x00") else k


def numeric(values: list) -> np.ndarray:
    return np.array([float(v) if _is_number(v) else np.nan for v in values], dtype=np.float64)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _label(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)
