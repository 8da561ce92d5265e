"""Starting the processes of a multi-process run through torch.distributed's own elastic
launcher (`elastic_launch`, what `torchrun` runs), never a home-made process pool.

The launching machine (`trainbench run`) claims the run (`claim_run`: created, or taken up for
a resume) and starts an elastic agent with `nproc_per_node` workers (`trainbench worker`);
other machines start theirs with `trainbench join` or the equivalent torchrun line
(`join_commands`). Rank 0 runs on the launching machine and records the run under the
launcher's claim (see `engine.worker`), so the run's one writer is, in turn, rank 0 and then
the launcher, and its process is the launcher, which lives as long as the run. The agent
restarts nothing: a failing worker makes it stop the others, and `launch_run` records which
rank failed and why on the run. Workers die with their launcher (see `engine.worker`), so
none is orphaned.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from engine.data import loader_workers
from engine.events import EventStream
from engine.processes import command_line, join_commands
from engine.runner import THREADS_ENV, Claim, CpuShare, claim_run
from engine.store import RunStore
from engine.strategies.world import WorldPlan, check_devices

DEFAULT_PORT = 29400
JOIN_TIMEOUT_S = 600  # how long the first machine waits for the others
SHUTDOWN_S = 30  # after a failure or a stop: how long workers get to finish before SIGKILL


def rendezvous_id(hardware: dict, run_id: int | None) -> str:
    return hardware["rdzv_id"] or f"trainbench-run-{run_id}"


def launch_config(plan: WorldPlan, hardware: dict, rdzv_id: str, hosting: bool, log_dir: Path | None = None):
    """The elastic launcher's configuration: c10d rendezvous, no restarts.

    One machine uses a free loopback port; several meet at `rdzv_endpoint`, whose TCP store the
    launching machine hosts (`is_host`), so machines sharing a host name (or localhost) agree
    on who serves it."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig

    endpoint = hardware["rdzv_endpoint"] if plan.max_nodes > 1 else "127.0.0.1:0"
    return LaunchConfig(
        min_nodes=plan.min_nodes,
        max_nodes=plan.max_nodes,
        nproc_per_node=plan.nproc_per_node,
        run_id=rdzv_id,
        role="trainbench",
        rdzv_backend="c10d",
        rdzv_endpoint=endpoint,
        rdzv_configs={"is_host": hosting, "join_timeout": JOIN_TIMEOUT_S},
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
        logs_specs=DefaultLogsSpecs(log_dir=str(log_dir) if log_dir else None),
        shutdown_timeout=SHUTDOWN_S,
    )


@contextmanager
def worker_environment(plan: WorldPlan, threads: tuple[int, str], claim: Claim | None = None):
    """Environment the workers inherit: the selected GPUs, their CPU threads (N processes ×
    all cores each would oversubscribe the CPU N-fold), this process's pid (workers exit when it
    dies) and, for rank 0, the claim it records the run under."""
    n, why = threads
    env = {"TRAINBENCH_LAUNCHER_PID": str(os.getpid()), THREADS_ENV: f"{n}:{why}", "OMP_NUM_THREADS": str(n)}
    env |= claim.to_env() if claim else {}
    if plan.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, plan.gpus))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def start_agent(config, argv: list[str]) -> None:
    """Run the elastic agent until every local worker has ended; raises ChildFailedError."""
    from torch.distributed.launcher.api import elastic_launch

    elastic_launch(config, argv[0])(*argv[1:])


