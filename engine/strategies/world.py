"""The world of a run: how many processes on how many machines, on which devices, with which
strategy; and, inside a launched process, joining that world's process group.

`plan_world` is pure bookkeeping over the spec and this machine's devices (the launcher and
every worker compute the same plan). `join_process_group` runs in each worker started by the
elastic launcher.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta

import torch

from engine.errors import SpecError
from engine.spec import parse_nnodes

# A collective that waits this long means a peer is gone; the default (30 min) hides failures.
COLLECTIVE_TIMEOUT = timedelta(minutes=5)


@dataclass(frozen=True)
class WorldPlan:
    device_type: str  # cpu | cuda | mps
    strategy: str  # single | ddp | fsdp (auto resolved)
    nproc_per_node: int
    min_nodes: int
    max_nodes: int
    gpus: tuple[int, ...] | None  # CUDA indices on this machine; None: all visible
    reason: str  # how `auto` decided, for the run log

    @property
    def world_size(self) -> int:
        """Processes once every machine has joined (an elastic run may start with fewer)."""
        return self.nproc_per_node * self.max_nodes

    @property
    def launched(self) -> bool:
        """Whether the run needs processes started by the elastic launcher."""
        return self.strategy != "single"

    @property
    def backend(self) -> str:
        return "nccl" if self.device_type == "cuda" else "gloo"

    @property
    def nodes(self) -> str:
        return (
            str(self.max_nodes) if self.min_nodes == self.max_nodes else f"{self.min_nodes}:{self.max_nodes}"
        )


def resolve_device_type(hardware: dict) -> str:
    want = hardware["device"]
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda" and not torch.cuda.is_available():
        raise SpecError.at(
            "hardware.device", "cuda was asked for but no CUDA GPU is visible (see `trainbench devices`)"
        )
    if want == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise SpecError.at("hardware.device", "mps was asked for but Apple's Metal backend is not available")
    return want


def plan_world(spec: dict) -> WorldPlan:
    hw = spec["hardware"]
    device_type = resolve_device_type(hw)
    min_nodes, max_nodes = parse_nnodes(hw["nnodes"])
    gpus = tuple(hw["gpus"]) if hw["gpus"] and device_type == "cuda" else None
    if device_type == "cuda":
        nproc = hw["nproc_per_node"] or (len(gpus) if gpus else torch.cuda.device_count())
    else:
        nproc = hw["nproc_per_node"] or 1
    strategy, reason = choose_strategy(hw["strategy"], nproc * max_nodes, device_type)
    return WorldPlan(device_type, strategy, nproc, min_nodes, max_nodes, gpus, reason)


def choose_strategy(asked: str, processes: int, device_type: str) -> tuple[str, str]:
    """(strategy, why): `auto` is single on one device and DDP on several."""
    if asked != "auto":
        return asked, asked
    if processes == 1:
        return "single", "auto → single (one device)"
    where = "GPUs" if device_type == "cuda" else "CPU processes"
    return "ddp", f"auto → ddp ({processes} {where})"


def check_devices(plan: WorldPlan) -> None:
    """Before launching: the selected GPUs exist and each process gets its own."""
    if plan.device_type != "cuda":
        return
    visible = torch.cuda.device_count()
    missing = [g for g in plan.gpus or () if g >= visible]
    if missing:
        raise SpecError.at(
            "hardware.gpus", f"GPU {missing[0]} does not exist; this machine has {visible} (0..{visible - 1})"
        )
    devices = len(plan.gpus) if plan.gpus else visible
    if plan.nproc_per_node > devices:
        raise SpecError.at(
            "hardware.nproc_per_node",
            f"is {plan.nproc_per_node}, but NCCL needs one GPU per process and {devices} are selected",
        )


# ------------------------------------------------------------------ inside a launched worker


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def join_process_group(backend: str, node_rank: int) -> int:
    """Join the run's process group so that ranks follow (node rank, launcher rank); returns
    this process's rank.

    The elastic launcher's c10d rendezvous numbers machines in an order of its own (sorted host
    names, then pids), but rank 0 must run on the launching machine (node rank 0): it writes the
    run store and the event stream, and FSDP gathers full checkpoints onto it. So every process
    joins with the launcher's numbering, tells the others its node rank, and when the order
    differs the group is rebuilt with the sorted numbering under a fresh store prefix.
    """
    import torch.distributed as dist

    dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    rank, world = dist.get_rank(), dist.get_world_size()
    keys: list = [None] * world
    dist.all_gather_object(keys, (node_rank, rank))
    order = sorted(keys)
    if order == keys:
        return rank
    token = [uuid.uuid4().hex]
    dist.broadcast_object_list(token, src=0)  # one prefix for this round, shared by every rank
    dist.destroy_process_group()
    store, _, _ = next(dist.rendezvous("env://"))  # a client of the launcher's own store
    new_rank = order.index((node_rank, rank))
    dist.init_process_group(
        backend,
        store=dist.PrefixStore(f"trainbench/{token[0]}", store),
        rank=new_rank,
        world_size=world,
        timeout=COLLECTIVE_TIMEOUT,
    )
    return new_rank


# Fields that may differ between machines of one run: where things are, not what is trained.
LOCAL_FIELDS = {
    "name",
    "description",
    "tags",
    "data.path",
    "hardware.gpus",
    "hardware.nproc_per_node",
    "hardware.node_rank",
    "hardware.rdzv_endpoint",
    "hardware.rdzv_id",
}


def check_same_spec(spec: dict) -> None:
    """Every machine must train the same thing: compare each rank's spec with rank 0's.

    Raises SpecError naming the first differing fields, on every rank, before any training."""
    import torch.distributed as dist

    mine = {k: v for k, v in _flat(spec).items() if k not in LOCAL_FIELDS}
    specs: list = [None] * dist.get_world_size()
    dist.all_gather_object(specs, mine)
    for rank, other in enumerate(specs):
        differ = sorted(k for k in set(other) | set(specs[0]) if other.get(k) != specs[0].get(k))
        if differ:
            shown = ", ".join(differ[:5]) + (" …" if len(differ) > 5 else "")
            raise SpecError.at(
                differ[0],
                f"rank {rank}'s spec differs from the launching machine's in {shown}; "
                "every machine must join with the same spec file",
            )


def _flat(doc: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in doc.items():
        if isinstance(v, dict) and k != "model":
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True)
    return out
