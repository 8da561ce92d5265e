"""One process of a multi-process run, as started by torch.distributed's elastic launcher:

    trainbench worker --db DB --run ID --node-rank 0 [--events TARGET]   (the launching machine)
    trainbench worker --spec FILE --node-rank N [--set PATH=VALUE ...]   (a machine that joins)

Every process first takes the CPU thread count its launcher chose (before any torch work),
joins the process group (rank 0 always on the launching machine, see `join_process_group`) and
checks that all machines train the same spec. Rank 0 then records the run under its launcher's
claim exactly as a single-process run does (`execute`: store, event stream, log, checkpoints);
the other ranks compute only (`follow`). A failing worker exits non-zero with its traceback in
torchelastic's error file, from which the launcher names it in `runs.error`.
"""

from __future__ import annotations

import os
import signal
import sys

from engine.errors import SpecError
from engine.processes import die_with_parent


def run_worker(
    *,
    node_rank: int,
    db: str | None = None,
    run_id: int | None = None,
    spec_file: str | None = None,
    sets: list[str] = (),
    events_target: str | None = None,
    echo: bool = False,
    listeners=(),
) -> int:
    import torch
    import torch.distributed as dist

    from engine.devices import resource_samplers
    from engine.events import EventStream
    from engine.runner import THREADS_ENV, Claim, CpuShare, execute, follow, set_cpu_threads
    from engine.store import RunStore
    from engine.strategies.world import check_same_spec, join_process_group, local_rank, plan_world

    die_with_launcher()
    threads, _, why = os.environ.get(THREADS_ENV, "").partition(":")
    if threads:
        set_cpu_threads(int(threads))
    store = RunStore(db) if db else None
    spec = store.get_run(run_id)["spec"] if store else _read_spec(spec_file, sets)
    plan = plan_world(spec)
    if plan.device_type == "cuda":
        torch.cuda.set_device(local_rank())  # before NCCL: each process owns its GPU
    rank = join_process_group(plan.backend, node_rank)
    try:
        check_same_spec(spec)
        if rank != 0:
            follow(spec)
            return 0
        if store is None:
            raise SpecError.at(
                "hardware.node_rank",
                "rank 0 must run on the launching machine (node rank 0), which holds the run store",
            )
        events = EventStream.open(events_target)
        events.listeners.extend(listeners)
        cpu = CpuShare.decided(int(threads), why) if threads else None
        _, status = execute(
            store,
            claim=Claim.from_env(store),
            cpu=cpu,
            events=events,
            echo=echo,
            samplers=resource_samplers(plan),
        )
        # Non-zero makes the agent stop the other ranks at once, instead of their waiting on us.
        return 0 if status in ("completed", "stopped") else 1
    finally:
        dist.destroy_process_group()
        if store is not None:
            store.close()


def _read_spec(path: str, sets: list[str]) -> dict:
    from engine.spec import load_spec

    return load_spec(path, sets)


def die_with_launcher() -> None:
    """Ask Linux to send this process SIGTERM when its launcher dies (even by SIGKILL), so no
    worker trains on as an orphan; SIGTERM stops a run cleanly at the next step."""
    if not sys.platform.startswith("linux"):
        return
    die_with_parent()
    expected = os.environ.get("TRAINBENCH_LAUNCHER_PID")
    if expected and os.getppid() != int(expected):  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)
