"""Script runs: a user's own training script (or any command) as a run of kind `script`.

    trainbench run --script train.py -- --lr 0.01
    trainbench run --script train.py --set hardware.nproc_per_node=2 -- --epochs 3

The spec of a script run has the sections `script` (the file or command, its arguments,
working directory and environment) and `hardware` (the designed runs' own fields: processes,
machines, GPUs, CPU threads), and `config`, which the script's `trainbench.init(config=…)`
fills in. `run_script` claims the run (as `trainbench run` claims any run), records its
capsule, and starts the script as one child process, or — when more than one process is asked
for — through torch.distributed's elastic launcher with the same configuration designed runs use
(`engine.strategies.launch.launch_config`, run by `trainbench script-agent`). The children get
the claim in their environment, so the script's `trainbench.init()` writes its points, summary
and status to this run (rank 0 only, unless the script asks otherwise), and the CPU threads,
GPUs and launcher pid designed workers get (`worker_environment`).

This process stays the run's process (its pid is in the row while the script runs, like a
multi-process run's launcher): it heartbeats, copies the script's stdout and stderr into the
run log and the live event stream, relays the script's own live events (metrics, progress) from
a local socket, and records the final status the script did not: completed on exit code 0,
failed with the exit code and the last lines of stderr, crashed when a signal killed it.
Stop is SIGINT (Python's KeyboardInterrupt, which `with trainbench.init()` records as
`stopped`), then SIGTERM after `script.stop_grace_s`, then SIGKILL after SHUTDOWN_S more; a
second Ctrl-C skips to the next step.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from engine import capsule
from engine.errors import SpecError, StoreError
from engine.events import EventStream, parse_events
from engine.fields import Field, check_fields, shown
from engine.processes import DIE_WITH_PARENT, command_line
from engine.spec import CROSS_CHECKS, SCHEMA_VERSION, SECTIONS, TOP_LEVEL, apply_overrides
from engine.store import HEARTBEAT_S, RunStore

KIND = "script"
SHUTDOWN_S = 30  # after SIGTERM: how long the script gets before SIGKILL
STDERR_KEPT = 20  # lines of stderr a failure's error message ends with
EVENTS_ENV = "TRAINBENCH_EVENTS_SOCKET"  # where the script's `trainbench.init()` sends live events

SCRIPT_FIELDS: tuple[Field, ...] = (
    Field(
        "file",
        "str",
        None,
        "the Python file to run (or give a command instead); relative to the spec file",
        optional=True,
        traits={"path"},
        label="Script",
    ),
    Field(
        "command",
        "str",
        None,
        "a command to run instead of a Python file, e.g. `bash train.sh` (split as a shell would, "
        "run without a shell)",
        optional=True,
    ),
    Field(
        "args",
        "any",
        [],
        "the script's arguments: a list of strings, or one line split as a shell would",
        label="Arguments",
    ),
    Field(
        "cwd",
        "str",
        None,
        "the working directory (default: the script's folder; for a command, the current one)",
        optional=True,
        traits={"path"},
        label="Working directory",
    ),
    Field(
        "env",
        "any",
        {},
        "environment variables for the script: {NAME: value}, or NAME=value lines",
        label="Environment",
    ),
    Field(
        "python",
        "str",
        None,
        "the Python interpreter that runs the file (default: the one running Trainbench)",
        optional=True,
        label="Python",
    ),
    Field(
        "stop_grace_s",
        "float",
        10.0,
        "Stop sends SIGINT (a KeyboardInterrupt), then SIGTERM after this many seconds",
        min=0,
        max=3600,
        label="Stop grace (s)",
    ),
)
#: the hardware fields that mean something to a script (the strategy is the script's own)
HARDWARE_FIELDS = (
    "device",
    "gpus",
    "nproc_per_node",
    "nnodes",
    "node_rank",
    "rdzv_endpoint",
    "rdzv_id",
    "threads",
)
TOP_FIELDS = tuple(f for f in TOP_LEVEL if f.name != "model")
KNOWN = {f.name for f in TOP_FIELDS} | {"task", "script", "hardware", "config"}


# ------------------------------------------------------------------ the spec


def is_script_spec(doc) -> bool:
    """Whether a spec document describes a script run (`task.kind` is "script")."""
    task = doc.get("task") if isinstance(doc, dict) else None
    return isinstance(task, dict) and task.get("kind") == KIND


def script_doc(target: str, args: list[str] = ()) -> dict:
    """The spec document of `trainbench run --script TARGET -- ARGS`: a Python file (`.py`, or
    any file that is not executable) or a command (an executable file or a program on PATH)."""
    path = Path(target)
    python_file = path.suffix == ".py" or (path.is_file() and not os.access(path, os.X_OK))
    script = {"file": target} if python_file or not shutil.which(target) else {"command": target}
    return {"schema": SCHEMA_VERSION, "task": {"kind": KIND}, "script": {**script, "args": list(args)}}


def load_script_spec(doc: dict, sets: list[str] = (), base_dir: str | Path | None = None) -> dict:
    """`doc` with `--set` overrides applied, validated and normalised (see `validate_script_spec`)."""
    return validate_script_spec(apply_overrides(doc, list(sets)), base_dir)


def validate_script_spec(doc: dict, base_dir: str | Path | None = None) -> dict:
    """The normalised script spec — every default filled in, paths absolute, arguments a list,
    the environment a dict — or SpecError listing every problem with its path."""
    if not isinstance(doc, dict):
        raise SpecError.at("", f"a spec must be a JSON object, got {type(doc).__name__}")
    base = Path(base_dir) if base_dir else Path.cwd()
    problems: list[tuple[str, str]] = []
    for key in doc:
        if key not in KNOWN:
            problems.append((key, f"is not a field of a script run ({', '.join(sorted(KNOWN))})"))
    out = check_fields(
        TOP_FIELDS, {k: v for k, v in doc.items() if k in {f.name for f in TOP_FIELDS}}, "", problems
    )
    if not is_script_spec(doc) or set(doc["task"]) != {"kind"}:
        problems.append(("task", 'a script run\'s task is {"kind": "script"}'))
    out["task"] = {"kind": KIND}
    script = doc.get("script", {})
    out["script"] = check_fields(
        SCRIPT_FIELDS, script if isinstance(script, dict) else {}, "script", problems
    )
    if not isinstance(script, dict):
        problems.append(("script", f"must be an object, got {shown(script)}"))
    hardware = doc.get("hardware", {})
    out["hardware"] = check_fields(
        SECTIONS["hardware"], hardware if isinstance(hardware, dict) else {}, "hardware", problems
    )
    failed = {p.split(".", 1)[0] for p, _ in problems}
    if "hardware" not in failed:
        for sections, check in CROSS_CHECKS:
            if set(sections) <= {"hardware"}:
                check(out, problems)
    config = doc.get("config", {})
    if not isinstance(config, dict):
        problems.append(("config", f"must be an object, got {shown(config)}"))
    out["config"] = config if isinstance(config, dict) else {}
    if "script" not in failed:
        _check_script(out["script"], base, problems)
    if not isinstance(out.get("tags"), list) or not all(isinstance(t, str) for t in out.get("tags") or []):
        problems.append(("tags", f"must be a list of strings, got {shown(out.get('tags'))}"))
    if problems:
        raise SpecError(problems)
    if "name" not in doc:
        s = out["script"]
        out["name"] = Path(s["file"]).stem if s["file"] else Path(shlex.split(s["command"])[0]).name
    return out


def _check_script(s: dict, base: Path, problems: list) -> None:
    """The file or command, the arguments, the folder and the environment, made exact."""
    if (s["file"] is None) == (s["command"] is None):
        problems.append(("script.file", "give the Python file to run, or script.command (one of the two)"))
        return
    if s["file"] is not None:
        path = _absolute(base, s["file"], "script.file", problems)
        if path is not None and not path.is_file():
            problems.append(("script.file", f"{path} is not a file"))
        s["file"] = str(path) if path else s["file"]
    else:
        try:
            words = shlex.split(s["command"])
        except ValueError as err:
            problems.append(("script.command", f"cannot be split into words ({err})"))
            return
        if not words:
            problems.append(("script.command", "is empty"))
            return
    args = s["args"]
    if isinstance(args, str):
        try:
            args = shlex.split(args)
        except ValueError as err:
            problems.append(("script.args", f"cannot be split into words ({err})"))
            args = []
    if not isinstance(args, list) or not all(
        isinstance(a, str | int | float) and not isinstance(a, bool) for a in args
    ):
        problems.append(("script.args", f"must be a list of strings, got {shown(args)}"))
    else:
        s["args"] = [str(a) for a in args]
    default_cwd = str(Path(s["file"]).parent) if s["file"] is not None else str(base)
    cwd = _absolute(base, s["cwd"], "script.cwd", problems) if s["cwd"] else Path(default_cwd)
    if cwd is not None and not cwd.is_dir():
        problems.append(("script.cwd", f"{cwd} is not a folder"))
    s["cwd"] = str(cwd) if cwd else s["cwd"]
    s["env"] = _environment(s["env"], problems)


def _absolute(base: Path, text: str, where: str, problems: list) -> Path | None:
    if "\0" in text:
        problems.append((where, "a path cannot contain a NUL character"))
        return None
    return (base / Path(text).expanduser()).resolve()


NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _environment(env, problems: list) -> dict:
    if isinstance(env, str):
        pairs = {}
        for line in env.replace(";", "\n").splitlines():
            if line.strip():
                key, sep, value = line.strip().partition("=")
                if not sep:
                    problems.append(("script.env", f"{shown(line.strip())} is not NAME=value"))
                pairs[key.strip()] = value
        env = pairs
    if not isinstance(env, dict):
        problems.append(("script.env", f"must be {{NAME: value}}, got {shown(env)}"))
        return {}
    out = {}
    for key, value in env.items():
        if not NAME.fullmatch(str(key)):
            problems.append(("script.env", f"{shown(key)} is not an environment variable name"))
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            problems.append(("script.env", f"{key}: must be text or a number, got {shown(value)}"))
        else:
            out[str(key)] = str(value)
    return out


def process_spec(name: str | None, tags: list[str], config: dict) -> dict:
    """The spec of a script that started its own run (`python train.py` calling
    `trainbench.init()`): this process's file, arguments and folder, every other field at its
    default, so it compares field for field with a launched script run."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
    file = str(Path(argv0).resolve()) if argv0 and Path(argv0).is_file() else None
    given = {"file": file, "command": None if file else "python", "args": sys.argv[1:], "cwd": os.getcwd()}
    ignored: list = []
    return {
        "schema": SCHEMA_VERSION,
        "name": name or (Path(file).stem if file else "script"),
        "description": "",
        "tags": tags,
        "task": {"kind": KIND},
        "script": check_fields(SCRIPT_FIELDS, given, "script", ignored),
        "hardware": check_fields(SECTIONS["hardware"], {}, "hardware", ignored),
        "config": config,
    }


