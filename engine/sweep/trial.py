"""One trial's engine process: `trainbench run --resume RUN --events -` on the run the sweep
created for it, read line by line on a thread of its own.

The process dies with the sweep: on Linux it asks the kernel for SIGTERM when its parent
ends (PR_SET_PDEATHSIG), which stops it gracefully, with a checkpoint, so a resumed sweep
continues the trial on the same curve instead of finding it still running unobserved.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from engine.events import parse_events
from engine.processes import command_line
from engine.sweep.pool import Slot

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class TrialProcess:
    """A running trial: its events arrive in `inbox` as (self, event), then (self, None) at
    the end of its output."""

    def __init__(self, number: int, run_id: int, slot: Slot, db: Path, folder: Path, inbox: queue.Queue):
        self.number, self.run_id, self.slot, self.inbox = number, run_id, slot, inbox
        self.step = 0
        self.total_steps: int | None = None
        self.stopping = False
        env = {**os.environ, "OMP_NUM_THREADS": str(slot.threads)}
        # What the process says outside its run (an import error before the run starts).
        with open(folder / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen(
                command_line("--db", str(db), "run", "--resume", str(run_id), "--events", "-", "--quiet"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self._reader = threading.Thread(target=self._read, name=f"trial-{number}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for ev in parse_events(self.proc.stdout):
                self.inbox.put((self, ev))
        finally:
            self.inbox.put((self, None))

    def stop(self) -> None:
        """Ask the trial to stop after its current step (a checkpoint, status stopped)."""
        if not self.stopping and self.proc.poll() is None:
            self.stopping = True
            self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        self._reader.join()
        return self.proc.wait()
