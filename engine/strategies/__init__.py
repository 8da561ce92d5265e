"""How the processes of a run cooperate (single device, DDP, FSDP). Starting those processes
is a separate concern (`launch`); joining their process group happens in `engine.worker`.

The training loop talks to a strategy through a few hooks: setup, autocast/backward/step via
its precision, reduce, and full state dicts for saving.
"""

from __future__ import annotations

import torch

from engine.errors import SpecError
from engine.precision import Precision
from engine.strategies.single import SingleDevice
from engine.strategies.world import local_rank, plan_world, resolve_device_type


def resolve_device(hardware: dict) -> torch.device:
    """This process's device. A launched worker takes the GPU of its local rank
    (CUDA_VISIBLE_DEVICES already holds the selected GPUs); a single process takes the first
    selected GPU by its index."""
    import torch.distributed as dist

    kind = resolve_device_type(hardware)
    if kind != "cuda":
        return torch.device(kind)
    if dist.is_available() and dist.is_initialized():
        return torch.device("cuda", local_rank())
    return torch.device("cuda", hardware["gpus"][0] if hardware.get("gpus") else 0)


def make_strategy(spec: dict) -> SingleDevice:
    import torch.distributed as dist

    hardware = spec["hardware"]
    plan = plan_world(spec)
    device = resolve_device(hardware)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_float32_matmul_precision(hardware["matmul_precision"])  # TF32 on Ampere+ from "high"
    precision = Precision(spec["train"]["precision"], device.type)
    checkpointing = hardware["activation_checkpointing"]
    if plan.strategy == "single":
        return SingleDevice(device, precision, checkpointing, plan.reason)
    if not (dist.is_available() and dist.is_initialized()):
        raise SpecError.at(
            "hardware.strategy",
            f"{plan.strategy} runs in processes started by `trainbench run` (torch.distributed's elastic "
            "launcher); this process was not started that way",
        )
    if plan.strategy == "ddp":
        from engine.strategies.ddp import DDP

        return DDP(device, precision, checkpointing, plan.reason)
    from engine.strategies.fsdp import FSDP

    return FSDP(
        device, precision, checkpointing, plan.reason, hardware["fsdp_sharding"], hardware["cpu_offload"]
    )
