"""Executes one run in this process: claims its row, starts the recorder, runs the task,
and always leaves a final status — completed, stopped (SIGINT/SIGTERM), failed (with the
error) — or, if the process dies without reaching that, a stale heartbeat that the next
reader turns into crashed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from engine import checkpoint
from engine.errors import StoreError, TrainbenchError
from engine.events import EventStream
from engine.store import HEARTBEAT_S, RESUMABLE, MetricBatcher, RunStore

DB_FLUSH_S = 1.0  # metrics reach the database at least this often: a kill -9 loses at most this
EVENT_FLUSH_S = 0.2  # live plots get a batch this often
SAMPLE_S = 5.0  # process/GPU resource samples


class Recorder(threading.Thread):
    """Background writer: the training thread only appends to a `MetricBatcher`."""

    def __init__(self, db_path: Path, run_id: int, events: EventStream, samplers=()):
        super().__init__(name="trainbench-recorder", daemon=True)
        self.db_path, self.run_id, self.events = db_path, run_id, events
        self.batcher = MetricBatcher()
        self.samplers = list(samplers)  # callables returning {key: value}
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._flush_asked = threading.Event()
        self._flushed = threading.Event()
        self._progress: dict | None = None
        self.error: BaseException | None = None

    def set_progress(self, **fields) -> None:
        self._progress = fields

    def run(self) -> None:
        store = RunStore(self.db_path)  # sqlite connections belong to one thread
        pending: dict[str, list] = {}
        last_flush = last_beat = last_sample = time.monotonic()
        sent_progress = None
        try:
            while True:
                self._wake.wait(EVENT_FLUSH_S)
                self._wake.clear()
                stopping = self._halt.is_set()
                forced = stopping or self._flush_asked.is_set()
                now = time.monotonic()
                if now - last_sample >= SAMPLE_S or stopping:  # a last sample: short runs get one too
                    last_sample = now
                    for sample in self.samplers:
                        self.batcher.add(self._progress["step"] if self._progress else 0, sample())
                chunk = self.batcher.drain()
                if chunk:
                    self.events.emit("metrics", points={k: [a.tolist() for a in v] for k, v in chunk.items()})
                    for k, arrays in chunk.items():
                        pending.setdefault(k, []).append(arrays)
                if self._progress is not sent_progress:
                    sent_progress = self._progress
                    self.events.emit("progress", **sent_progress)
                if pending and (forced or now - last_flush >= DB_FLUSH_S):
                    store.add_metrics(self.run_id, {k: _concat(parts) for k, parts in pending.items()})
                    pending, last_flush = {}, now
                if self._flush_asked.is_set():
                    self._flush_asked.clear()
                    self._flushed.set()
                if now - last_beat >= HEARTBEAT_S:
                    store.heartbeat(self.run_id)
                    last_beat = now
                if stopping:
                    break
        except BaseException as err:  # noqa: BLE001 - surfaced by close()
            self.error = err
        finally:
            store.close()

    def flush(self) -> None:
        """Block until every point logged so far is in the database."""
        if not self.is_alive():
            return
        self._flushed.clear()
        self._flush_asked.set()
        self._wake.set()
        while not self._flushed.wait(0.5):
            if not self.is_alive():
                return

    def close(self) -> None:
        self._halt.set()
        self._wake.set()
        self.join()
        if self.error:
            raise StoreError(f"writing metrics failed: {self.error}")


def _concat(parts):
    import numpy as np

    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


class RunContext:
    """What a task sees of its run: spec, logging, progress, checkpoints, stop requests."""

    def __init__(
        self,
        store: RunStore,
        run_id: int,
        spec: dict,
        events: EventStream,
        recorder: Recorder,
        resume: bool = False,
        echo: bool = False,
    ):
        self.store, self.run_id, self.spec, self.events, self.recorder = store, run_id, spec, events, recorder
        self.resume = resume
        self.echo = echo
        self.stop_event = threading.Event()
        self.dir = store.artifacts_dir(run_id)
        self._log = open(self.dir / "run.log", "a", encoding="utf-8")  # noqa: SIM115 - closed by execute()
        self.is_main = True  # False on DDP ranks other than 0: they neither log nor save

    @property
    def stop_requested(self) -> bool:
        return self.stop_event.is_set()

    def log(self, message: str, level: str = "info") -> None:
        if not self.is_main:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.write(f"{stamp} {level.upper():5} {message}\n")
        self._log.flush()
        self.events.emit("log", level=level, message=message)
        if self.echo:
            print(f"[run {self.run_id}] {message}", file=sys.stderr, flush=True)

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        if self.is_main:
            self.recorder.batcher.add(step, values)

    def progress(self, step: int, total_steps: int, epoch: float, started: float, start_step: int) -> None:
        elapsed = time.time() - started
        done = step - start_step
        eta = elapsed / done * (total_steps - step) if done > 0 else None
        self.recorder.set_progress(
            step=step, total_steps=total_steps, epoch=epoch, elapsed_s=elapsed, eta_s=eta
        )

    def save_checkpoint(
        self, state: dict, step: int, tag: str = "periodic", keep: int | None = None
    ) -> Path | None:
        if not self.is_main:
            return None
        # Metrics first: a checkpoint must never be ahead of the stored curve, or a resume after
        # a kill would leave a gap between the last flushed point and the checkpoint's step.
        self.recorder.flush()
        path = checkpoint.save_atomic(state, self.dir / "checkpoints" / f"step-{step:08d}.pt")
        for old in self.store.checkpoints(self.run_id):
            if old["path"] == str(path):
                self.store.remove_checkpoint(old["id"])
        self.store.add_checkpoint(self.run_id, step, path, tag)
        if keep is not None:  # drop the oldest periodic checkpoints beyond `keep`
            periodic = [c for c in self.store.checkpoints(self.run_id) if c["tag"] == "periodic"]
            for old in periodic[:-keep]:
                if old["path"] != str(path):
                    Path(old["path"]).unlink(missing_ok=True)
                    self.store.remove_checkpoint(old["id"])
        self.events.emit("checkpoint", step=step, path=str(path), tag=tag)
        return path

    def last_checkpoint(self) -> dict | None:
        """The newest checkpoint's state, for a resume; None when the run has none."""
        row = self.store.last_checkpoint(self.run_id)
        return checkpoint.load(row["path"]) if row else None

    def update_summary(self, **values) -> None:
        if self.is_main:
            self.store.update_summary(self.run_id, **values)

    def truncate_metrics(self, after_step: int) -> None:
        """Drop metric points after `after_step`: a resumed run replays those steps."""
        if self.is_main:
            self.store.truncate_metrics(self.run_id, after_step=after_step)

    def close(self) -> None:
        self._log.close()


