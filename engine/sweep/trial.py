"""Where a sweep's trials run: in a warm worker per slot (`engine.sweep.worker`, started when
the sweep starts, so that its imports overlap the sweep's own set-up), trial after trial; or,
for a trial that launches processes of its own (DDP or FSDP through torch's elastic launcher),
in `trainbench run --resume RUN`, a process of its own. Either way the trial is an ordinary run
the sweep created `queued`, its events are read line by line on a thread of the sweep's, and a
stop ends it after its step, with a checkpoint, status stopped.

The processes die with the sweep: on Linux each asks the kernel for SIGTERM when the sweep ends
(PR_SET_PDEATHSIG), which stops its trial gracefully, so a resumed sweep continues the trial on
the same curve instead of finding it still running unobserved.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from engine.events import parse_events
from engine.memory import device_plan
from engine.processes import DIE_WITH_PARENT, command_line
from engine.sweep.pool import Slot

CLOSE_S = 30  # how long an idle worker may take to end once told


class TrialProcess:
    """A running trial: its events arrive in the sweep's inbox as (self, event), then
    (self, None) once it has ended; `wait` gives the exit code `trainbench run` would have."""

    def __init__(self, number: int, run_id: int, slot: Slot, stop: Callable[[], None], log: Path):
        self.number, self.run_id, self.slot = number, run_id, slot
        self.log = log  # what its process prints outside its run (an error before the run starts)
        self.stopping = False
        self._stop = stop
        self._code: int | None = None
        self._ended = threading.Event()

    def stop(self) -> None:
        """Ask the trial to stop after its current step (a checkpoint, status stopped)."""
        if not self.stopping and not self._ended.is_set():
            self.stopping = True
            self._stop()

    def wait(self) -> int:
        self._ended.wait()
        return self._code

    def end(self, code: int, inbox: queue.Queue) -> None:
        self._code = code
        self._ended.set()
        inbox.put((self, None))


class Trials:
    """The processes a sweep runs its trials in: one warm worker per slot, started now."""

    def __init__(self, db: Path, slots: list[Slot], folder: Path, inbox: queue.Queue):
        self.db, self.folder, self.inbox = db, folder, inbox
        self.workers = {slot.index: _Worker(db, slot, folder, inbox) for slot in slots}

    def start(self, number: int, run_id: int, slot: Slot, spec: dict, folder: Path) -> TrialProcess:
        """Start the queued run `run_id` as trial `number` on `slot`; `folder` is the run's."""
        plan = device_plan(spec)
        if plan is not None and plan.world_size > 1:
            return _own_process(number, run_id, slot, self.db, folder, self.inbox)
        worker = self.workers.get(slot.index)
        trial = worker.run(number, run_id) if worker else None
        if trial is None:  # the slot's worker ended (after a failed trial, or killed): a fresh one
            worker = self.workers[slot.index] = _Worker(self.db, slot, self.folder, self.inbox)
            trial = worker.run(number, run_id)
        return trial

    def close(self) -> None:
        """End the workers (their trials have ended, or been asked to stop)."""
        for worker in self.workers.values():
            worker.close()


class _Worker:
    """`trainbench sweep-worker`: runs one trial at a time, as many as it is sent."""

    def __init__(self, db: Path, slot: Slot, folder: Path, inbox: queue.Queue):
        self.slot, self.inbox = slot, inbox
        self.trial: TrialProcess | None = None
        self.retired = False  # it takes no more trials: it said so, or its output ended
        self._lock = threading.Lock()
        self.log = folder / f"worker-{slot.index}.log"
        self.proc = _start(("--db", str(db), "sweep-worker"), slot, self.log, True)
        threading.Thread(target=self._read, name=f"sweep-worker-{slot.index}", daemon=True).start()

    def run(self, number: int, run_id: int) -> TrialProcess | None:
        """The trial, started; None when this worker takes no more trials."""
        with self._lock:
            if self.retired:
                return None
            self.trial = TrialProcess(
                number, run_id, self.slot, lambda: self._send(f"stop {run_id}"), self.log
            )
        self._send(f"run {run_id}")
        return self.trial

    def _send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):  # it ended: its reader reports the end of its trial
            pass

    def _read(self) -> None:
        for ev in parse_events(self.proc.stdout):
            trial = self.trial
            if trial is None:
                continue
            if ev["event"] != "trial_exit":
                self.inbox.put((trial, ev))
                continue
            with self._lock:
                self.trial = None
                self.retired = self.retired or ev.get("last", False)
            trial.end(ev["code"], self.inbox)
        with self._lock:
            self.retired = True
            trial, self.trial = self.trial, None
        if trial is not None:  # the worker died during its trial
            code = self.proc.wait()
            trial.end(code or 1, self.inbox)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(CLOSE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _own_process(number: int, run_id: int, slot: Slot, db: Path, folder: Path, inbox) -> TrialProcess:
    """`trainbench run --resume RUN --events -` for one trial (one that launches processes)."""
    argv = ("--db", str(db), "run", "--resume", str(run_id), "--events", "-", "--quiet")
    log = folder / "stderr.log"
    proc = _start(argv, slot, log, False)
    trial = TrialProcess(
        number, run_id, slot, lambda: proc.poll() is None and proc.send_signal(signal.SIGTERM), log
    )

    def read() -> None:
        for ev in parse_events(proc.stdout):
            inbox.put((trial, ev))
        trial.end(proc.wait(), inbox)

    threading.Thread(target=read, name=f"trial-{number}", daemon=True).start()
    return trial


def _start(argv: tuple[str, ...], slot: Slot, log: Path, commands: bool) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(slot.threads)}
    # What the process says outside its runs (an import error before a run starts).
    with open(log, "ab") as err:
        return subprocess.Popen(
            command_line(*argv),
            stdin=subprocess.PIPE if commands else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            preexec_fn=DIE_WITH_PARENT,
        )
