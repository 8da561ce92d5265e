"""Model FLOPs utilisation (MFU): the share of the devices' peak arithmetic that training
achieves, logged live as `perf/mfu` beside the throughput.

    MFU = training FLOPs per sample × samples/s ÷ (peak FLOP/s of one device × processes)

Training FLOPs are 3 × the forward FLOPs of the torch-free analysis: the backward computes two
products for each one of the forward (PaLM, appendix B: 6·N per token = 3 × 2·N). The analysis
counts causal attention as causal, T(T+1)/2 query-key pairs rather than T², which is PaLM's
6·N + 12·L·H·Q·T with its attention term scaled by (T+1)/2T, as Megatron-LM and MaxText count
it; PaLM's own formula counts all T² pairs (`palm_flops_per_token` computes both). These are
model FLOPs: recomputation under activation checkpointing is not counted, so checkpointing
lowers MFU, as it should.

The peak is the device's dense (no sparsity) figure at the precision the matrix products run
in: bf16 or fp16 under autocast, TF32 for fp32 when `hardware.matmul_precision` allows it on
Ampere or newer, else fp32. GPUs come from NVIDIA's datasheets and architecture whitepapers
(GeForce cards with FP32 accumulation, as training uses); a CPU's is measured once per machine,
thread count and precision by a short matmul probe and cached, and its MFU reads "vs measured
peak". `hardware.peak_tflops` overrides both.

Importing this module does not import torch (the GUI labels MFU with `peak_source`).
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

from engine.graph.shapes import Analysis

#: forward + backward per forward (PaLM appendix B)
TRAIN_FACTOR = 3

# (pattern in torch's device name, label, dense TFLOP/s by precision). First match wins, so a
# variant comes before its family. Laptop GPUs are left out: their clocks vary too widely.
GPU_PEAKS: tuple[tuple[str, str, dict[str, float]], ...] = (
    (r"\bgh200\b", "GH200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (r"\bh200\b.*\bnvl\b", "H200 NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    (r"\bh200\b", "H200 SXM", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (r"\bh100\b.*\bnvl\b", "H100 NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    (r"\bh100\b.*\bpcie\b", "H100 PCIe", {"bf16": 756.5, "fp16": 756.5, "tf32": 378.0, "fp32": 51.2}),
    (r"\bh100\b", "H100 SXM", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (r"\ba100\b", "A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    (r"\bl40s\b", "L40S", {"bf16": 362.1, "fp16": 362.1, "tf32": 183.0, "fp32": 91.6}),
    (r"\bl4\b", "L4", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    (r"\ba10\b", "A10", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    (r"\brtx 5090\b", "RTX 5090", {"bf16": 209.5, "fp16": 209.5, "tf32": 104.8, "fp32": 104.8}),
    (r"\brtx 5080\b", "RTX 5080", {"bf16": 112.6, "fp16": 112.6, "tf32": 56.3, "fp32": 56.3}),
    (r"\brtx 5070 ti\b", "RTX 5070 Ti", {"bf16": 87.9, "fp16": 87.9, "tf32": 43.9, "fp32": 43.9}),
    (r"\brtx 5070\b", "RTX 5070", {"bf16": 61.7, "fp16": 61.7, "tf32": 30.9, "fp32": 30.9}),
    (r"\brtx 4090\b", "RTX 4090", {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    (r"\brtx 4080\b", "RTX 4080", {"bf16": 97.5, "fp16": 97.5, "tf32": 48.7, "fp32": 48.7}),
    (r"\brtx 4070 ti\b", "RTX 4070 Ti", {"bf16": 80.2, "fp16": 80.2, "tf32": 40.1, "fp32": 40.1}),
    (r"\brtx 4070\b", "RTX 4070", {"bf16": 58.3, "fp16": 58.3, "tf32": 29.1, "fp32": 29.1}),
    (r"\brtx 3090 ti\b", "RTX 3090 Ti", {"bf16": 80.0, "fp16": 80.0, "tf32": 40.0, "fp32": 40.0}),
    (r"\brtx 3090\b", "RTX 3090", {"bf16": 71.0, "fp16": 71.0, "tf32": 35.6, "fp32": 35.6}),
    (r"\brtx 3080 ti\b", "RTX 3080 Ti", {"bf16": 68.2, "fp16": 68.2, "tf32": 34.1, "fp32": 34.1}),
    (r"\brtx 3080\b", "RTX 3080", {"bf16": 59.5, "fp16": 59.5, "tf32": 29.8, "fp32": 29.8}),
    (r"\brtx 3070\b", "RTX 3070", {"bf16": 40.6, "fp16": 40.6, "tf32": 20.3, "fp32": 20.3}),
    (r"\brtx 3060\b", "RTX 3060", {"bf16": 25.6, "fp16": 25.6, "tf32": 12.7, "fp32": 12.7}),
    (r"\bv100\b", "V100", {"fp16": 125.0, "fp32": 15.7}),
    (r"\bt4\b", "T4", {"fp16": 65.0, "fp32": 8.1}),
)

#: how the monitor and the compare table label an MFU, by where its peak came from
SOURCE_LABELS = {
    "measured": "vs measured peak",
    "table": "vs datasheet peak",
    "spec": "vs hardware.peak_tflops",
}

# The probe multiplies square matrices of PROBE_SIZE on one core (a CPU's GEMM is at its best
# from ~512 on) for PROBE_S seconds and keeps the fastest product: on a busy machine a slow one
# met its core taken by another process, and the fastest is the core's own speed.
PROBE_SIZE = 512
PROBE_S = 0.2


def train_flops_per_sample(analysis: Analysis) -> int:
    """Model FLOPs of one training sample: 3 × the analysis's forward FLOPs."""
    return TRAIN_FACTOR * analysis.total_flops


