"""The tracking run: `init()` claims (or attaches to) a run of kind `script` and starts the
engine's own recorder for it; `Run.log` is then a list append, as for a designed run.

What the store gets is what a designed run gives it, through the same pieces: the claim
(`engine.runner.claim_new`: one writer per run, an owner token on every write), the recorder's
batched background writer (points reach the database at least once a second, heartbeats every
two), the live event stream when `trainbench run --script` started the script, and reaping by
pid: a script killed with `kill -9` is `crashed` for the next reader, with its points up to the
last flush. Nothing here imports torch: a tensor passed to `log` is read (`float()`) on the
recorder's thread, so a CUDA loss costs the training loop no synchronisation.

Started by `trainbench run --script` (engine.scripts), the script finds its launcher's claim in
the environment (`TRAINBENCH_CLAIM`, as a launched rank 0 does) and writes to that run; the
launcher then records the final status from the script's exit, and stops it with SIGINT, which
`with trainbench.init()` (or the uncaught KeyboardInterrupt) turns into `stopped`.

In a torch.distributed job (RANK set, or a process group initialised) only rank 0 writes; with
`rank_zero_only=False` every rank writes its points under `rank<N>/` into rank 0's run.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import math
import os
import shutil
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Mapping
from pathlib import Path

from engine import capsule
from engine.devices import process_rss_mb
from engine.errors import StoreError, TrainbenchError
from engine.events import EventStream
from engine.runner import CLAIM_ENV, Claim, Recorder, claim_new
from engine.scripts import process_spec
from engine.store import FINAL, RunStore

KIND = "script"
EVENTS_ENV = "TRAINBENCH_EVENTS_SOCKET"  # the launcher's socket for this script's live events

_current: Run | None = None


class Summary(dict):
    """`run.summary`: results of the run (`run.summary["best_acc"] = 0.97`). Values are kept as
    JSON numbers and text; changes reach the store at the next heartbeat and at `finish`."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self.dirty = False

    def __setitem__(self, key, value) -> None:
        with self._lock:
            super().__setitem__(str(key), _plain(value))
            self.dirty = True

    def update(self, *args, **kwargs) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def take(self) -> dict | None:
        """A copy of the changes since the last take, or None when there were none."""
        with self._lock:
            if not self.dirty:
                return None
            self.dirty = False
            return dict(self)


