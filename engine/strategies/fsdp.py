"""Fully sharded data parallel (FSDP2, `torch.distributed.fsdp.fully_shard`): parameters,
gradients and optimizer state are split across processes and gathered one unit at a time.

Units are the Repeat copies and TransformerBlocks (the same units activation checkpointing
recomputes), then the root for everything else. The sharding setting maps onto FSDP2 as:

  full_shard     reshard_after_forward=True: parameters are freed after each unit's forward
                 and gathered again for its backward (least memory)
  shard_grad_op  reshard_after_forward=False: parameters stay gathered from forward to backward
                 (one all-gather less per unit, more memory); gradients and optimizer sharded
  no_shard       a (world × 1) mesh: replicated everywhere, like DDP, through FSDP's code path

Checkpoints are saved as full state dicts gathered onto rank 0 (on CPU), so they load into a
single-device run, and a single-device checkpoint loads here (each rank keeps its shard).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

from engine.compiler import Compiler
from engine.strategies.ddp import DDP
from engine.strategies.single import FULL_STATE, enable_checkpointing


class FSDP(DDP):
    name = "fsdp"

    def __init__(
        self, device, precision, checkpointing=False, reason="", sharding="full_shard", cpu_offload=False
    ):
        super().__init__(device, precision, checkpointing, reason)
        self.sharding, self.cpu_offload = sharding, cpu_offload and device.type == "cuda"

    def describe(self) -> str:
        offload = ", shards offloaded to CPU" if self.cpu_offload else ""
        return f"{super().describe()}, {self.sharding}{offload}"

    def setup(self, model: nn.Module, compiler: Compiler | None = None) -> nn.Module:
        if self.checkpointing:
            enable_checkpointing(model)
        model = model.to(self.device)
        if compiler:  # unit by unit, before sharding: FSDP's hooks stay outside the compiled code
            compiler.units(shard_units(model))
        if self.sharding == "no_shard":
            mesh = init_device_mesh(
                self.device.type, (self.world_size, 1), mesh_dim_names=("replicate", "shard")
            )
        else:
            mesh = init_device_mesh(self.device.type, (self.world_size,))
        options = {
            "mesh": mesh,
            "reshard_after_forward": self.sharding == "full_shard",
            "offload_policy": CPUOffloadPolicy() if self.cpu_offload else OffloadPolicy(),
        }
        for unit in shard_units(model):
            fully_shard(unit, **options)
        fully_shard(model, **options)
        return model

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model  # fully_shard changes the module in place

    def no_sync(self, model: nn.Module, sync: bool):
        # FSDP2 keeps unsharded gradients across micro-batches and reduce-scatters on the last.
        model.set_requires_gradient_sync(sync)
        return super(DDP, self).no_sync(model, sync)

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> torch.Tensor:
        norm = super().clip_grad_norm(model, max_norm)  # a DTensor: the norm over all shards
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def model_state(self, model: nn.Module) -> dict:
        # Collective: every rank takes part; rank 0 receives the full tensors, the others {}.
        return get_model_state_dict(model, options=FULL_STATE)

    def load_model_state(self, model: nn.Module, state: dict) -> None:
        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))

    def optimizer_state(self, model: nn.Module, optimizer) -> dict:
        return get_optimizer_state_dict(model, optimizer, options=FULL_STATE)


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules sharded (and gathered) as one unit each: every Repeat copy, and every
    TransformerBlock outside a Repeat. One level is enough: the root takes the rest."""
    from engine.graph.layers import Repeat, TransformerBlock

    units: list[nn.Module] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, Repeat):
            units.extend(module.blocks)
        elif isinstance(module, TransformerBlock):
            units.append(module)
        else:
            continue
        inside.update(id(m) for m in module.modules())
    return units
