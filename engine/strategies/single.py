"""One process, one device: the identity strategy the others are measured against.

Its hooks are the whole interface the training loop uses; DDP and FSDP override the ones where
processes must cooperate. Checkpoints hold full, unsharded state dicts with the optimizer state
keyed by parameter name, so a checkpoint of any strategy loads into any other.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from engine.compiler import Compiler
from engine.precision import Precision

# Full (unsharded) state on CPU: loadable by a run with any strategy and any device.
FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True)


class SingleDevice:
    name = "single"
    rank = 0
    world_size = 1
    is_main = True

    def __init__(
        self, device: torch.device, precision: Precision, checkpointing: bool = False, reason: str = ""
    ):
        self.device, self.precision = device, precision
        self.checkpointing = checkpointing
        self.reason = reason  # why `auto` chose this strategy, for the run log

    def describe(self) -> str:
        extra = ", activation checkpointing" if self.checkpointing else ""
        return f"{self.reason or self.name} on {self.device}, {self.precision.name}{extra}"

    def setup(self, model: nn.Module, compiler: Compiler | None = None) -> nn.Module:
        """The model on this device, ready to train: checkpointed, wrapped, sharded, compiled."""
        if self.checkpointing:
            enable_checkpointing(model)
        model = model.to(self.device)
        return compiler.whole(model) if compiler else model

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model

    def no_sync(self, model: nn.Module, sync: bool):
        """Context for a micro-batch; DDP skips the gradient all-reduce when `sync` is False."""
        return nullcontext()

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> torch.Tensor:
        """Clip the global gradient norm (over every rank's gradients); returns the norm before clipping."""
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    def reduce_mean(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def any_rank(self, flag: bool) -> bool:
        """True when `flag` is set on any rank: all ranks must stop at the same step."""
        return flag

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (resume: only rank 0 reads the checkpoint)."""
        return obj

    def barrier(self) -> None:
        pass

    def model_state(self, model: nn.Module) -> dict:
        return {k: v.detach().cpu() for k, v in self.unwrap(model).state_dict().items()}

    def load_model_state(self, model: nn.Module, state: dict) -> None:
        self.unwrap(model).load_state_dict(state)

    def optimizer_state(self, model: nn.Module, optimizer) -> dict:
        return get_optimizer_state_dict(self.unwrap(model), optimizer, options=FULL_STATE)

    def load_optimizer_state(self, model: nn.Module, optimizer, state: dict) -> None:
        if any(isinstance(k, int) for k in state.get("state", {})):
            optimizer.load_state_dict(state)  # torch's own format, keyed by parameter position
        else:
            set_optimizer_state_dict(
                self.unwrap(model), optimizer, state, options=StateDictOptions(full_state_dict=True)
            )

    def teardown(self) -> None:
        pass


def enable_checkpointing(model: nn.Module) -> int:
    """Recompute the activations of each Repeat copy and each TransformerBlock in backward.

    Only the outermost of nested units is checkpointed (a TransformerBlock inside a checkpointed
    Repeat is not), since nesting would recompute the inner block twice. Returns how many units.
    """
    done: list[str] = []
    for name, module in model.named_modules():
        if hasattr(module, "checkpointing") and not any(name.startswith(d + ".") for d in done):
            module.checkpointing = True
            done.append(name)
    return len(done)
