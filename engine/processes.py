"""Command lines that start engine processes: `trainbench ARGS` in a new process (how the GUI
and the elastic launcher start every engine process), and the lines another machine runs to
join a multi-machine run. Plain string building, no torch, so the run form can show them as
the user types; `engine.strategies.launch` runs and prints the same lines. Also how an engine
process dies with the one that started it (`die_with_parent`)."""

from __future__ import annotations

import ctypes
import json
import shlex
import signal
import sys

PR_SET_PDEATHSIG = 1


def command_line(*args: str) -> list[str]:
    """argv that runs `trainbench ARGS` in a new process, from a source checkout, a pip install or
    a frozen app bundle alike."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "engine.cli", *args]


def die_with_parent() -> None:
    """Ask Linux for SIGTERM when this process's parent ends, even by SIGKILL, so nothing trains
    on as an orphan (SIGTERM stops a run after its step); elsewhere nothing. Called by the process
    itself, or as a Popen `preexec_fn` (`DIE_WITH_PARENT`), in the child between fork and exec."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


# For Popen's preexec_fn: None off Linux, where a preexec_fn would only cost the faster spawn.
DIE_WITH_PARENT = die_with_parent if sys.platform.startswith("linux") else None


# The fields a joining machine takes from the launching machine's command line.
JOIN_FIELDS = ("rdzv_endpoint", "rdzv_id", "nnodes", "node_rank")


def join_sets(endpoint: str, rdzv_id: str, nnodes: str, node_rank: int) -> list[str]:
    """`--set` overrides that make a copy of the spec join a given run as node `node_rank`."""
    values = {"rdzv_endpoint": endpoint, "rdzv_id": rdzv_id, "nnodes": str(nnodes), "node_rank": node_rank}
    return [f"hardware.{k}={json.dumps(v)}" for k, v in values.items()]


def join_commands(
    spec: dict, rdzv_id: str, spec_path: str | None, sets: list[str] = (), node_rank: int = 1
) -> tuple[str, str]:
    """(trainbench line, torchrun line) that another machine runs to join this run. The spec
    file (and the data it names) must be there too; `--set` overrides are repeated."""
    hw = spec["hardware"]
    spec_arg = spec_path or "SPEC.json"
    own = tuple(f"hardware.{k}=" for k in JOIN_FIELDS)
    user = [x for s in sets if not s.startswith(own) for x in ("--set", s)]
    trainbench = shlex.join(
        [
            "trainbench",
            "join",
            spec_arg,
            *("--rdzv-endpoint", hw["rdzv_endpoint"], "--rdzv-id", rdzv_id),
            *("--nnodes", str(hw["nnodes"]), "--node-rank", str(node_rank)),
            *user,
        ]
    )
    forced = [
        x for s in join_sets(hw["rdzv_endpoint"], rdzv_id, hw["nnodes"], node_rank) for x in ("--set", s)
    ]
    worker = ["--spec", spec_arg, "--node-rank", str(node_rank), *user, *forced]
    return trainbench, torchrun_line(hw, rdzv_id, worker)


def torchrun_line(hardware: dict, rdzv_id: str, worker_args: list[str]) -> str:
    """The torchrun command equivalent to a joining machine's elastic agent."""
    nproc = hardware["nproc_per_node"] or ("gpu" if hardware["device"] == "cuda" else 1)
    return shlex.join(
        [
            "torchrun",
            f"--nnodes={hardware['nnodes']}",
            f"--nproc-per-node={nproc}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={hardware['rdzv_endpoint']}",
            f"--rdzv-id={rdzv_id}",
            "--rdzv-conf=is_host=false",
            "--max-restarts=0",
            "-m",
            "engine.cli",
            "worker",
            *worker_args,
        ]
    )
