"""Executes one run in this process: claims its row, starts the recorder, runs the task,
and always leaves a final status — completed, stopped (SIGINT/SIGTERM), failed (with the
error) — or, if the process dies without reaching that, a row whose process is gone, which
the next `reap()` (or resume) turns into crashed.

A run has one writer at a time: `claim_run` makes this process the run's owner (see
`RunStore.start_run`), and every write carries the owner token, so a process that lost its
run stops with a clear error instead of writing beside the new owner.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import capsule
from engine.errors import StoreError, TrainbenchError
from engine.events import EventStream
from engine.store import HEARTBEAT_S, ClaimLost, RunStore

DB_FLUSH_S = 1.0  # metrics reach the database at least this often: a kill -9 loses at most this
EVENT_FLUSH_S = 0.2  # live plots get a batch this often
SAMPLE_S = 5.0  # process/GPU resource samples
CLAIM_ENV = "TRAINBENCH_CLAIM"  # a launched rank 0 takes up its launcher's claim from here
THREADS_ENV = "TRAINBENCH_THREADS"  # a launched worker's CPU threads, and why ("N:why")


class MetricBatcher:
    """Collects points from the training thread; `drain()` hands them over as numpy chunks.

    Appends are list appends under a lock (about a microsecond), so logging every step costs
    the loop nothing measurable; the recorder's thread drains and writes in the background.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._buf: dict[str, tuple[list, list, list]] = {}

    def add(self, step: int, values: dict[str, float], wall: float | None = None) -> None:
        wall = time.time() if wall is None else wall
        with self._lock:
            for key, v in values.items():
                s, vs, ws = self._buf.setdefault(key, ([], [], []))
                s.append(step)
                vs.append(v)
                ws.append(wall)

    def drain(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        with self._lock:
            buf, self._buf = self._buf, {}
        return {
            k: (
                np.asarray(s, dtype=np.int64),
                np.asarray(v, dtype=np.float64),
                np.asarray(w, dtype=np.float64),
            )
            for k, (s, v, w) in buf.items()
            if s
        }


# ------------------------------------------------------------------ claiming a run


@dataclass(frozen=True)
class Claim:
    """This process's hold on a run: the owner token its writes carry."""

    run_id: int
    owner: str
    resumed: bool  # continues an earlier attempt: start from the last checkpoint
    spec: dict
    kind: str

    def to_env(self) -> dict[str, str]:
        """For a launched rank 0, which records the run under its launcher's claim."""
        return {CLAIM_ENV: json.dumps({"run_id": self.run_id, "owner": self.owner, "resumed": self.resumed})}

    @classmethod
    def from_env(cls, store: RunStore) -> Claim:
        doc = json.loads(os.environ[CLAIM_ENV])
        run = store.get_run(doc["run_id"])
        return cls(run["id"], doc["owner"], doc["resumed"], run["spec"], run["kind"])


def claim_run(
    store: RunStore,
    spec: dict | None = None,
    resume_run: int | None = None,
    parent_id: int | None = None,
    resolved: bool = False,
) -> Claim:
    """Create the run of `spec` (or take up run `resume_run`) and make this process its one
    writer. A prune/distill spec's parent is checked and inherited from here, before the row
    exists, and names the run's parent (over `parent_id`). A resume is refused unless the run
    is stopped, crashed or failed, or running in a process that is gone (never while its
    process lives). Temporary files of a save that a kill interrupted are cleared. `resolved`:
    the spec comes from `engine.preflight`, which checked and completed it against its parent.
    """
    from engine import checkpoint, lineage  # torch: here, so that `claim_new` stays light

    if resume_run is not None:
        run = store.get_run(resume_run)
        owner = store.start_run(resume_run, resumable=True)
        claim = Claim(resume_run, owner, run["status"] != "queued", run["spec"], run["kind"])
    else:
        spec = spec if resolved else lineage.resolve(spec, store)
        claim = claim_new(store, spec, spec["task"]["kind"], lineage.parent_id(spec) or parent_id)
    checkpoint.remove_partial(store.artifacts_dir(claim.run_id) / "checkpoints")
    return claim


def claim_new(store: RunStore, spec: dict, kind: str, parent_id: int | None = None) -> Claim:
    """Create a run row and make this process its one writer: the part of every claim that
    needs no torch (a script's `trainbench.init()` claims its run this way)."""
    run_id = store.create_run(spec, kind=kind, parent_id=parent_id)
    return Claim(run_id, store.start_run(run_id), False, spec, kind)


# ------------------------------------------------------------------ CPU threads


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_cpu_threads(n: int) -> None:
    """torch's intra-op and inter-op threads. The inter-op pool can be sized only before its
    first use, once per process; later calls keep its size."""
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:
        pass


class CpuShare:
    """How many CPU threads this process trains with: `hardware.threads`, else OMP_NUM_THREADS
    when the environment sets it, else the machine's cores divided by the runs live on this
    host and by this run's processes here.

    A single-process run recounts the live runs at each heartbeat (`recount`, recorder
    thread) and takes up a changed share between steps (`apply`, training thread: torch's
    thread count is per calling thread), so a run started first gives cores back to the ones
    started after it, and takes them again when those end.
    """

    def __init__(
        self,
        asked: int | None,
        local_procs: int = 1,
        rebalance: bool = True,
        source: str = "hardware.threads",
        data_workers: int = 0,
    ):
        self.asked, self.local_procs, self.source = asked, local_procs, source
        self.data_workers = data_workers  # DataLoader workers of each process: their cores are theirs
        self.rebalance = rebalance and asked is None
        self.threads: int | None = None
        self.wanted: tuple[int, str] | None = None

    @classmethod
    def of(cls, hardware: dict, local_procs: int = 1, data_workers: int = 0) -> CpuShare:
        if hardware["threads"]:
            return cls(hardware["threads"], local_procs)
        env = os.environ.get("OMP_NUM_THREADS", "")
        if env.isdigit() and int(env) >= 1:
            return cls(int(env), local_procs, source="OMP_NUM_THREADS")
        return cls(None, local_procs, data_workers=data_workers)

    @classmethod
    def decided(cls, threads: int, why: str) -> CpuShare:
        """A count decided elsewhere (a launched worker's, by its launcher)."""
        share = cls(threads, rebalance=False)
        share.wanted = (threads, why)
        return share

    def choose(self, live_runs: int) -> tuple[int, str]:
        if self.asked is not None:
            return self.asked, self.source
        cores, runs = cpu_cores(), max(1, live_runs)
        n = max(1, cores // runs // max(1, self.local_procs) - self.data_workers)
        why = f"{cores} cores shared by {runs} run{'s' if runs != 1 else ''} live on this host"
        if self.local_procs > 1:
            why += f" and this run's {self.local_procs} processes here"
        if self.data_workers:
            why += f", less {self.data_workers} data-loading worker{'s' if self.data_workers != 1 else ''}"
        return n, why

    def recount(self, store: RunStore, starting: bool = False) -> None:
        """`starting`: this run is about to be claimed, so it is not counted yet."""
        self.wanted = self.choose(store.live_runs_here() + starting)

    def apply(self) -> str | None:
        """Take up the wanted count (in the training thread); the log line when it changed."""
        wanted = self.wanted
        if wanted is None or wanted[0] == self.threads:
            return None
        n, why = wanted
        if self.threads is None:
            set_cpu_threads(n)
        else:
            import torch

            torch.set_num_threads(n)
        self.threads = n
        return f"using {n} CPU thread{'s' if n != 1 else ''} ({why})"


# ------------------------------------------------------------------ recording


class Recorder(threading.Thread):
    """Background writer: the training thread only appends to a `MetricBatcher`. It flushes
    points, beats the heart and, for a single-process run, recounts its CPU share."""

    def __init__(self, store: RunStore, claim: Claim, events: EventStream, samplers=(), cpu=None):
        super().__init__(name="trainbench-recorder", daemon=True)
        self._store, self.run_id, self.owner, self.events = store, claim.run_id, claim.owner, events
        self.batcher = MetricBatcher()
        self.samplers = list(samplers)  # callables returning {key: value}
        self.cpu: CpuShare | None = cpu
        self.on_beat = None  # called with this thread's store at each heartbeat (a script's summary)
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._flush_asked = threading.Event()
        self._flushed = threading.Event()
        self._progress: dict | None = None
        self.error: BaseException | None = None

    def set_progress(self, **fields) -> None:
        self._progress = fields

    def run(self) -> None:
        store = self._store.reopen()  # sqlite connections belong to one thread
        pending: dict[str, list] = {}
        last_beat = last_sample = time.monotonic()
        last_flush = float("-inf")  # the first points go at once: a reader opening now sees the run move
        sent_progress = None
        try:
            while True:
                self._wake.wait(EVENT_FLUSH_S)
                self._wake.clear()
                stopping = self._halt.is_set()
                # Read the request once, before draining: the points logged before it are then
                # all in this drain, and a request arriving later is this loop's next round.
                asked = self._flush_asked.is_set()
                self._flush_asked.clear()
                forced = stopping or asked
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
                    store.add_metrics(
                        self.run_id, {k: _concat(parts) for k, parts in pending.items()}, self.owner
                    )
                    pending, last_flush = {}, now
                if asked:
                    self._flushed.set()
                if now - last_beat >= HEARTBEAT_S:
                    store.heartbeat(self.run_id, self.owner)
                    if self.cpu is not None:
                        self.cpu.recount(store)
                    if self.on_beat is not None:
                        self.on_beat(store)
                    last_beat = now
                if stopping:
                    break
        except BaseException as err:  # noqa: BLE001 - the training thread raises it (`check`)
            self.error = err
        finally:
            store.close()

    def check(self) -> None:
        """Raise what stopped the recorder (a full disk, a lost claim): the run must not go on
        producing points that no longer reach the store."""
        err = self.error
        if err is not None:
            raise err if isinstance(err, StoreError) else StoreError(f"writing metrics failed: {err}")

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
        self.check()


def _concat(parts):
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


class _Stoppable:
    """A stop flag set by SIGINT/SIGTERM (or by another rank, or by the caller's `stop`)."""

    def __init__(self, stop: threading.Event | None = None):
        self._stop = stop or threading.Event()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    @contextmanager
    def stopped_by_signals(self) -> Iterator[None]:
        previous = {s: signal.signal(s, lambda *_: self._stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


class RunContext(_Stoppable):
    """The `TaskContext` of the process that records the run (rank 0, or the only one)."""

    is_main = True

    def __init__(
        self,
        store: RunStore,
        claim: Claim,
        events: EventStream,
        recorder: Recorder,
        cpu: CpuShare,
        echo: bool = False,
        stop: threading.Event | None = None,
    ):
        super().__init__(stop)
        self.store, self.events, self.recorder, self.cpu, self.echo = store, events, recorder, cpu, echo
        self.run_id, self.owner, self.spec, self.resume = claim.run_id, claim.owner, claim.spec, claim.resumed
        self.dir = store.artifacts_dir(self.run_id)
        self._log = open(self.dir / "run.log", "a", encoding="utf-8")  # noqa: SIM115 - closed by execute()

    def log(self, message: str, level: str = "info") -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            self._log.write(f"{stamp} {level.upper():5} {message}\n")
            self._log.flush()
        except (OSError, ValueError):
            pass  # a full disk: the store write that follows says so and fails the run
        self.events.emit("log", level=level, message=message)
        if self.echo:
            print(f"[run {self.run_id}] {message}", file=sys.stderr, flush=True)

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self.recorder.check()
        self.recorder.batcher.add(step, values)

    def progress(
        self, step: int, total_steps: int, epoch: float, elapsed_s: float, steps_per_s: float | None
    ) -> None:
        eta = (total_steps - step) / steps_per_s if steps_per_s else None
        self.recorder.set_progress(
            step=step, total_steps=total_steps, epoch=epoch, elapsed_s=elapsed_s, eta_s=eta
        )

    def share_cpu(self) -> None:
        note = self.cpu.apply()
        if note:
            self.log(note)

    def save_checkpoint(
        self, state: dict, step: int, tag: str = "periodic", keep: int | None = None
    ) -> Path | None:
        # Metrics first: a checkpoint must never be ahead of the stored curve, or a resume after
        # a kill would leave a gap between the last flushed point and the checkpoint's step.
        self.recorder.flush()
        self.recorder.check()
        from engine import checkpoint

        self.store.check_owner(self.run_id, self.owner)  # a writer that lost the run writes no file
        path = checkpoint.save_atomic(state, self.dir / "checkpoints" / f"step-{step:08d}.pt")
        for old in self.store.checkpoints(self.run_id):
            if old["path"] == str(path):
                self.store.remove_checkpoint(old["id"], self.owner)
        self.store.add_checkpoint(self.run_id, step, path, tag, self.owner)
        if keep is not None:  # drop the oldest periodic checkpoints beyond `keep`
            periodic = [c for c in self.store.checkpoints(self.run_id) if c["tag"] == "periodic"]
            for old in periodic[:-keep]:
                if old["path"] != str(path):
                    Path(old["path"]).unlink(missing_ok=True)
                    self.store.remove_checkpoint(old["id"], self.owner)
        self.events.emit("checkpoint", step=step, path=str(path), tag=tag)
        return path

    def last_checkpoint(self) -> dict | None:
        from engine import checkpoint

        row = self.store.last_checkpoint(self.run_id)
        return checkpoint.load(row["path"]) if row else None

    def discard_checkpoints(self) -> None:
        for old in self.store.checkpoints(self.run_id):
            Path(old["path"]).unlink(missing_ok=True)
            self.store.remove_checkpoint(old["id"], self.owner)

    def update_summary(self, **values) -> None:
        self.store.update_summary(self.run_id, self.owner, **values)

    def truncate_metrics(self, after_step: int) -> None:
        self.store.truncate_metrics(self.run_id, after_step, self.owner)

    def get_run(self, run_id: int) -> dict | None:
        return self.store.get_run(run_id)

    # --- diagnostics and live control (engine.health, engine.control)

    @property
    def control_file(self) -> Path:
        return self.dir / "control.jsonl"

    def record_event(self, step: int, kind: str, data: dict) -> None:
        """A change made to the run or a health finding, stored at its step and streamed."""
        self.store.add_run_event(self.run_id, step, kind, data, self.owner)
        self.events.emit(kind, step=step, **data)

    def run_events(self, kind: str | None = None) -> list[dict]:
        return self.store.run_events(self.run_id, kind)

    def log_histograms(self, step: int, hists: dict) -> None:
        self.store.add_histograms(self.run_id, step, hists, self.owner)

    def close(self) -> None:
        self._log.close()


class FollowerContext(_Stoppable):
    """The `TaskContext` of a rank other than 0 of a multi-process run: the spec and stop
    requests. The store, the event stream, the log and the checkpoints belong to rank 0 (which
    may be on another machine), so everything that would record does nothing here, and rank 0
    broadcasts the checkpoint a resume starts from."""

    is_main = False
    resume = False
    run_id = None

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = spec
        self.events = EventStream(None)

    control_file = None  # rank 0 reads the control file and broadcasts the commands

    def _nothing(self, *args, **kwargs) -> None:
        return None

    def run_events(self, kind: str | None = None) -> list[dict]:
        return []

    log = log_metrics = progress = share_cpu = save_checkpoint = last_checkpoint = _nothing
    discard_checkpoints = truncate_metrics = update_summary = get_run = _nothing
    record_event = log_histograms = _nothing


def follow(spec: dict) -> None:
    """Run the task of `spec` as a rank other than 0: compute only; errors propagate (the
    elastic launcher records them with this rank's traceback)."""
    from engine.tasks import task_for

    ctx = FollowerContext(spec)
    with ctx.stopped_by_signals():
        task_for(spec["task"]["kind"])(ctx)


# ------------------------------------------------------------------ one run, start to end


@contextmanager
def _opened(store: RunStore | str | Path) -> Iterator[RunStore]:
    """The caller's store, or (scripts, tests) one opened from a path for this call."""
    if isinstance(store, RunStore):
        yield store
        return
    opened = RunStore(store)
    try:
        yield opened
    finally:
        opened.close()


def execute(
    store: RunStore | str | Path,
    spec: dict | None = None,
    resume_run: int | None = None,
    parent_id: int | None = None,
    *,
    claim: Claim | None = None,
    resolved: bool = False,
    cpu: CpuShare | None = None,
    events: EventStream | None = None,
    echo: bool = False,
    samplers=(),
    origin: str | Path | None = None,
    stop: threading.Event | None = None,
) -> tuple[int, str]:
    """Run a new spec, or resume run `resume_run`, in this process; returns (run id, final
    status). `claim` is a claim taken elsewhere (a launched rank 0 records under its
    launcher's), `cpu` a thread count decided there. `origin`, the spec file, names the
    repository the run's capsule records (default: the working directory's). Setting `stop`
    stops the run as SIGINT/SIGTERM would (after its step, with a checkpoint).

    User mistakes found before the run exists (a bad spec, a run that cannot be resumed)
    raise; anything after that is recorded on the run's row and returned as a status. If even
    the final status cannot be recorded (a full disk, a lost claim), StoreError says so.
    """
    import torch

    threads_before = torch.get_num_threads()  # an in-process caller keeps its own count
    try:
        with _opened(store) as store:
            # The CPU threads first, before any torch work (a prune run's parent is built when
            # the run is claimed): torch's inter-op pool can be sized only before its first use.
            cpu = cpu or _cpu_share(store, spec, resume_run, claim)
            started_with = cpu.apply()
            claim = claim or claim_run(store, spec, resume_run, parent_id, resolved)
            events = events or EventStream(None)
            events.run_id = claim.run_id
            recorder = Recorder(store, claim, events, samplers, cpu if cpu.rebalance else None)
            ctx = RunContext(store, claim, events, recorder, cpu, echo=echo, stop=stop)
            if started_with:
                ctx.log(started_with)
            world = int(os.environ.get("WORLD_SIZE", "1"))
            note = capsule.record(store, claim, origin=origin, world_size=world)
            if note:
                ctx.log(note, "warning")
            status, summary, error = _run_task(ctx, claim.kind)
            try:
                _record_end(store, claim, status, summary, error)
            finally:
                events.emit("run_ended", status=status, summary=summary, error=error)
                ctx.close()
            return claim.run_id, status
    finally:
        torch.set_num_threads(threads_before)


def _cpu_share(store: RunStore, spec: dict | None, resume_run: int | None, claim: Claim | None) -> CpuShare:
    """This run's share of the cores, counted before it is claimed (so it counts itself)."""
    run_spec = claim.spec if claim else spec if spec is not None else store.get_run(resume_run)["spec"]
    from engine.data import loader_workers

    cpu = CpuShare.of(run_spec["hardware"], data_workers=loader_workers(run_spec["data"]))
    cpu.recount(store, starting=claim is None)
    return cpu


def _run_task(ctx: RunContext, kind: str) -> tuple[str, dict, str | None]:
    """The task, with the recorder running and SIGINT/SIGTERM asking it to stop; every error
    becomes the run's (status, summary, error)."""
    from engine.tasks import task_for

    status, summary, error = "failed", {}, None
    with ctx.stopped_by_signals():
        ctx.recorder.start()
        try:
            summary = task_for(kind)(ctx)
            status = "stopped" if ctx.stop_requested else "completed"
        except TrainbenchError as err:
            error = str(err)
            ctx.log(error, "error")
        except Exception:  # noqa: BLE001 - a bug or a torch error: keep the whole traceback on the run
            error = traceback.format_exc()
            ctx.log(error.strip().splitlines()[-1], "error")
        finally:
            try:
                ctx.recorder.close()
            except StoreError as err:  # the recorder's error, often the one the task met already
                status = "failed"
                if not error or str(err) not in error:
                    error = f"{error}\n{err}" if error else str(err)
    return status, summary, error


def _record_end(store: RunStore, claim: Claim, status: str, summary: dict, error: str | None) -> None:
    """The final status, kept even on a full disk: a failed write leaves the WAL's free room
    to the last, small update, and a checkpoint of the WAL into the database makes more."""
    try:
        store.finish_run(claim.run_id, status, summary, error, claim.owner)
    except ClaimLost:
        raise
    except StoreError:
        try:
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:  # noqa: BLE001 - best effort; the retry below reports the real error
            pass
        store.finish_run(claim.run_id, status, summary, (error or "")[-4000:] or None, claim.owner)
