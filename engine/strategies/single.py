"""One process, one device: the identity strategy the others are measured against."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from engine.precision import Precision


class SingleDevice:
    name = "single"
    rank = 0
    world_size = 1
    is_main = True

    def __init__(self, device: torch.device, precision: Precision):
        self.device, self.precision = device, precision

    def describe(self) -> str:
        return f"single device ({self.device}), {self.precision.name}"

    def setup(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model

    def no_sync(self, model: nn.Module, sync: bool):
        """Context for a micro-batch; DDP skips the gradient all-reduce when `sync` is False."""
        return nullcontext()

    def reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def barrier(self) -> None:
        pass

    def model_state(self, model: nn.Module) -> dict:
        return self.unwrap(model).state_dict()

    def optimizer_state(self, model: nn.Module, optimizer) -> dict:
        return optimizer.state_dict()

    def load_optimizer_state(self, model: nn.Module, optimizer, state: dict) -> None:
        optimizer.load_state_dict(state)

    def teardown(self) -> None:
        pass
