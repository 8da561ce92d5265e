"""The sweep's live table in the terminal: one row per trial, redrawn in place about once a
second on a terminal, printed once at the end otherwise (a log file gets no escape codes)."""

from __future__ import annotations

import sys
from typing import TextIO

from engine import format as fmt
from engine.sweep.driver import SweepState, TrialRecord
from engine.textable import Col, render

MAX_ROWS = 40  # on a terminal: the running trials, then the best, then the latest


def rows(state: SweepState, limit: int | None = None) -> tuple[list[dict], list[Col]]:
    """The table's rows and columns; `limit` keeps the running, best and newest trials."""
    records = sorted(state.records.values(), key=lambda r: r.number)
    if limit is not None and len(records) > limit:
        records = _most_telling(records, state, limit)
    params = list(dict.fromkeys(k for r in records for k in r.params))
    cols = [
        Col("trial", right=True),
        Col("run", right=True),
        Col("state"),
        *(Col(p, right=True) for p in params),
        Col("step", right=True),
        Col("objective", state.objective["metric"], right=True),
        Col("pruned_at", "pruned at", right=True),
    ]
    best = state.best()
    out = []
    for r in records:
        row = {
            "trial": f"{'*' if best is r else ''}{r.number}",
            "run": r.run_id,
            "state": r.state,
            "step": f"{r.step}/{r.total_steps}"
            if r.total_steps and r.state in ("running", "stopping")
            else "",
            "objective": fmt.value(r.objective) if r.objective is not None else "",
            "pruned_at": r.pruned_step,
        }
        row.update({p: fmt.value(v) if isinstance(v, float) else v for p, v in r.params.items()})
        out.append(row)
    return out, cols


def _most_telling(records: list[TrialRecord], state: SweepState, limit: int) -> list[TrialRecord]:
    best = state.best()
    keep = [r for r in records if r.state in ("running", "stopping")]
    keep += [best] if best is not None and best not in keep else []
    keep += [r for r in reversed(records) if r not in keep][: max(0, limit - len(keep))]
    return sorted(keep, key=lambda r: r.number)


def headline(state: SweepState) -> str:
    counts = state.counts()
    done = sum(counts.get(s, 0) for s in ("complete", "pruned", "failed"))
    parts = [f"sweep {state.sweep_id}: {done}/{state.budget} trials"]
    parts += [f"{counts[s]} {s}" for s in ("running", "pruned", "failed") if counts.get(s)]
    best = state.best()
    if best is not None:
        parts.append(f"best {state.objective['metric']} {fmt.value(best.objective)} (trial {best.number})")
    return ", ".join(parts)


class LiveTable:
    """A `view` for the sweep driver."""

    def __init__(self, out: TextIO = sys.stderr):
        self.out = out
        self.tty = out.isatty()
        self._lines = 0

    def __call__(self, state: SweepState, final: bool = False) -> None:
        if not self.tty:
            if final:
                table, cols = rows(state)
                self.out.write(headline(state) + "\n" + render(table, cols) + "\n")
                self.out.flush()
            return
        table, cols = rows(state, None if final else MAX_ROWS)
        text = headline(state) + "\n" + render(table, cols)
        # Back to the table's first line, clear to the end of the screen, draw anew.
        self.out.write((f"\x1b[{self._lines}F\x1b[J" if self._lines else "") + text + "\n")
        self.out.flush()
        self._lines = text.count("\n") + 1
