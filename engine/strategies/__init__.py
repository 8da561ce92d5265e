"""How the processes of a run cooperate (single device, DDP, FSDP). Launching those processes
is a separate concern (`launch`). The training loop talks to a strategy through a few hooks:
setup, autocast/backward/step via its precision, reduce, and full state dicts for saving."""

from __future__ import annotations

import torch

from engine.errors import SpecError
from engine.precision import Precision
from engine.strategies.single import SingleDevice


def resolve_device(hardware: dict) -> torch.device:
    want = hardware["device"]
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda" and not torch.cuda.is_available():
        raise SpecError.at(
            "hardware.device", "cuda was asked for but no CUDA GPU is visible (see `trainbench devices`)"
        )
    if want == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise SpecError.at("hardware.device", "mps was asked for but Apple's Metal backend is not available")
    if want == "cuda" and hardware.get("gpus"):
        return torch.device("cuda", 0)  # CUDA_VISIBLE_DEVICES already narrowed the set
    return torch.device(want)


def make_strategy(spec: dict) -> SingleDevice:
    hardware = spec["hardware"]
    device = resolve_device(hardware)
    precision = Precision(spec["train"]["precision"], device.type)
    if hardware["strategy"] in ("auto", "single"):
        return SingleDevice(device, precision)
    raise SpecError.at(
        "hardware.strategy", f"{hardware['strategy']!r} is not available in this build; use single"
    )