def script_argv(spec: dict) -> list[str]:
    """What one process runs: `python -u FILE ARGS…` or the command's words and the arguments."""
    s = spec["script"]
    if s["file"] is not None:
        return [s["python"] or sys.executable, "-u", s["file"], *s["args"]]
    return [*shlex.split(s["command"]), *s["args"]]


def tracking_import_path() -> str | None:
    """The folder that lets a script `import trainbench` from this checkout when the installed name
    does not point here (a source checkout run without `pip install -e .`, or a second worktree
    beside the installed one); None when it does."""
    package = Path(__file__).resolve().parent / "tracking"
    for finder in sys.meta_path:  # as a new interpreter would look, not this one's imports
        find = getattr(finder, "find_spec", None)
        spec = find("trainbench", None) if find else None
        if spec is not None:  # the first finder that knows the name decides
            ours = (package, package.parent.parent / "trainbench")  # this checkout, or a wheel's copy
            if spec.origin and Path(spec.origin).resolve().parent in ours:
                return None
            break  # the shim, or another checkout's install (a worktree beside it): use this one's
    return str(package / "source_tree")


# ------------------------------------------------------------------ running


def run_script(
    store: RunStore,
    spec: dict | None = None,
    *,
    resume_run: int | None = None,
    events: EventStream | None = None,
    live: bool = False,
    echo: bool = False,
) -> tuple[int, str]:
    """Claim the run of a script spec (or take up run `resume_run` again), run the script until
    it ends, and return (run id, final status). `live`: relay the script's events to `events`
    (the app reads them); `echo`: its stdout and stderr go to this terminal too."""
    from engine.runner import CpuShare, claim_run
    from engine.strategies.launch import worker_environment
    from engine.strategies.world import check_devices, plan_world

    events = events or EventStream(None)
    if resume_run is not None and store.get_run(resume_run)["kind"] != KIND:
        raise SpecError.at("", f"run {resume_run} is not a script run")
    claim = claim_run(store, spec, resume_run, resolved=True)
    run_id, spec = claim.run_id, claim.spec
    events.run_id = run_id
    log = RunLog(store.artifacts_dir(run_id) / "run.log", events)
    try:
        plan = plan_world(spec)
        check_devices(plan)
    except SpecError as err:
        store.finish_run(run_id, "failed", error=str(err), owner=claim.owner)
        raise
    threads = CpuShare.of(spec["hardware"], plan.nproc_per_node).choose(store.live_runs_here())
    s = spec["script"]
    events.emit("run_started", name=spec["name"], kind=KIND, total_steps=None, resumed_from=0)
    note = capsule.record(
        store, claim, origin=s["file"] or s["cwd"], argv=script_argv(spec), world_size=plan.world_size
    )
    if note:
        log.write(note, "warning")
    if plan.world_size > 1:
        argv = command_line("--db", str(store.path), "script-agent", "--run", str(run_id))
        log.write(
            f"launching {plan.nproc_per_node} process(es) on this machine, {plan.nodes} machine(s) in all, "
            f"through torch.distributed's elastic launcher: {shlex.join(script_argv(spec))}"
        )
    else:
        argv = script_argv(spec)
        log.write(f"running {shlex.join(argv)} in {s['cwd']}")
    relay = EventRelay(events) if live else None
    extra = {**s["env"], "TRAINBENCH_DB": str(store.path), "PYTHONUNBUFFERED": "1"}
    if relay is not None:
        extra[EVENTS_ENV] = relay.path
    shim = tracking_import_path()
    if shim:
        extra["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), shim) if p)
    started = time.time()
    try:
        with worker_environment(plan, threads, claim):
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=s["cwd"],
                    env={**os.environ, **extra},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop it in order
                    preexec_fn=DIE_WITH_PARENT,  # the script does not train on as an orphan
                )
            except OSError as err:
                error = f"cannot start {argv[0]}: {err.strerror or err}"
                store.finish_run(run_id, "failed", error=error, owner=claim.owner)
                events.emit("run_ended", status="failed", summary={}, error=error)
                return run_id, "failed"
        pumps = [
            OutputPump(proc.stdout, "info", log, sys.stdout.buffer if echo else None),
            OutputPump(proc.stderr, "stderr", log, sys.stderr.buffer if echo else None),
        ]
        stopper = Stopper(proc, s["stop_grace_s"], group=plan.world_size == 1, log=log)
        with stopper.on_signals():
            lost = _wait(proc, store, claim, stopper)
        for pump in pumps:
            pump.join(5.0)
    finally:
        if relay is not None:
            relay.close()
    status, error = _final_status(store, claim, proc.returncode, stopper.requested, lost, pumps[1].tail)
    if error is not None or store.get_run(run_id)["status"] == "running":
        summary = (
            {} if "elapsed_s" in store.get_run(run_id)["summary"] else {"elapsed_s": time.time() - started}
        )
        store.finish_run(run_id, status, summary, error, claim.owner)
    run = store.get_run(run_id)
    log.write(f"the script ended (exit code {proc.returncode}); the run is {run['status']}")
    log.close()
    events.emit("run_ended", status=run["status"], summary=run["summary"], error=run["error"])
    return run_id, run["status"]