def palm_flops_per_token(
    params: int, layers: int, heads: int, head_dim: int, context: int, causal: bool = False
) -> float:
    """PaLM's training FLOPs per token, 6·N + 12·L·H·Q·T (appendix B), with N the parameters
    taking part in matrix products (a tied embedding counted once). `causal` counts the
    attention of T(T+1)/2 pairs, as the analysis does, instead of PaLM's T²."""
    attention = 12 * layers * heads * head_dim * context
    return 6 * params + (attention * (context + 1) / (2 * context) if causal else attention)


def matmul_dtype(precision: str, matmul_precision: str, tf32_capable: bool) -> str:
    """What a run's matrix products compute in: bf16/fp16 under autocast; fp32 ones in TF32
    when `hardware.matmul_precision` lets them on a GPU that has it (Ampere and newer)."""
    if precision in ("bf16", "fp16"):
        return precision
    return "tf32" if tf32_capable and matmul_precision != "highest" else "fp32"


def gpu_peak(name: str, dtype: str) -> tuple[str, float] | None:
    """(label, dense TFLOP/s) of the GPU torch calls `name`, at `dtype`; None when not listed."""
    lowered = name.lower()
    if "laptop" in lowered or "mobile" in lowered:
        return None
    for pattern, label, peaks in GPU_PEAKS:
        if re.search(pattern, lowered):
            return (label, peaks[dtype]) if dtype in peaks else None
    return None


def peak_source(spec: dict) -> str:
    """Where a run's peak comes from ("spec", "measured" on a CPU, "table"), told without torch
    when the machine can be (the GUI's MFU label); "table" when only torch knows the device."""
    if spec["hardware"].get("peak_tflops"):
        return "spec"
    from engine.errors import SpecError
    from engine.memory import device_plan

    try:
        plan = device_plan(spec)
    except SpecError:
        return "table"
    return "measured" if plan is not None and plan.device_type == "cpu" else "table"


@dataclass(frozen=True)
class Peak:
    """One device's peak FLOP/s, where it came from and a few words for the run log."""

    flops: float
    source: str  # spec | table | measured
    what: str

    @property
    def label(self) -> str:
        return SOURCE_LABELS[self.source]


def device_peak(spec: dict, device) -> Peak | None:
    """The peak of one `device` (a torch.device) for `spec`'s precision; None when unknown
    (a GPU missing from the table, Apple MPS): then no MFU is logged."""
    import torch

    hw, precision = spec["hardware"], spec["train"]["precision"]
    if hw.get("peak_tflops"):
        return Peak(hw["peak_tflops"] * 1e12, "spec", f"{hw['peak_tflops']:g} TFLOP/s (hardware.peak_tflops)")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        tf32 = torch.cuda.get_device_capability(device) >= (8, 0)
        dtype = matmul_dtype(precision, hw["matmul_precision"], tf32)
        found = gpu_peak(name, dtype)
        if found is None:
            return None
        label, tflops = found
        return Peak(tflops * 1e12, "table", f"{tflops:g} TFLOP/s ({label}, {dtype}, dense)")
    if device.type == "cpu":
        dtype = "bf16" if precision == "bf16" else "fp32"
        threads = torch.get_num_threads()
        flops = cpu_peak(dtype, threads, hw["matmul_precision"])
        return Peak(
            flops, "measured", f"{flops / 1e12:.3g} TFLOP/s measured on this CPU ({dtype}, {threads} threads)"
        )
    return None


