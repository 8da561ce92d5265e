"""`train.compile`: torch.compile where the spec asks for it, undone where it fails.

Under FSDP each Repeat copy and TransformerBlock is compiled on its own (torchtitan's pattern):
those are the units FSDP gathers and frees, and their hooks stay outside the compiled code.
Otherwise the whole model is compiled, before DDP wraps it, so that its first call happens
inside DDP's forward, where dynamo's DDPOptimizer splits the graph at the gradient buckets and
the all-reduce overlaps the backward. A module's `forward` is replaced on the instance, so its
parameter names, state dict and checkpoints stay those of the uncompiled model.

torch.compile compiles at the first call, and AOTAutograd the backward at the first backward.
Here the backward is compiled with the forward (`force_non_lazy_backward_lowering`), so that
every compile failure comes out of a forward call; there the compiled forward gives way to the
module's own, one log line says why, and the run goes on uncompiled: a missing C++ compiler or
a model dynamo cannot trace costs speed, never the run. TRAINBENCH_COMPILE_BACKEND names a
backend other than inductor (`aot_eager`, `eager`) to tell a dynamo problem from an inductor one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import torch
from torch import nn

BACKEND_ENV = "TRAINBENCH_COMPILE_BACKEND"


class Compiler:
    """Compiles modules' forwards in `mode` (`train.compile`; "off" compiles nothing)."""

    def __init__(self, mode: str = "off", log: Callable[..., None] = lambda message, level="info": None):
        self.mode, self.log = mode, log
        self.backend = os.environ.get(BACKEND_ENV, "inductor")
        self.compiled: list[nn.Module] = []
        self.failure: str | None = None

    @property
    def active(self) -> bool:
        """Whether compiled code runs (compile asked for, and nothing failed yet)."""
        return bool(self.compiled) and self.failure is None

    def whole(self, model: nn.Module) -> nn.Module:
        """Compile the model as one; returns it (the same module)."""
        self.units([model])
        return model

    def units(self, modules: Iterable[nn.Module]) -> None:
        """Compile each module on its own."""
        if self.mode == "off" or self.failure is not None:
            return
        options = {"backend": self.backend}
        if self.mode != "default":
            options["mode"] = self.mode
        for module in modules:
            try:
                compiled = torch.compile(module.forward, **options)
            except Exception as err:  # noqa: BLE001 - an unknown backend or mode: train uncompiled
                self.fail(err)
                return
            module.forward = _Guarded(self, module.forward, compiled)
            self.compiled.append(module)
        if self.compiled:
            self.log(
                f"torch.compile ({self.mode}, {self.backend}): {len(self.compiled)} module(s), "
                "compiled at the first step"
            )

    def fail(self, err: BaseException) -> None:
        """Put every compiled module back to its own forward and say why, once."""
        for module in self.compiled:
            module.__dict__.pop("forward", None)
        self.compiled = []
        lines = str(err).strip().splitlines()
        self.failure = f"{type(err).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")
        self.log(f"torch.compile failed, training uncompiled ({self.failure[:300]})", "warning")


class _Guarded:
    """A module's compiled forward that hands over to its own forward when compiling fails."""

    def __init__(self, compiler: Compiler, eager: Callable, compiled: Callable):
        self.compiler, self.eager, self.compiled = compiler, eager, compiled

    def __call__(self, *args, **kwargs):
        if self.compiler.failure is None:
            try:
                with torch._functorch.config.patch(force_non_lazy_backward_lowering=True):
                    return self.compiled(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as err:
                self.compiler.fail(err)
        return self.eager(*args, **kwargs)
