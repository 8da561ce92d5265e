"""The live event stream of a run: JSON lines, one event per line.

A run writes to the stream for speed (a GUI plots points as they come, without polling the
database); the store remains the record. Events:

  run_started  {run_id, name, kind, total_steps, resumed_from}
  metrics      {points: {key: [steps, values, walls]}}  (three lists of equal length)
  progress     {step, total_steps, epoch, elapsed_s, eta_s}
  log          {level, message}
  checkpoint   {step, path, tag}
  run_ended    {status, summary, error}
  control      {step, command, value, id, ...}  a live change, as stored (engine.control)
  health       {step, kind, node, value, message}  a health finding (engine.health)
  trial_exit   {code, last}  a sweep's trial worker is done with the run (engine.sweep.worker)

Every line also has `event`, `run_id` and `t` (unix seconds).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO

EVENT_TYPES = (
    "run_started",
    "metrics",
    "progress",
    "log",
    "checkpoint",
    "run_ended",
    "control",
    "health",
    "trial_exit",
)


class EventStream:
    """Thread-safe JSON-lines writer; a closed or broken pipe silences it instead of the run."""

    def __init__(self, out: IO[str] | None, run_id: int | None = None, listeners=()):
        self._out = out
        self._lock = threading.Lock()
        self.run_id = run_id
        self.listeners = list(listeners)  # in-process consumers (the CLI's progress bar)

    @classmethod
    def open(cls, target: str | None) -> EventStream:
        if target is None:
            return cls(None)
        if target == "-":
            return cls(sys.stdout)
        return cls(open(target, "a", buffering=1, encoding="utf-8"))  # noqa: SIM115 - lives as long as the run

    def emit(self, event: str, **fields) -> None:
        record = {"event": event, "run_id": self.run_id, "t": time.time(), **fields}
        for listener in self.listeners:
            listener(record)
        if self._out is None:
            return
        line = json.dumps(record, allow_nan=True)
        with self._lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError, OSError):
                self._out = None  # the reader went away; the store still has everything


def parse_events(lines: Iterable[str]) -> Iterator[dict]:
    """Events from JSON lines; other lines (a library printing to stdout) are skipped."""
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(ev, dict) and ev.get("event") in EVENT_TYPES:
                yield ev