def _wait(proc: subprocess.Popen, store: RunStore, claim, stopper: Stopper) -> str | None:
    """Until the script ends: heartbeats (a plain command logs none of its own) and the stop's
    escalation. Returns why the claim was lost, when it was (the script is then stopped)."""
    last_beat = 0.0
    lost = None
    while True:
        try:
            proc.wait(timeout=0.25)
            return lost
        except subprocess.TimeoutExpired:
            pass
        stopper.tick()
        now = time.monotonic()
        if lost is None and now - last_beat >= HEARTBEAT_S:
            last_beat = now
            try:
                store.heartbeat(claim.run_id, claim.owner)
            except StoreError as err:
                lost = str(err)
                stopper.request()


def _final_status(store, claim, code: int, stop_requested: bool, lost: str | None, tail: list[str]):
    """(status, error) of a script that ended; error None when the script recorded its own end."""
    run = store.get_run(claim.run_id)
    if lost is not None:
        return "failed", lost
    if run["status"] != "running":
        return run["status"], None
    if stop_requested:
        return "stopped", None
    if code == 0:
        return "completed", None
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        return "crashed", f"the script's process was killed by {name}"
    lines = "\n".join(tail[-STDERR_KEPT:])
    return "failed", f"the script exited with code {code}" + (f":\n{lines}" if lines else "")


