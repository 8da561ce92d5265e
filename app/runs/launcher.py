"""`RunLauncher`: the runs this window starts, follows and queues.

- `start(spec)` writes the validated spec to a file in the store's artifacts folder and starts
  `trainbench run SPEC --events -` as its own OS process (`EngineProcess`); its event stream
  feeds a `LiveRun`. Several run at once.
- The queue holds spec files in `<artifacts>/queue/`: `enqueue` starts one at once when nothing
  is running, and each time a run ends the next queued one starts. The files outlive the app;
  on the next start the queue comes back paused, waiting for the user to resume it.
- Runs that were running when the app last closed are reattached (`RunReader` polling the
  store); runs whose process died meanwhile are reported crashed.
- Stop sends SIGTERM (final checkpoint, `stopped`), kill SIGKILL (`crashed`), resume runs
  `trainbench run --resume RUN`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.runs.follow import RunReader
from app.runs.live import LiveRun
from app.runs.process import EngineProcess
from engine.errors import StoreError
from engine.processes import command_line
from engine.spec import INHERITED, SECTIONS
from engine.store import FINAL, RESUMABLE, RunStore

POLL_MS = 500  # reattached runs: how often the store is read for new points


@dataclass(frozen=True)
class QueuedRun:
    path: Path
    name: str
    kind: str

    @classmethod
    def from_file(cls, path: Path) -> QueuedRun:
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            spec = {}
        return cls(path, spec.get("name", path.stem), (spec.get("task") or {}).get("kind", "train"))


def spec_for_file(spec: dict) -> dict:
    """The normalised spec as the file a run starts from. A run that derives from another (a
    task kind with a section of its own: prune, distill) leaves out what it inherits from its
    parent (`engine.spec.INHERITED`: the model, the data) instead of writing it as null."""
    doc = dict(spec)
    if (doc.get("task") or {}).get("kind") not in SECTIONS:
        return doc
    for name, section in INHERITED.items():
        if not section and doc.get(name) is None:
            doc.pop(name, None)
        elif section and (doc.get(section) or {}).get(name) is None:
            doc.pop(section, None)
    return doc


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:40] or "run"


class RunLauncher(QObject):
    run_added = Signal(object)  # a LiveRun now shown
    run_finished = Signal(object)  # a LiveRun reached a final status
    queue_changed = Signal()

    def __init__(self, db_path: str | Path, parent: QObject | None = None):
        super().__init__(parent)
        self.db_path = Path(db_path)
        self.store = RunStore(self.db_path)  # the UI thread's connection (reads are ~ms)
        self.runs: list[LiveRun] = []
        self.queue: list[QueuedRun] = []
        self.queue_paused = False
        self.crashed_while_away: list[LiveRun] = []
        self._processes: dict[int, EngineProcess] = {}  # id(LiveRun) → its process
        self._readers: dict[int, RunReader] = {}  # id(LiveRun) → reader of a followed run
        self._poll = QTimer(self, interval=POLL_MS)
        self._poll.timeout.connect(self._poll_followed)
        root = self.store.artifacts_root
        self.spec_dir, self.queue_dir = root / "specs", root / "queue"

    # ------------------------------------------------------------ queries

    def live_runs(self) -> list[LiveRun]:
        return [r for r in self.runs if r.live]

    def find(self, run_id: int) -> LiveRun | None:
        return next((r for r in self.runs if r.run_id == run_id), None)

    def completed_runs(self, limit: int = 200) -> list[dict]:
        """Completed runs, newest first: the parents and teachers a prune/distill run can use."""
        runs = self.store.list_runs(status="completed", limit=limit)
        return [r for r in runs if r["kind"] != "lr_find"]  # an LR sweep keeps no model

    def recent_rows(self, limit: int = 25) -> list[dict]:
        return self.store.list_runs(limit=limit)

    # ------------------------------------------------------------ starting

    def start(self, spec: dict) -> LiveRun:
        """Start a run of the (validated) spec in a new engine process."""
        path = self._write_spec(spec, self.spec_dir, time.strftime("%Y%m%d-%H%M%S"))
        live = LiveRun(name=spec.get("name", "run"), kind=spec["task"]["kind"], parent=self)
        live.spec = spec
        self._launch(live, ["run", str(path)])
        return live

    def resume(self, live: LiveRun) -> None:
        """Continue a stopped, crashed or failed run from its last checkpoint."""
        if live.run_id is None or live.status not in RESUMABLE:
            raise StoreError(f"run {live.run_id} is {live.status}; only {', '.join(RESUMABLE)} runs resume")
        self._forget_reader(live)
        if not live.series:
            RunReader(self.store, live).load()
        live.error = None
        live.ended_at = None
        live.add_log("app", f"resuming run {live.run_id} from its last checkpoint")
        self._launch(live, ["run", "--resume", str(live.run_id)])

    def _launch(self, live: LiveRun, args: list[str]) -> None:
        argv = command_line("--db", str(self.db_path), *args, "--events", "-", "--quiet")
        proc = EngineProcess(argv, self)
        self._processes[id(live)] = proc
        proc.event.connect(live.apply_event)
        proc.stderr_line.connect(lambda line: live.add_log("stderr", line))
        proc.finished.connect(lambda code, crashed: self._on_process_finished(live, proc, code, crashed))
        live.set_status("starting")
        self._add(live)
        proc.start()
        live.pid = proc.pid

    def _add(self, live: LiveRun) -> None:
        if live not in self.runs:
            if live.parent() is None:
                live.setParent(self)
            self.runs.append(live)
            self.run_added.emit(live)

    def _on_process_finished(self, live: LiveRun, proc: EngineProcess, code: int, crashed: bool) -> None:
        self._processes.pop(id(live), None)
        proc.deleteLater()
        if live.status not in FINAL:  # no run_ended event: killed, crashed, or never started
            if live.run_id is not None:
                try:
                    self.store.reap()  # its pid is dead: the row says crashed from here on
                    row = self.store.get_run(live.run_id)
                except StoreError:
                    row = None
                if row is not None:
                    live.load_row(row)
                if live.status not in FINAL:
                    live.set_status(
                        "crashed", f"the engine process ended (exit code {code}) without reporting"
                    )
            else:
                tail = "\n".join(proc.stderr_tail[-20:]) or f"the engine process exited with code {code}"
                live.set_status("failed", tail)
        if live.error and live.status in ("failed", "crashed"):
            live.add_log("error", live.error.strip().splitlines()[-1] if live.error.strip() else live.error)
        self.run_finished.emit(live)
        self._start_next_queued()

    # ------------------------------------------------------------ stopping

    def stop(self, live: LiveRun) -> None:
        """Graceful: the engine writes a final checkpoint and records `stopped`."""
        if not live.live:
            return
        proc = self._processes.get(id(live))
        if proc is not None:
            proc.terminate()
        elif not self._signal(live, signal.SIGTERM):
            return
        live.set_status("stopping")
        live.add_log("app", "stop requested: the run saves a checkpoint and ends")

    def kill(self, live: LiveRun) -> None:
        """At once, without a checkpoint; the store then calls the run crashed."""
        if not live.live:
            return
        proc = self._processes.get(id(live))
        if proc is not None:
            proc.kill()
        else:
            self._signal(live, getattr(signal, "SIGKILL", signal.SIGTERM))
        live.add_log("app", "kill requested")

    def _signal(self, live: LiveRun, sig: int) -> bool:
        """Signal a followed run's process (one this window did not start)."""
        pid = live.pid
        if not pid:
            return False
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError, OSError) as err:
            live.add_log("error", f"could not signal process {pid}: {err}")
            return False
        return True

    def stop_all(self) -> None:
        for live in self.live_runs():
            self.stop(live)

    def release_all(self) -> None:
        """The window closes and the runs go on: let their processes outlive it."""
        self._poll.stop()
        for proc in list(self._processes.values()):
            proc.release()
        self._processes.clear()

    # ------------------------------------------------------------ queue

    def enqueue(self, spec: dict) -> QueuedRun:
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{len(self.queue):03d}"
        item = QueuedRun(
            self._write_spec(spec, self.queue_dir, stamp), spec.get("name", "run"), spec["task"]["kind"]
        )
        self.queue.append(item)
        self.queue_changed.emit()
        if not self.live_runs():
            self._start_next_queued()
        return item

    def remove_queued(self, item: QueuedRun) -> None:
        if item in self.queue:
            self.queue.remove(item)
            item.path.unlink(missing_ok=True)
            self.queue_changed.emit()

    def start_queued(self, item: QueuedRun) -> LiveRun | None:
        """Start a queued run now, ahead of its turn."""
        if item not in self.queue:
            return None
        self.queue.remove(item)
        target = self.spec_dir / item.path.name
        self.spec_dir.mkdir(parents=True, exist_ok=True)
        item.path.replace(target)
        live = LiveRun(name=item.name, kind=item.kind, parent=self)
        try:
            live.spec = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        self.queue_changed.emit()
        self._launch(live, ["run", str(target)])
        return live

    def set_queue_paused(self, paused: bool) -> None:
        self.queue_paused = paused
        self.queue_changed.emit()
        if not paused and not self.live_runs():
            self._start_next_queued()

    def _start_next_queued(self) -> None:
        if self.queue and not self.queue_paused:
            self.start_queued(self.queue[0])

    def _write_spec(self, spec: dict, folder: Path, stamp: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stamp}-{_slug(spec.get('name', 'run'))}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec_for_file(spec), indent=2), encoding="utf-8")
        tmp.replace(path)
        return path

    # ------------------------------------------------------------ reattaching and opening

    def reattach(self) -> None:
        """After a (re)start: follow runs still running, report those that died meanwhile, and
        bring back the queue (paused)."""
        for run_id in self.store.reap():
            live = LiveRun(parent=self)
            live.load_row(self.store.get_run(run_id))
            RunReader(self.store, live).load()
            self.crashed_while_away.append(live)
            self._add(live)
        for row in self.store.list_runs(status="running"):
            if self.find(row["id"]) is None:
                self.follow(row["id"])
        queued = sorted(self.queue_dir.glob("*.json")) if self.queue_dir.is_dir() else []
        if queued:
            self.queue = [QueuedRun.from_file(p) for p in queued]
            self.queue_paused = True
            self.queue_changed.emit()

    def open_run(self, run_id: int) -> LiveRun:
        """A run from the store, with its history; followed if it is running elsewhere."""
        live = self.find(run_id)
        if live is not None:
            return live
        row = self.store.get_run(run_id)
        if row["status"] == "running":
            return self.follow(run_id)
        live = LiveRun(parent=self)
        live.run_id = run_id
        RunReader(self.store, live).load()
        self._add(live)
        return live

    def follow(self, run_id: int) -> LiveRun:
        """Follow a run another process is running, through the store."""
        live = self.find(run_id)
        if live is not None and (id(live) in self._processes or id(live) in self._readers):
            return live
        live = live or LiveRun(parent=self)
        live.run_id = run_id
        reader = RunReader(self.store, live)
        reader.load()
        if live.live:
            self._readers[id(live)] = reader
            live.add_log("app", f"following run {run_id} (pid {live.pid}) through the run store")
            if not self._poll.isActive():
                self._poll.start()
        self._add(live)
        return live

    def _poll_followed(self) -> None:
        for key, reader in list(self._readers.items()):
            try:
                reader.poll()
            except StoreError as err:
                reader.live.set_status("crashed", str(err))
            if not reader.live.live:
                del self._readers[key]
                self.run_finished.emit(reader.live)
                self._start_next_queued()
        if not self._readers:
            self._poll.stop()

    def _forget_reader(self, live: LiveRun) -> None:
        self._readers.pop(id(live), None)

    def close(self) -> None:
        self._poll.stop()
        self.store.close()
