"""What a model costs and what it gets right: parameters, FLOPs, bytes, CPU latency,
validation loss and accuracy, measured the same way for a parent and its smaller child so
the two compare line by line (`trainbench compare PARENT CHILD` prints them).

Latency is measured on the CPU for every model in one interleaved loop (A, B, A, B, ...) on
the same batch, after a warm-up, as the median of repeated timings under
`torch.inference_mode`: a load spike from another process then hits both models alike
instead of skewing whichever happened to be measured during it. It runs on one thread, so
the figure depends on the model rather than on how many cores other processes leave free
(two threads on two busy cores measured up to 3× slower, and far noisier, here).
"""

from __future__ import annotations

import copy
import io
import statistics
import time
import warnings
from contextlib import nullcontext

import torch
from torch import nn

from engine.data import Dataset
from engine.graph.shapes import Analysis
from engine.tasks.objectives import Objective

LATENCY_BATCH = 256  # validation samples per timed forward (fewer when the split is smaller)
LATENCY_THREADS = 1
WARMUP = 5
REPEATS = 30
EVAL_BATCH = 512


def weights_bytes(model: nn.Module) -> int:
    """Size of the model's state dict as `torch.save` writes it: the checkpoint's model part."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, non-zero parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def latency_ms(
    models: list[nn.Module],
    x: torch.Tensor,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
    threads: int | None = LATENCY_THREADS,
) -> list[float]:
    """Median milliseconds per forward of `x` for each model, timed interleaved on `threads`
    threads (None: as many as torch uses now)."""
    times: list[list[float]] = [[] for _ in models]
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                for model, record in zip(models, times, strict=True):
                    start = time.perf_counter()
                    model(x)
                    if i >= warmup:
                        record.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(before)
    return [statistics.median(t) for t in times]


def quantize_int8(model: nn.Module) -> nn.Module:
    """Post-training dynamic int8 quantization of the Linear and LSTM layers (CPU only):
    weights stored as int8, activations quantized on the fly per batch. torch marks
    `torch.ao.quantization` and its quantized tensors deprecated in favour of torchao (not a
    dependency here); they still work in this torch, and the warnings say nothing a user of
    the run can act on, so they are silenced here only."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated", category=UserWarning)
        warnings.filterwarnings(
            "ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning
        )
        return quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear, nn.LSTM}, dtype=torch.qint8)


def compare(models: dict[str, tuple[nn.Module, Analysis]], data: Dataset, objective: Objective) -> dict:
    """Footprints of several models (e.g. before, after, quantized), measured together.

    Returns {name: {params, nonzero_params, flops, bytes, latency_ms, val/loss, val/...}}
    plus a `latency` entry saying how latency was measured.
    """
    cpu = {name: (copy.deepcopy(m).cpu().eval(), a) for name, (m, a) in models.items()}
    x_val, y_val = torch.as_tensor(data.x_val), torch.as_tensor(data.y_val)
    batch = x_val[:LATENCY_BATCH]
    timings = latency_ms([m for m, _ in cpu.values()], batch)
    out: dict = {}
    for (name, (model, analysis)), ms in zip(cpu.items(), timings, strict=True):
        total, nonzero = count_params(model)
        metrics = objective.evaluate(model, x_val, y_val, EVAL_BATCH, nullcontext)
        out[name] = {
            "params": analysis.total_params,
            "nonzero_params": nonzero if total == analysis.total_params else None,
            "flops": analysis.total_flops,
            "bytes": weights_bytes(model),
            "latency_ms": ms,
            **metrics,
        }
    out["latency"] = {
        "device": "cpu",
        "batch": len(batch),
        "threads": LATENCY_THREADS,
        "repeats": REPEATS,
        "statistic": "median",
    }
    return out