class Stopper:
    """Stop in steps: SIGINT, SIGTERM after the grace period, SIGKILL after SHUTDOWN_S more; a
    signal to this process asks for the next step at once. `group`: signal the script's whole
    process group (a terminal's Ctrl-C would); else the elastic agent alone, which passes each
    signal on to its workers."""

    STEPS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)

    def __init__(self, proc: subprocess.Popen, grace_s: float, group: bool, log: RunLog):
        self.proc, self.grace_s, self.group, self.log = proc, grace_s, group, log
        self.sent = 0  # steps taken
        self.deadline: float | None = None
        self._asked = threading.Event()

    @property
    def requested(self) -> bool:
        return self.sent > 0

    def request(self) -> None:
        """Ask for the next step (safe in a signal handler: the wait loop takes it)."""
        self._asked.set()

    def tick(self) -> None:
        if self._asked.is_set():
            self._asked.clear()
            self._next()
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            self._next()

    def _next(self) -> None:
        if self.sent >= len(self.STEPS) or self.proc.poll() is not None:
            return
        sig = self.STEPS[self.sent]
        self.sent += 1
        wait = self.grace_s if sig == signal.SIGINT else SHUTDOWN_S
        self.deadline = time.monotonic() + wait if sig != signal.SIGKILL else None
        then = f"; SIGTERM in {wait:g} s unless it ends" if sig == signal.SIGINT else ""
        self.log.write(f"stop requested: sending {sig.name} to the script{then}")
        try:
            if self.group or sig == signal.SIGKILL:
                os.killpg(self.proc.pid, sig)
            else:
                os.kill(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    @contextmanager
    def on_signals(self):
        previous = {s: signal.signal(s, lambda *_: self.request()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


class RunLog:
    """The run's log: `run.log` beside the store (what a window following the run reads) and the
    live event stream (what the window that started it reads), one line at a time from threads."""

    def __init__(self, path: Path, events: EventStream):
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self.events = events

    def write(self, message: str, level: str = "info") -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        word = {"warning": "WARN", "error": "ERROR"}.get(level, "INFO")
        with self._lock:
            try:
                self._file.write(f"{stamp} {word:5} {message}\n")
                self._file.flush()
            except (OSError, ValueError):
                pass  # a full disk: the store's next write says so
        self.events.emit("log", level=level, message=message)

    def close(self) -> None:
        with self._lock:
            self._file.close()


class OutputPump(threading.Thread):
    """Copies one of the script's output pipes: raw to this terminal (`echo`), and line by line
    into the run log. A line rewritten with carriage returns (a progress bar) is logged as a
    terminal would leave it: its last state, once its newline comes."""

    def __init__(self, pipe, level: str, log: RunLog, echo=None):
        super().__init__(name=f"trainbench-{level}", daemon=True)
        self.pipe, self.level, self.log, self.echo = pipe, level, log, echo
        self.tail: list[str] = []
        self.start()

    def run(self) -> None:
        pending = b""
        fd = self.pipe.fileno()
        while True:
            try:
                block = os.read(fd, 65536)
            except OSError:
                break
            if not block:
                break
            if self.echo is not None:
                try:
                    self.echo.write(block)
                    self.echo.flush()
                except (OSError, ValueError):
                    self.echo = None
            *lines, pending = (pending + block).split(b"\n")
            for line in lines:
                self._line(line)
        if pending:
            self._line(pending)
        self.pipe.close()

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rsplit("\r", 1)[-1].rstrip()
        if not text:
            return
        if self.level == "stderr":
            self.tail = [*self.tail[-STDERR_KEPT + 1 :], text]
        self.log.write(text, self.level)


class EventRelay:
    """A local socket the script's `trainbench.init()` sends its live events to (metrics and
    progress, as JSON lines); each is emitted again on this run's stream. A socket, not an
    inherited pipe, because the elastic launcher's workers inherit no descriptors."""

    def __init__(self, events: EventStream):
        self.events = events
        self._dir = tempfile.mkdtemp(prefix="trainbench-")
        self.path = os.path.join(self._dir, "events.sock")  # short: socket paths are limited to ~100 bytes
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(8)
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, name="trainbench-relay", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            t = threading.Thread(target=self._read, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("r", encoding="utf-8", errors="replace") as lines:
            for ev in parse_events(lines):
                kind = ev.pop("event")
                for k in ("run_id", "t"):
                    ev.pop(k, None)
                if kind in ("run_started", "metrics", "progress", "log", "checkpoint"):
                    self.events.emit(kind, **ev)

    def close(self) -> None:
        for t in self._threads:
            t.join(2.0)  # what the script sent before it ended
        self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)


# ------------------------------------------------------------------ several processes


def run_agent(db: str, run_id: int) -> int:
    """`trainbench script-agent`: the elastic agent of a multi-process script run, started by
    `run_script` (whose pipes its workers inherit). The launch configuration is the designed
    runs' (`launch_config`: c10d rendezvous, no restarts). Returns the exit code: 1 when a worker
    failed, naming it on stderr, 130 when stopped by a signal."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from engine.strategies.launch import launch_config, rendezvous_id, start_agent
    from engine.strategies.world import plan_world

    store = RunStore(db, readonly=True)
    try:
        spec = store.get_run(run_id)["spec"]
    finally:
        store.close()
    plan = plan_world(spec)
    hardware = spec["hardware"]
    os.environ["TRAINBENCH_LAUNCHER_PID"] = str(os.getpid())
    config = launch_config(plan, hardware, rendezvous_id(hardware, run_id), hosting=True)
    try:
        start_agent(config, script_argv(spec))
    except ChildFailedError as err:
        _, first = min(err.failures.items(), key=lambda kv: (kv[1].timestamp, kv[0]))
        how = (
            f"was killed by {first.signal_name()}"
            if first.exitcode < 0
            else f"exited with code {first.exitcode}"
        )
        print(f"trainbench: rank {first.local_rank} (pid {first.pid}) {how}", file=sys.stderr, flush=True)
        return 1
    except SignalException:
        return 130
    return 0