class Run:
    """One run of the store, as a script sees it. Made by `init()`; usable as a context manager
    (an exception marks it failed with its traceback, Ctrl-C stopped)."""

    def __init__(
        self,
        store: RunStore | None,
        claim: Claim | None,
        *,
        config: dict,
        events: EventStream | None = None,
        prefix: str = "",
        records_status: bool = True,
        attached: bool = False,
    ):
        self._store, self._claim, self._prefix = store, claim, prefix
        self._records_status, self.attached = records_status, attached
        self.id: int | None = claim.run_id if claim else None
        self.config = config
        self.summary = Summary()
        self.total_steps: int | None = None  # when known, the live progress shows an ETA
        self.step = 0  # the next step `log` uses when it is given none
        self._finished = False
        self._t0 = time.monotonic()
        self._elapsed_before = 0.0
        self._recorder: Recorder | None = None
        if claim is not None:
            previous = store.get_run(claim.run_id)["summary"]
            self._elapsed_before = float(previous.get("elapsed_s") or 0.0)
            last = [
                s["last_step"]
                for s in store.series_summaries(claim.run_id).values()
                if s["last_step"] is not None
            ]
            self.step = max(last) + 1 if last else 0  # a resumed run logs on from its last step
            self._recorder = Recorder(store, claim, events or EventStream(None), samplers=[process_rss_mb])
            self._recorder.on_beat = self._write_summary
            self._recorder.start()

    # ------------------------------------------------------------ the script's side

    @property
    def name(self) -> str | None:
        return self._claim.spec.get("name") if self._claim else None

    @property
    def dir(self) -> Path | None:
        """This run's folder beside the store (its log, artifacts, checkpoints)."""
        return self._store.artifacts_dir(self.id) if self._store is not None and self.id is not None else None

    def log(self, data: Mapping[str, float], step: int | None = None) -> None:
        """Points of one step: {name: number or 0-d tensor}. Without `step`, the step after the
        last one logged. Cheap enough for every step: a list append; the recorder writes."""
        if step is None:
            step = self.step
        else:
            step = int(step)
        self.step = step + 1
        if self._recorder is None:
            return
        self._recorder.check()  # a full disk or a lost claim stops the run here, as a designed one
        values = {}
        for key, value in data.items():
            number = _number(value)
            if number is None:
                _warn_once(key, value)
                continue
            values[self._prefix + key if self._prefix else key] = number
        self._recorder.batcher.add(step, values)
        if self._records_status:
            elapsed = self._elapsed_before + time.monotonic() - self._t0
            eta = None
            if self.total_steps and step > 0:
                eta = max(0.0, (self.total_steps - step) * (time.monotonic() - self._t0) / step)
            self._recorder.set_progress(
                step=step, total_steps=self.total_steps, epoch=None, elapsed_s=elapsed, eta_s=eta
            )

    def update_config(self, values: Mapping | object) -> None:
        """Add hyperparameters to the run's config (stored in its spec, as `init(config=…)`)."""
        self.config.update(_config(values))
        if self._store is not None and self._records_status and not self._finished:
            self._store.amend_spec(self.id, self._claim.owner, config=self.config)

    def log_artifact(self, path: str | Path, name: str | None = None) -> Path | None:
        """Copy a file or folder into this run's `artifacts/` (listed by `trainbench show`);
        returns the copy's path (None on a rank that does not write)."""
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"log_artifact: {source} does not exist")
        if self._store is None or not self._records_status:
            return None
        target = self.dir / "artifacts" / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return target

    def finish(self, status: str = "completed", error: str | None = None) -> None:
        """Write the last points and the summary and end the run with `status` (completed,
        failed, stopped). Called again, it does nothing."""
        if self._finished:
            return
        if status not in FINAL:
            raise ValueError(f"finish: status must be one of {', '.join(FINAL)}, got {status!r}")
        self._finished = True
        _forget(self)
        if self._recorder is None:
            return
        try:
            self._recorder.close()
        except StoreError as err:
            status, error = "failed", f"{error}\n{err}" if error else str(err)
        try:
            if self._records_status:
                summary = {**(self.summary.take() or dict(self.summary)), "elapsed_s": self._elapsed()}
                if self.step:
                    summary["steps"] = self.step
                self._store.finish_run(self.id, status, summary, error, self._claim.owner)
        finally:
            self._recorder.events.emit("log", level="info", message=f"trainbench: run {self.id} {status}")
            self._store.close()

    def _exit(self) -> None:
        """At interpreter exit: a launched script's status is its launcher's to record (it knows
        the exit code); a script run directly, without `finish`, completed."""
        if self._finished:
            return
        if self.attached and self._recorder is not None:
            self._finished = True
            try:
                self._recorder.close()
                summary = self.summary.take()
                self._store.update_summary(
                    self.id, self._claim.owner, **(summary or {}), elapsed_s=self._elapsed(), steps=self.step
                )
            except StoreError:
                pass  # the launcher records what it can; the points up to the last flush are stored
            self._store.close()
            return
        self.finish("completed")

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._t0

    def _write_summary(self, store: RunStore) -> None:
        """The recorder thread's heartbeat: summary changes, so a killed script keeps them."""
        changes = self.summary.take()
        if changes and self._records_status:
            store.update_summary(self.id, self._claim.owner, **changes)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind, value, tb) -> bool:
        if kind is None:
            self.finish("completed")
        elif issubclass(kind, KeyboardInterrupt):
            self.finish("stopped")
        elif issubclass(kind, SystemExit) and value.code in (0, None):
            self.finish("completed")
        elif issubclass(kind, SystemExit):
            self.finish("failed", f"the script exited with code {value.code}")
        else:
            self.finish("failed", "".join(traceback.format_exception(kind, value, tb)))
        return False

    def __repr__(self) -> str:
        return f"<trainbench.Run {self.id} {self.name!r}>"


# ------------------------------------------------------------------ init


def init(
    name: str | None = None,
    config: Mapping | object | None = None,
    tags: list[str] | None = None,
    db: str | Path | None = None,
    *,
    rank_zero_only: bool = True,
) -> Run:
    """Start a run (or, under `trainbench run --script`, attach to the launcher's) and return it.

    `config` (a dict, an argparse Namespace or a dataclass) is stored in the run's spec as
    `config.<key>`: the hyperparameters the Experiments views compare. `db` is the run database
    (default: $TRAINBENCH_DB, else the user data folder; a launched script writes its
    launcher's). In a torch.distributed job only rank 0 writes, unless `rank_zero_only=False`.
    """
    global _current
    config = _config(config)
    rank = _rank()
    if rank != 0 and rank_zero_only:
        return Run(None, None, config=config)
    if CLAIM_ENV in os.environ and _current is not None and _current.attached and not _current._finished:
        _current.update_config(config)  # the launcher's run is this process's one run
        return _current
    if CLAIM_ENV in os.environ:
        run = _attach(name, config, tags, rank)
    else:
        run = _start(name, config, tags, db, rank, rank_zero_only)
    if run._records_status:
        if _current is not None and not _current._finished:
            _current.finish("completed")  # one run per process at a time, as wandb does
        _current = run
        _install_hooks()
    return run


def finish(status: str = "completed", error: str | None = None) -> None:
    """End the current run (the one the last `init()` returned), if any."""
    if _current is not None:
        _current.finish(status, error)


def _start(name, config, tags, db, rank: int, rank_zero_only: bool) -> Run:
    """A run of its own, for a script run directly (python train.py, torchrun train.py)."""
    shared = not rank_zero_only and _world_size() > 1
    if rank != 0:  # rank_zero_only=False: write into the run rank 0 creates
        doc = _broadcast(None)
        store = RunStore(doc["db"])
        claim = Claim(doc["run_id"], doc["owner"], False, store.get_run(doc["run_id"])["spec"], KIND)
        return Run(store, claim, config=config, prefix=f"rank{rank}/", records_status=False)
    store = RunStore(db or None)
    spec = process_spec(name, _tags(tags), config)
    claim = claim_new(store, spec, KIND)
    capsule.record(store, claim, origin=spec["script"]["file"], argv=sys.argv[1:], world_size=_world_size())
    if shared:
        _broadcast({"db": str(store.path), "run_id": claim.run_id, "owner": claim.owner})
    return Run(store, claim, config=config, prefix="rank0/" if shared else "")