class FollowerContext:
    """What a task sees on a rank other than 0 of a multi-process run: the spec and stop
    requests. The store, the event stream, the log and the checkpoints belong to rank 0 (which
    may be on another machine), so everything that would write them does nothing here."""

    is_main = False
    resume = False  # rank 0 decides, and broadcasts the checkpoint it resumes from
    run_id = None
    store = None

    def __init__(self, spec: dict):
        self.spec = spec
        self.events = EventStream(None)
        self.stop_event = threading.Event()

    @property
    def stop_requested(self) -> bool:
        return self.stop_event.is_set()

    def log(self, message: str, level: str = "info") -> None:
        pass

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        pass

    def progress(self, *args) -> None:
        pass

    def save_checkpoint(self, state: dict, step: int, tag: str = "periodic", keep: int | None = None) -> None:
        return None

    def last_checkpoint(self) -> None:
        return None

    def update_summary(self, **values) -> None:
        pass

    def truncate_metrics(self, after_step: int) -> None:
        pass


def follow(spec: dict) -> None:
    """Run the task of `spec` as a rank other than 0: compute only; errors propagate (the
    elastic launcher records them with this rank's traceback)."""
    from engine.tasks import task_for

    ctx = FollowerContext(spec)
    previous = {s: signal.signal(s, lambda *_: ctx.stop_event.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        task_for(spec["task"]["kind"])(ctx)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def execute(
    store_path: str | Path,
    spec: dict | None = None,
    resume_run: int | None = None,
    parent_id: int | None = None,
    events: EventStream | None = None,
    echo: bool = False,
    samplers=(),
) -> tuple[int, str]:
    """Run a new spec, or resume run `resume_run`; returns (run id, final status).

    User mistakes found before the run exists (a bad spec) raise; anything after that is
    recorded on the run's row and returned as a status.
    """
    store = RunStore(store_path)
    events = events or EventStream(None)
    if resume_run is not None:
        run = store.get_run(resume_run)
        if run["status"] not in (*RESUMABLE, "queued"):  # queued: created by the launcher
            raise StoreError(
                f"run {resume_run} is {run['status']}; only {', '.join(RESUMABLE)} runs can be resumed"
            )
        run_id, spec, kind = resume_run, run["spec"], run["kind"]
        resume = run["status"] != "queued"
    else:
        from engine import lineage

        kind = spec["task"]["kind"]
        # A prune/distill run: its parent is checked and inherited from before the run exists.
        spec = lineage.resolve(spec, store)
        parent_id = lineage.parent_id(spec) or parent_id
        run_id = store.create_run(spec, kind=kind, parent_id=parent_id)
        resume = False

    events.run_id = run_id
    store.start_run(run_id, os.getpid())
    recorder = Recorder(store.path, run_id, events, samplers)
    ctx = RunContext(store, run_id, spec, events, recorder, resume=resume, echo=echo)
    previous = {s: signal.signal(s, lambda *_: ctx.stop_event.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    recorder.start()
    status, summary, error = "failed", {}, None
    try:
        from engine.tasks import task_for

        summary = task_for(kind)(ctx)
        status = "stopped" if ctx.stop_requested else "completed"
    except TrainbenchError as err:
        error = str(err)
        ctx.log(error, "error")
    except Exception:  # noqa: BLE001 - a bug or a torch error: keep the whole traceback on the run
        error = traceback.format_exc()
        ctx.log(error.strip().splitlines()[-1], "error")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        try:
            recorder.close()
        except StoreError as err:
            status, error = "failed", f"{error}\n{err}" if error else str(err)
        store.finish_run(run_id, status, summary, error)
        events.emit("run_ended", status=status, summary=summary, error=error)
        ctx.close()
        store.close()
    return run_id, status
