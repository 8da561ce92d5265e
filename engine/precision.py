"""Mixed precision as one object the training loop calls, instead of flags in the loop.

bf16 autocasts on CPU and CUDA and needs no loss scaling (same exponent range as fp32);
fp16 exists only on CUDA here and needs a grad scaler, because small gradients underflow
its 5-bit exponent.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from engine.errors import SpecError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, name: str, device_type: str):
        if name == "fp16" and device_type != "cuda":
            raise SpecError.at(
                "train.precision",
                f"fp16 needs a CUDA device (it relies on a grad scaler); on {device_type} use bf16 or fp32",
            )
        self.name, self.device_type, self.dtype = name, device_type, DTYPES[name]
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def unscale(self, optimizer) -> None:
        """Bring gradients back to their true size before clipping them."""
        if self.scaler:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        if self.scaler:
            self.scaler.step(optimizer)  # skips the step when gradients overflowed
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)
