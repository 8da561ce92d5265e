"""What this machine offers a run: CPU, memory, CUDA GPUs, Apple MPS, and the library
versions that matter for correctness (SQLite's, in particular)."""

from __future__ import annotations

import os
import platform
import sqlite3

# SQLite before 3.51.3 has a rare WAL-reset race that can corrupt a database written by
# concurrent writers and checkpointers; we report it so users know to upgrade.
SQLITE_WAL_FIX = (3, 51, 3)


def cpu_info() -> dict:
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "kind": "cpu",
        "name": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_bytes": mem,
    }


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
            }
        )
    return out


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


def report() -> dict:
    import torch

    version = tuple(int(p) for p in sqlite3.sqlite_version.split("."))
    return {
        "cpu": cpu_info(),
        "cuda": cuda_devices(),
        "mps": mps_available(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlite_wal_race_fixed": version >= SQLITE_WAL_FIX,
    }
