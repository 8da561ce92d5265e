"""A sweep's warm trial process, `trainbench sweep-worker`: one per slot, started by the sweep,
running the trials it is sent one after another.

A process per trial costs more than a short trial: measured here, a 2-epoch digits-CNN run took
3.3 s from the command line, of which 0.3 s trained and the rest imported torch and the engine
and set the process up. A worker pays that once, while the sweep sets itself up, and each trial
then starts training at once — as Optuna runs trials in the process that asks for them and Ray
Tune reuses its trial actors. Each trial is still an ordinary run: resumed from the queued row
the sweep created (`execute(resume_run=...)`), claimed, recorded and checkpointed as
`trainbench run --resume` would.

The protocol, one line each: on stdin `run ID` and `stop ID`; on stdout the runs' event lines,
and after each run `{"event": "trial_exit", "run_id": ID, "code": C, "last": L}` — C as
`trainbench run` would exit (0 completed or stopped, 1 not), L whether the worker now ends.
`stop`, SIGTERM and SIGINT stop the current trial after its step, with a checkpoint; SIGTERM,
SIGINT and the end of stdin (the sweep ended: on Linux the kernel also sends SIGTERM then,
PR_SET_PDEATHSIG) then end the worker.

Every trial's capsule records the git state and packages the worker read when it started: those
of the code it runs (`capsule.settle`). What a trial could leave behind for the next is cleared
between them: torch.compile's caches, CUDA's cached blocks, the thread count (`execute` restores
it). After a trial that did not end completed or stopped the worker exits, so whatever that
failure broke reaches no other trial; the sweep starts a fresh worker for the slot.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from pathlib import Path

from engine.errors import TrainbenchError


class _Commands:
    """stdin, read on a thread: the next run to start, and stops for the current one."""

    def __init__(self, lines):
        self.lines = lines
        self.runs: list[int] = []
        self.ready = threading.Condition()
        self.current: int | None = None
        self.stop = threading.Event()  # the current trial's
        self.ending = False

    def read(self) -> None:
        for line in self.lines:
            verb, _, arg = line.strip().partition(" ")
            if verb == "run" and arg.isdigit():
                with self.ready:
                    self.runs.append(int(arg))
                    self.ready.notify()
            elif verb == "stop" and arg.isdigit() and int(arg) == self.current:
                self.stop.set()
        self.end()

    def end(self, *_) -> None:
        """The sweep is gone or asks the worker to end: stop the trial, take no more."""
        self.ending = True
        self.stop.set()
        with self.ready:
            self.ready.notify()

    def next_run(self) -> int | None:
        with self.ready:
            while not self.runs and not self.ending:
                self.ready.wait()
            if self.ending:
                return None
            self.stop = threading.Event()  # before `current`: a stop of this run sets this event
            self.current = self.runs.pop(0)
            return self.current


def serve(store, lines=sys.stdin) -> None:
    """Run the trials sent on `lines` in this process until they end; see the module doc."""
    import torch
    import torch._dynamo  # the first optimizer of a process imports it: here, before any trial

    import engine.tasks.train  # noqa: F401 - imported now, while the sweep sets itself up
    from engine import capsule
    from engine.devices import resource_samplers
    from engine.events import EventStream
    from engine.runner import execute
    from engine.strategies.world import plan_world

    capsule.settle(Path.cwd())  # the trials' repository and packages: those of this process's code
    commands = _Commands(lines)
    for s in (signal.SIGTERM, signal.SIGINT):  # between trials; a trial's own handlers stop it
        signal.signal(s, commands.end)
    threading.Thread(target=commands.read, name="sweep-commands", daemon=True).start()
    events = EventStream(sys.stdout)
    while (run_id := commands.next_run()) is not None:
        status = "failed"
        try:
            plan = plan_world(store.get_run(run_id)["spec"])
            _, status = execute(
                store, resume_run=run_id, events=events, samplers=resource_samplers(plan), stop=commands.stop
            )
        except TrainbenchError as err:  # the run could not start (resume refused): as the CLI says it
            print(f"trainbench: error: {err}", file=sys.stderr, flush=True)
        commands.current = None
        last = status not in ("completed", "stopped") or commands.ending
        events.run_id = run_id
        events.emit("trial_exit", code=0 if status in ("completed", "stopped") else 1, last=last)
        if last:
            break
        torch._dynamo.reset()
        if torch.cuda.is_initialized():  # the blocks of tensors the trial left in cycles, too
            gc.collect()  # (~0.1 s with torch loaded: not on CPU, where nothing waits for them)
            torch.cuda.empty_cache()
    # Done: the store closed, the output flushed. The interpreter's teardown is skipped: with
    # torch loaded it took 0.9 s here, a pause the sweep's next step or end would wait out.
    store.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
