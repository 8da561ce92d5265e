"""Distributed data parallel: every process holds the whole model and trains on its slice of
the global batch; gradients are averaged across processes during backward.

The process group is already joined (by `engine.worker`, started by the elastic launcher), so
this strategy only wraps the model and reduces values.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engine.compiler import Compiler
from engine.strategies.single import SingleDevice, enable_checkpointing


class DDP(SingleDevice):
    name = "ddp"

    def __init__(self, device, precision, checkpointing: bool = False, reason: str = ""):
        super().__init__(device, precision, checkpointing, reason)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0

    def describe(self) -> str:
        return f"{super().describe()}, {self.world_size} processes ({dist.get_backend()})"

    def setup(self, model: nn.Module, compiler: Compiler | None = None) -> nn.Module:
        if self.checkpointing:
            enable_checkpointing(model)
        model = model.to(self.device)
        if compiler:  # compiled inside DDP's forward: dynamo then splits the graph at DDP's buckets
            compiler.whole(model)
        # The constructor broadcasts rank 0's weights, so every replica starts equal.
        # gradient_as_bucket_view: gradients live in the all-reduce buckets instead of beside them.
        return DistributedDataParallel(
            model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            gradient_as_bucket_view=True,
        )

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model.module

    def no_sync(self, model: nn.Module, sync: bool):
        # Accumulating micro-batches: average gradients once, on the last one.
        return super().no_sync(model, sync) if sync else model.no_sync()

    def reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        value = value.detach().clone()
        dist.all_reduce(value)  # SUM: gloo has no AVG
        return value / self.world_size

    def any_rank(self, flag: bool) -> bool:
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj):
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()
