"""What a task sees of its run: the one interface between the tasks and whoever runs them.

The runner gives rank 0 (or a single process) a `RunContext` that records everything — the
store, the event stream, the run log, checkpoints — and every other rank a `FollowerContext`
whose recording methods do nothing; a prune run's fine-tuning phases see the run through a
`PhaseContext`. Tasks are typed against this protocol only, so they import nothing from the
runner and any of those can stand in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


class EventSink(Protocol):
    def emit(self, event: str, /, **fields) -> None: ...


@runtime_checkable
class TaskContext(Protocol):
    spec: dict  # the run's normalised spec
    run_id: int | None  # None on ranks other than 0
    resume: bool  # continue from the run's last checkpoint
    is_main: bool  # whether this process records the run (rank 0)
    events: EventSink

    @property
    def stop_requested(self) -> bool:
        """A stop was asked (SIGINT/SIGTERM here, or by another rank): finish the step, save, end."""

    def request_stop(self) -> None:
        """Stop this process too (another rank asked)."""

    def log(self, message: str, level: str = "info") -> None: ...

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        """Points of this step; cheap enough to call every step (the recorder writes them)."""

    def progress(
        self, step: int, total_steps: int, epoch: float, elapsed_s: float, steps_per_s: float | None
    ) -> None:
        """Where the run is: `elapsed_s` over its whole active life (across resumes), and the
        current rate, from which the ETA follows."""

    def share_cpu(self) -> None:
        """Between steps: take up the CPU thread count this run's share of the cores now
        allows (other runs started or ended on this host)."""

    def save_checkpoint(
        self, state: dict, step: int, tag: str = "periodic", keep: int | None = None
    ) -> Path | None:
        """Save after everything logged so far is stored, so a checkpoint is never ahead of
        the stored curve; `keep` bounds the periodic checkpoints kept."""

    def last_checkpoint(self) -> dict | None:
        """The newest checkpoint's state, for a resume (None: there is none, or not on this rank)."""

    def discard_checkpoints(self) -> None:
        """Delete this run's checkpoints (a run that starts over)."""

    def truncate_metrics(self, after_step: int) -> None:
        """Drop points after `after_step`: a resumed run replays those steps."""

    def update_summary(self, **values) -> None: ...

    def get_run(self, run_id: int) -> dict | None:
        """Another run's record from the store (None where there is no store: other ranks)."""

    @property
    def control_file(self) -> Path | None:
        """Where live commands for the run arrive (`engine.control`); None on other ranks."""

    def record_event(self, step: int, kind: str, data: dict) -> None:
        """Store something that happened at `step`: a live change (`control`) or a finding of
        the health checks (`health`); also on the event stream."""

    def run_events(self, kind: str | None = None) -> list[dict]:
        """The run's recorded events (a resume replays its changes); [] on other ranks."""

    def log_histograms(self, step: int, hists: dict) -> None:
        """Histograms of this step: {key: (bin edges, counts)}."""