def _attach(name, config, tags, rank: int) -> Run:
    """The run `trainbench run --script` claimed for this script: its spec gets what the
    script says about itself, its capsule this interpreter's versions."""
    store = RunStore(os.environ.get("TRAINBENCH_DB") or None)
    claim = Claim.from_env(store)
    main = rank == 0
    if main:
        amend = {"config": config}
        if name:
            amend["name"] = name
        if tags is not None:
            amend["tags"] = _tags(tags)
        store.amend_spec(claim.run_id, claim.owner, **amend)
        store.update_capsule(claim.run_id, claim.owner, **capsule.runtime())
        claim = dataclasses.replace(claim, spec={**claim.spec, **amend})
    events = _events_stream(claim.run_id) if main else None
    if events is not None:  # the name the script gives itself, for the window that started it
        events.emit("run_started", name=claim.spec["name"], kind=KIND, total_steps=None, resumed_from=0)
    prefix = "" if main or _world_size() == 1 else f"rank{rank}/"
    return Run(store, claim, config=config, events=events, prefix=prefix, records_status=main, attached=True)


def _events_stream(run_id: int) -> EventStream | None:
    """The launcher's live channel (the app plots from it), when it gave one."""
    path = os.environ.get(EVENTS_ENV)
    if not path or not hasattr(socket, "AF_UNIX"):
        return None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError:
        return None  # the store still gets everything; the app follows it from there
    return EventStream(sock.makefile("w", encoding="utf-8", buffering=1), run_id=run_id)


# ------------------------------------------------------------------ the process around the run

_hooks_installed = False


def _install_hooks() -> None:
    """An uncaught exception fails the current run with its traceback (Ctrl-C stops it), and
    the interpreter's exit ends it, for scripts that never call `finish`."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(kind, value, tb):
        run = _current
        if run is not None and not run._finished:
            try:
                if issubclass(kind, KeyboardInterrupt):
                    run.finish("stopped")
                else:
                    run.finish("failed", "".join(traceback.format_exception(kind, value, tb)))
            except TrainbenchError:
                pass  # the store is gone; the traceback below still reaches the terminal
        previous(kind, value, tb)

    sys.excepthook = excepthook
    atexit.register(lambda: _current is not None and _current._exit())


def _forget(run: Run) -> None:
    global _current
    if _current is run:
        _current = None


def _rank() -> int:
    if "RANK" in os.environ:
        try:
            return int(os.environ["RANK"])
        except ValueError:
            return 0
    dist = _dist()
    return dist.get_rank() if dist is not None else 0


def _world_size() -> int:
    if "WORLD_SIZE" in os.environ:
        try:
            return int(os.environ["WORLD_SIZE"])
        except ValueError:
            return 1
    dist = _dist()
    return dist.get_world_size() if dist is not None else 1


def _dist():
    """torch.distributed when this process already imported torch and joined a group."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def _broadcast(doc: dict | None) -> dict:
    """Rank 0's run, told to every rank (`rank_zero_only=False` outside a launcher)."""
    dist = _dist()
    if dist is None:
        raise TrainbenchError(
            "init(rank_zero_only=False) in a multi-process job needs torch.distributed initialised "
            "first (init_process_group), so that the ranks can share rank 0's run"
        )
    box = [doc]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ------------------------------------------------------------------ values


def _config(config) -> dict:
    """A config as stored in the spec: plain JSON, nested dicts kept (`config.optim.lr`)."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    elif not isinstance(config, Mapping) and hasattr(config, "__dict__"):
        config = vars(config)  # argparse.Namespace and plain objects
    if not isinstance(config, Mapping):
        raise TypeError(
            f"init: config must be a dict, a dataclass or a Namespace, not {type(config).__name__}"
        )
    return {str(k): _plain(v) for k, v in config.items()}


def _plain(value):
    """A value as JSON can hold it: numbers (0-d tensors and numpy scalars read out), text,
    lists and dicts; anything else as its text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    number = _number(value)
    if number is not None:
        return _plain(float(number))
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def _number(value):
    """A loggable scalar as the batcher keeps it: a Python number, or a 0-d tensor detached
    (read by the recorder's thread); None for anything else."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return value
    detach = getattr(value, "detach", None)
    if detach is not None and getattr(value, "numel", lambda: 0)() == 1:
        return detach().reshape(())
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():  # a numpy scalar
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return None


def _tags(tags) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise TypeError("init: tags must be a list of strings")
    return list(tags)


_warned: set[str] = set()


def _warn_once(key: str, value) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(
            f"trainbench: log: {key!r} is a {type(value).__name__}, not a number; not logged",
            stacklevel=3,
        )