def launch_run(
    store: RunStore,
    plan: WorldPlan,
    *,
    spec: dict | None = None,
    resume_run: int | None = None,
    parent_id: int | None = None,
    resolved: bool = False,
    events: EventStream | None = None,
    events_target: str | None = None,
    echo: bool = False,
    progress: bool = False,
    spec_path: str | None = None,
    sets: list[str] = (),
) -> tuple[int, str]:
    """Claim the run (new from `spec`, or `resume_run`), launch its workers on this machine,
    wait for them, and return (run id, final status). The workers record the run; this process
    records only what they cannot: a worker that died, or machines that never met. `sets` (the
    `--set` overrides of the spec file) are repeated in the join command printed for other
    machines."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError

    check_devices(plan)
    events = events or EventStream(None)
    claim = claim_run(store, spec, resume_run, parent_id, resolved)
    run_id, spec = claim.run_id, claim.spec
    events.run_id = run_id
    threads = CpuShare.of(spec["hardware"], plan.nproc_per_node, loader_workers(spec["data"])).choose(
        store.live_runs_here()
    )

    hardware = spec["hardware"]
    rdzv_id = rendezvous_id(hardware, run_id)

    def say(message: str, always: bool = False) -> None:
        events.emit("log", level="info", message=message)
        if echo or always:
            print(f"[run {run_id}] {message}", file=sys.stderr, flush=True)

    say(
        f"launching {plan.nproc_per_node} process(es) on this machine, {plan.nodes} machine(s) in all, "
        f"through torch.distributed's elastic launcher ({plan.backend}, {plan.reason})"
    )
    if plan.max_nodes > 1:
        trainbench, torchrun = join_commands(spec, rdzv_id, spec_path, sets)
        store.update_summary(run_id, claim.owner, join_command=trainbench)
        say(
            f"waiting for the other machine(s); on each, run (--node-rank 1, 2, …):\n  {trainbench}\nor:\n  {torchrun}",
            True,
        )

    argv = command_line("--db", str(store.path), "worker", "--run", str(run_id), "--node-rank", "0")
    argv += (["--events", events_target] if events_target else []) + (["--echo"] if echo else [])
    argv += ["--progress"] if progress else []
    config = launch_config(
        plan, hardware, rdzv_id, hosting=True, log_dir=store.artifacts_dir(run_id) / "workers"
    )
    recorded = False  # whether this process wrote the final status (and so must announce it)
    try:
        with worker_environment(plan, threads, claim):
            start_agent(config, argv)
    except ChildFailedError as err:
        recorded = _record_failure(store, claim, err)
    except SignalException:
        pass  # asked to stop: the agent passed SIGTERM on; rank 0 recorded `stopped`
    except RendezvousError as err:
        recorded = _finish_if_open(
            store, claim, "failed", f"the machines did not meet at the rendezvous: {err}"
        )
    lost = "the workers ended without recording the run (see the run log)"
    recorded = _finish_if_open(store, claim, "failed", lost) or recorded
    run = store.get_run(run_id)
    if recorded:
        events.emit("run_ended", status=run["status"], summary=run["summary"], error=run["error"])
    return run_id, run["status"]


def _finish_if_open(store: RunStore, claim: Claim, status: str, error: str) -> bool:
    if store.get_run(claim.run_id)["status"] in ("queued", "running"):
        store.finish_run(claim.run_id, status, error=error, owner=claim.owner)
        return True
    return False


def _record_failure(store: RunStore, claim: Claim, err) -> bool:
    """Name the rank that failed first and keep its traceback on the run.

    The agent notices the first dead worker and only then stops the rest, so its failures are
    mostly that one; on a tie, one killed by a signal other than SIGTERM/SIGINT (which are how
    the agent stops the rest) or with a traceback beats a rank that
    merely exited non-zero (typically rank 0 recording a peer's disappearance)."""
    first = _first_failure(err)
    # On the launching machine ranks follow local ranks (node rank 0 sorts first).
    rank = first.local_rank
    run = store.get_run(claim.run_id)
    if rank == 0 and run["status"] == "failed" and run["error"]:
        return False  # rank 0 recorded its own error, traceback included
    if first.exitcode < 0:
        error = f"rank {rank} (pid {first.pid}) was killed by {first.signal_name()}"
    else:
        error = f"rank {rank} (pid {first.pid}) failed with exit code {first.exitcode}"
    cause = _traceback(first)
    if cause:
        error += f":\n{cause}"
    if run["error"] and rank != 0:
        error += f"\n\n(rank 0 then reported: {run['error'].strip().splitlines()[-1]})"
    store.finish_run(claim.run_id, "failed", error=error, owner=claim.owner)
    return True


def _first_failure(err):
    _, first = min(err.failures.items(), key=lambda kv: (kv[1].timestamp, not _has_cause(kv[1]), kv[0]))
    return first


def _has_cause(failure) -> bool:
    """Whether this failure is a cause rather than a consequence: SIGTERM and SIGINT are how the
    agent (or a user) stops workers, and a bare non-zero exit is how rank 0 ends after
    recording an error it got from a peer."""
    import signal

    if failure.exitcode < 0:
        return -failure.exitcode not in (signal.SIGTERM, signal.SIGINT)
    return bool(_traceback(failure))


def _traceback(failure) -> str:
    """The worker's traceback from torchelastic's error file ('' without one)."""
    if failure.error_file == "<N/A>":
        return ""
    message = failure.error_file_data.get("message")
    if isinstance(message, dict):
        return message.get("extraInfo", {}).get("py_callstack") or message.get("message", "")
    return message or ""


# ------------------------------------------------------------------ joining from another machine


def join_run(spec: dict, plan: WorldPlan, spec_file: str, sets: list[str], echo: bool = True) -> int:
    """Start this machine's workers for a run launched elsewhere; returns an exit code.

    `spec` is `spec_file` with `sets` applied (the workers apply them again). Nothing is
    recorded here: the store lives on the launching machine; a failure is reported on stderr
    with its rank and traceback."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    hw = spec["hardware"]
    check_devices(plan)
    argv = command_line("worker", "--spec", spec_file, "--node-rank", str(hw["node_rank"]))
    argv += [x for s in sets for x in ("--set", s)]
    config = launch_config(plan, hw, hw["rdzv_id"], hosting=False)
    threads = CpuShare.of(hw, plan.nproc_per_node, loader_workers(spec["data"])).choose(
        live_runs=1
    )  # no store
    if echo:
        print(
            f"joining {hw['rdzv_endpoint']} (rendezvous {hw['rdzv_id']}) as node {hw['node_rank']} "
            f"with {plan.nproc_per_node} process(es)",
            file=sys.stderr,
            flush=True,
        )
    try:
        with worker_environment(plan, threads):
            start_agent(config, argv)
    except ChildFailedError as err:
        first = _first_failure(err)
        how = f"killed by {first.signal_name()}" if first.exitcode < 0 else f"exit code {first.exitcode}"
        print(f"trainbench: error: local rank {first.local_rank} failed ({how})", file=sys.stderr)
        cause = _traceback(first)
        if cause:
            print(cause, file=sys.stderr)
        return 1
    return 0