def cpu_peak(dtype: str, threads: int, matmul_precision: str = "highest") -> float:
    """FLOP/s of this CPU's best matrix products at `dtype` on `threads` cores: one core's,
    measured once (~0.2 s) and cached per machine, times the threads, as a datasheet counts
    cores. One core, because on a busy machine a multi-threaded product waits for its slowest
    thread (two threads measured 16 GFLOP/s beside another job, one thread 117 either way)."""
    key = "|".join((_cpu_name(), str(os.cpu_count()), _torch_version(), dtype, matmul_precision))
    if key not in _PEAKS:
        path = _cache_path()
        cached = _read_cache(path)
        if key not in cached:
            cached[key] = _probe(dtype)
            _write_cache(path, cached)
        _PEAKS[key] = cached[key]
    return threads * _PEAKS[key]


_PEAKS: dict[str, float] = {}  # per core, by cache key


def _probe(dtype: str) -> float:
    """One core's FLOP/s: the fastest of the products computed for PROBE_S seconds."""
    import torch

    kind = torch.bfloat16 if dtype == "bf16" else torch.float32
    g = torch.Generator().manual_seed(0)
    a = torch.randn(PROBE_SIZE, PROBE_SIZE, generator=g).to(kind)
    b = torch.randn(PROBE_SIZE, PROBE_SIZE, generator=g).to(kind)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a @ b  # warm-up: the first product pays for the library's set-up
        best, until = float("inf"), time.perf_counter() + PROBE_S
        while time.perf_counter() < until:
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return 2 * PROBE_SIZE**3 / best


def _cache_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("trainbench", appauthor=False)) / "cpu_peak.json"


def _read_cache(path: Path) -> dict[str, float]:
    """The cached probes; a missing, unreadable or foreign file is an empty cache (measured anew)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: float(v) for k, v in doc.items() if isinstance(v, int | float) and v > 0}


def _write_cache(path: Path, doc: dict[str, float]) -> None:
    """Atomically, and never failing the run: a read-only home just probes again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_version() -> str:
    import torch

    return torch.__version__


class Utilization:
    """What each throughput window of the training loop reports beyond samples/s: `perf/mfu`
    (on the recording rank, when the peak is known) and, on CUDA, this process's allocator
    memory (`engine.devices.AllocatorWindow`)."""

    def __init__(self, ctx, analysis: Analysis, device, world_size: int):
        from engine.devices import AllocatorWindow

        spec = ctx.spec
        self.flops_per_sample = train_flops_per_sample(analysis)
        self.world_size = world_size
        self.memory = AllocatorWindow(device) if device.type == "cuda" else None
        self.peak: Peak | None = None
        if ctx.is_main and self.flops_per_sample:
            self.peak = device_peak(spec, device)
            if self.peak is None:
                ctx.log(
                    f"perf/mfu: no peak known for {device} at {spec['train']['precision']}; "
                    "set hardware.peak_tflops to log it",
                    "warning",
                )
            else:
                ctx.log(
                    f"perf/mfu: {TRAIN_FACTOR} × {analysis.total_flops:,} FLOPs per sample "
                    f"against {self.peak.what} per process"
                )
                ctx.update_summary(mfu_peak_tflops=round(self.peak.flops / 1e12, 4), mfu_peak=self.peak.label)
        self._cpu = device.type == "cpu" and self.peak is not None and self.peak.source == "measured"
        self._spec = spec

    def window(self, samples_per_s: float) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.peak is not None:
            peak = self.peak.flops
            if self._cpu:  # the run's share of the cores may have changed since
                import torch

                hw = self._spec["hardware"]
                dtype = "bf16" if self._spec["train"]["precision"] == "bf16" else "fp32"
                peak = cpu_peak(dtype, torch.get_num_threads(), hw["matmul_precision"])
            out["perf/mfu"] = self.flops_per_sample * samples_per_s / (peak * self.world_size)
        if self.memory is not None:
            out |= self.memory.sample()
        return out
