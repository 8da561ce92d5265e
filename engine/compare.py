"""Comparing runs: hyperparameter differences, final and best metrics, trade-off fronts.

`trainbench compare` and the desktop app's Experiments area both build their tables with
`compare_table`, so the two always agree on which fields differ and which run is best.
Whether a larger value is better is decided once, by the metric's name, in `metric_goal`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

# Words in a metric or summary field name that say which way is better. A name matches when
# one of its words (split on / . _ and -) or the whole last part is in a set; "max" wins ties.
HIGHER_IS_BETTER = frozenset(
    {"accuracy", "acc", "f1", "precision", "recall", "auc", "r2", "iou", "bleu", "map", "top1", "top5",
     "samples_per_s", "tokens_per_s", "throughput", "speedup", "reward", "mfu"}
)  # fmt: skip
LOWER_IS_BETTER = frozenset(
    {"loss", "perplexity", "ppl", "rmse", "mae", "mse", "error", "err", "latency", "params", "flops",
     "bytes", "size", "rss", "memory", "duration"}
)  # fmt: skip


#: spec fields that describe a run rather than configure it: left out of the comparison
NOT_HYPERPARAMETERS = frozenset({"schema", "name", "description", "tags"})


def metric_goal(key: str) -> str | None:
    """ "max" when a larger value is better (accuracy, throughput), "min" when a smaller one is
    (losses, perplexity, latency, parameters), None when neither (learning rate, epoch)."""
    last = re.split(r"[/.]", key.lower())[-1]
    words = set(re.split(r"[/._\-]", key.lower()))
    if last in HIGHER_IS_BETTER or words & HIGHER_IS_BETTER:
        return "max"
    if last in LOWER_IS_BETTER or words & LOWER_IS_BETTER:
        return "min"
    return None


#: the metrics that sum a run up, best first: the first one a run has is its headline
HEADLINE_METRICS = ("val/accuracy", "val/perplexity", "val/rmse", "val/loss")


def headline(values: dict, keys: Sequence[str] = HEADLINE_METRICS) -> tuple[str, float] | None:
    """(metric, value) that sums a run up in lists and headers: the first of `keys` that
    `values` (a summary, or a live run's last values) holds as a number; None without one."""
    for key in keys:
        v = values.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return key, v
    return None


def flatten(doc: dict, prefix: str = "") -> dict:
    """A spec as dotted keys (`optim.lr`); the model graph is left out (compare it in the designer)."""
    out = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if k == "model" and not prefix:
            continue
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def winners(values: Sequence, goal: str | None) -> list[int]:
    """Indices of the best values (ties all win); none when there is no goal, fewer than two
    values to compare, or every value is the same."""
    if goal is None:
        return []
    finite = [(i, float(v)) for i, v in enumerate(values) if _is_number(v) and math.isfinite(v)]
    if len(finite) < 2 or len({v for _, v in finite}) == 1:
        return []
    best = (max if goal == "max" else min)(v for _, v in finite)
    return [i for i, v in finite if v == best]


def compare_table(store, run_ids: list[int], show_all: bool = False) -> dict:
    """Hyperparameter differences, final and best metrics and result fields of some runs.

    `params` holds every spec field (dotted) that differs between the runs, or all of them with
    `show_all`; `differing` names the ones that differ either way. `final_metrics` is each
    series' last value, `best_metrics` its minimum or maximum by `goals`; `winners` gives, per
    metric, the indices of the runs holding the best value. `summary` holds the runs' result
    fields that are not already shown (compression, latency, checkpoint size...).
    """
    runs = [store.get_run(r) for r in run_ids]
    flats = [{k: v for k, v in flatten(r["spec"]).items() if k not in NOT_HYPERPARAMETERS} for r in runs]
    for f, r in zip(flats, runs, strict=True):
        f["model.params"] = r["summary"].get("params")
        f["model.flops"] = r["summary"].get("flops")
        f["kind"], f["parent"] = r["kind"], r["parent_id"]
    keys = sorted(set().union(*flats))
    params = {k: [f.get(k) for f in flats] for k in keys}
    differing = {k for k, vals in params.items() if len({json.dumps(v, sort_keys=True) for v in vals}) > 1}

    series = [store.series_summaries(r) for r in run_ids]
    final: dict[str, list] = {}
    best: dict[str, list] = {}
    goals: dict[str, str | None] = {}
    for key in sorted(set().union(*series)):
        goals[key] = metric_goal(key)
        final[key] = [s.get(key, {}).get("last") for s in series]
        if goals[key]:
            best[key] = [s.get(key, {}).get(goals[key]) for s in series]

    summaries = [_flat_summary(r["summary"]) for r in runs]
    summary = {k: [s.get(k) for s in summaries] for k in sorted(set().union(*summaries))}
    return {
        "runs": [{"id": r["id"], "name": r["name"], "kind": r["kind"], "status": r["status"]} for r in runs],
        "params": {k: v for k, v in params.items() if show_all or k in differing},
        "differing": sorted(differing),
        "final_metrics": final,
        "best_metrics": best,
        "goals": goals,
        "summary": summary,
        "tradeoff": tradeoff(runs),
        "winners": {
            "final_metrics": {k: winners(v, goals[k]) for k, v in final.items()},
            "best_metrics": {k: winners(v, goals[k]) for k, v in best.items()},
            "summary": {k: winners(v, metric_goal(k)) for k, v in summary.items()},
        },
    }


# Summary fields shown elsewhere in the table (model.params/flops, the metrics, the trade-off)
# or not results.
_SUMMARY_SHOWN = {"params", "flops", "dataset", "global_batch", "world_size", "total_steps", "compression"}


def _flat_summary(summary: dict) -> dict:
    out = {}
    for k, v in flatten({k: v for k, v in summary.items() if k not in _SUMMARY_SHOWN}).items():
        if k.startswith(("val/", "teacher/")) or isinstance(v, list):
            continue
        out[k] = v
    return out


# What `tradeoff` shows, from a prune or distill run's `compression` summary.
TRADEOFF_ROWS = ("params", "nonzero_params", "flops", "bytes", "latency_ms", "val/loss", "val/accuracy")


def tradeoff(runs: list[dict]) -> dict | None:
    """Size, speed and accuracy side by side, when some runs are pruned or distilled children
    of others. A child's `compression` summary holds its parent measured beside it in the same
    session ("before") and itself ("after"; "int8" too when quantized), so a parent's column
    comes from a child's "before". Returns {"columns", "rows": {figure: [value per column]},
    "base": [index of the column each is relative to, or None]}; None when no run has one."""
    found = {r["id"]: r["summary"]["compression"] for r in runs if r["summary"].get("compression")}
    if not found:
        return None
    columns, figures, base = [], [], []
    for r in runs:
        own = found.get(r["id"])
        measured_by = next((c for c in found.values() if c.get("parent") == r["id"]), None)
        figure = own["after"] if own else measured_by["before"] if measured_by else None
        if figure is None:  # no child here measured it: what its summary says
            figure = {k: r["summary"].get(k) for k in TRADEOFF_ROWS}
        columns.append(f"run {r['id']}")
        figures.append(figure)
        base.append(own.get("parent") if own else None)
        if own and "int8" in own:
            columns.append(f"run {r['id']} int8")
            figures.append(own["int8"])
            base.append(own.get("parent"))
    index = {c: i for i, c in enumerate(columns)}
    rows = {k: [f.get(k) for f in figures] for k in TRADEOFF_ROWS}
    return {
        "columns": columns,
        "rows": {k: v for k, v in rows.items() if any(x is not None for x in v)},
        "base": [index.get(f"run {b}") for b in base],
    }


def pareto_front(xs: Sequence, ys: Sequence, x_goal: str = "min", y_goal: str = "max") -> list[int]:
    """Indices of the points no other point beats on both axes (missing values never win).

    With the defaults: fewer parameters (x) and higher accuracy (y). Sorted by x along the front.
    """
    sx = 1 if x_goal == "min" else -1
    sy = 1 if y_goal == "min" else -1
    pts = sorted(
        (sx * float(x), sy * float(y), i)
        for i, (x, y) in enumerate(zip(xs, ys, strict=True))
        if _is_number(x) and _is_number(y) and math.isfinite(x) and math.isfinite(y)
    )
    front: list[int] = []
    best_y = math.inf
    last_x = None
    for x, y, i in pts:
        # Among equal x the smallest y comes first; a point equal to the front's last on
        # both axes is on the front too (nothing beats it).
        if y < best_y or (y == best_y and x == last_x):
            front.append(i)
            best_y, last_x = y, x
    return front


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
