"""What this machine offers a run: CPU, memory, CUDA GPUs, Apple MPS, and the library
versions that matter for correctness (SQLite's, in particular); and the resource samplers a
run's recorder calls every few seconds (process memory, GPU utilization and memory).

GPU utilization needs NVML (`pip install nvidia-ml-py`, imported as `pynvml`); without it,
memory comes from torch's allocator (this process's tensors only) and utilization is absent.
"""

from __future__ import annotations

import os
import platform
import sqlite3

# SQLite before 3.51.3 has a rare WAL-reset race that can corrupt a database written by
# concurrent writers and checkpointers; we report it so users know to upgrade.
SQLITE_WAL_FIX = (3, 51, 3)


def cpu_info() -> dict:
    mem = _meminfo()
    return {
        "kind": "cpu",
        "name": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_bytes": mem.get("MemTotal"),
        "available_bytes": mem.get("MemAvailable"),
    }


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def cuda_devices() -> list[dict]:
    import torch

    out = []
    if not torch.cuda.is_available():
        return out
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        out.append(
            {
                "kind": "cuda",
                "index": i,
                "name": props.name,
                "total_bytes": total,
                "free_bytes": free,
                "capability": f"{props.major}.{props.minor}",
                **nvml_sample(i),
            }
        )
    return out


def _nvml():
    """The initialised `pynvml` module, or None when NVML (nvidia-ml-py) is absent."""
    global _NVML
    if _NVML is None:
        try:
            import pynvml

            pynvml.nvmlInit()
            _NVML = pynvml
        except Exception:  # noqa: BLE001 - not installed, no driver: both mean "no NVML"
            _NVML = False
    return _NVML or None


_NVML = None


def nvml_sample(index: int) -> dict:
    """Live utilization (%) and memory in use (whole device, every process) of physical GPU
    `index`, through NVML; {} without it. NVML numbers GPUs physically, ignoring
    CUDA_VISIBLE_DEVICES."""
    nv = _nvml()
    if nv is None:
        return {}
    try:
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        util = nv.nvmlDeviceGetUtilizationRates(handle)
        mem = nv.nvmlDeviceGetMemoryInfo(handle)
    except Exception:  # noqa: BLE001 - a GPU that went away mid-run: skip the sample
        return {}
    return {"utilization_pct": float(util.gpu), "used_bytes": int(mem.used)}


def mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def process_rss_mb() -> dict[str, float]:
    """Resident memory of this process, sampled as a metric on CPU runs."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return {"sys/rss_mb": int(line.split()[1]) / 1024}
    except OSError:
        pass
    return {}


def gpu_sampler(physical: list[int], own: tuple[int, int]):
    """A sampler of the given physical GPUs: `sys/gpu{i}_util` and `sys/gpu{i}_mem_mb` from
    NVML (whole device, every process). Without NVML, `sys/gpu{i}_mem_mb` of this process's own
    GPU from torch's allocator; `own` is that GPU as (torch index, physical index), since the
    recorder thread has no current device of its own. (The allocator's peak is the training
    loop's, per throughput window: `AllocatorWindow`.)"""
    import torch

    def sample() -> dict[str, float]:
        out: dict[str, float] = {}
        for i in physical:
            s = nvml_sample(i)
            if s:
                out[f"sys/gpu{i}_util"] = s["utilization_pct"]
                out[f"sys/gpu{i}_mem_mb"] = s["used_bytes"] / 2**20
        if not out and torch.cuda.is_initialized():
            index, name = own
            out[f"sys/gpu{name}_mem_mb"] = torch.cuda.memory_allocated(index) / 2**20
        return out

    return sample


class AllocatorWindow:
    """This process's CUDA allocator over one throughput window of the training loop:
    `perf/gpu_mem_allocated_mb` and `perf/gpu_mem_reserved_mb` as the window ends, and
    `perf/gpu_mem_peak_mb`, the most allocated at once during it (the peak statistic is reset
    after each read, so a spike shows in its own window). Reserved includes the allocator's
    cached blocks: what the other processes on the GPU cannot have."""

    def __init__(self, device):
        self.device = device

    def sample(self) -> dict[str, float]:
        import torch

        mb, d = 2**20, self.device
        out = {
            "perf/gpu_mem_allocated_mb": torch.cuda.memory_allocated(d) / mb,
            "perf/gpu_mem_reserved_mb": torch.cuda.memory_reserved(d) / mb,
            "perf/gpu_mem_peak_mb": torch.cuda.max_memory_allocated(d) / mb,
        }
        torch.cuda.reset_peak_memory_stats(d)
        return out


def resource_samplers(plan) -> list:
    """What a run's recorder samples every few seconds: this process's resident memory, and on
    CUDA the GPUs of this machine that the run uses (`plan` is a `WorldPlan`)."""
    samplers = [process_rss_mb]
    if plan.device_type == "cuda":
        import torch

        gpus = list(plan.gpus) if plan.gpus else list(range(torch.cuda.device_count()))
        gpus = gpus[: plan.nproc_per_node]
        if plan.launched:  # CUDA_VISIBLE_DEVICES holds the selected GPUs; ours is our local rank's
            local = int(os.environ.get("LOCAL_RANK", "0"))
            own = (local, gpus[local])
        else:
            own = (gpus[0], gpus[0])
        samplers.append(gpu_sampler(gpus, own))
    return samplers


def report() -> dict:
    import torch

    version = tuple(int(p) for p in sqlite3.sqlite_version.split("."))
    return {
        "cpu": cpu_info(),
        "cuda": cuda_devices(),
        "mps": mps_available(),
        "nvml": _nvml() is not None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlite_wal_race_fixed": version >= SQLITE_WAL_FIX,
    }
