"""DDP with 2 CPU processes vs 1 process on a compute-bound model, same global batch, side by
side in one run (alternating), through the real `trainbench run` and its elastic launcher.

Throughput comes from the wall-clock stamps of the stored train/loss points (one per step),
after a warm-up, so process start and rendezvous are not counted; they are reported apart as
time to the first step. One process uses every core (torch's default threads); each DDP process
gets cores / 2 threads (the launcher sets OMP_NUM_THREADS), so both use the whole CPU.

    python tests/benchmarks/bench_ddp.py [--repeats 2] [--steps 60]

Run it on an otherwise idle machine: it prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.store import RunStore  # noqa: E402

WIDTH, FEATURES, CLASSES, GLOBAL_BATCH, WARMUP = 1024, 256, 10, 256, 10


def spec(steps: int) -> dict:
    """A 3×1024 MLP on synthetic data: ~4.7 MFLOPs per sample forward, 2.4 M parameters."""
    nodes = [{"id": "x", "op": "Input", "params": {"shape": [FEATURES]}}]
    edges, prev = [], "x"
    for i in range(3):
        nodes += [
            {"id": f"fc{i}", "op": "Linear", "params": {"out_features": WIDTH}},
            {"id": f"act{i}", "op": "ReLU", "params": {}},
        ]
        edges += [{"from": prev, "to": f"fc{i}", "port": 0}, {"from": f"fc{i}", "to": f"act{i}", "port": 0}]
        prev = f"act{i}"
    nodes.append({"id": "head", "op": "Linear", "params": {"out_features": CLASSES}})
    edges.append({"from": prev, "to": "head", "port": 0})
    return {
        "name": "bench-ddp",
        "model": {
            "format": "trainbench.graph",
            "version": 1,
            "nodes": nodes,
            "edges": edges,
            "output": "head",
        },
        "data": {
            "source": "synthetic_classification",
            "samples": 20000,
            "features": FEATURES,
            "classes": CLASSES,
        },
        "optim": {"name": "sgd", "lr": 0.01},
        "train": {"max_steps": steps, "eval_every": 100000, "eval_batch_size": 2048},
        "checkpoint": {"every": 100000},
        "hardware": {"device": "cpu"},
    }


def run_once(db: Path, spec_file: Path, processes: int, threads: int | None = None) -> dict:
    sets = [f"train.batch_size={GLOBAL_BATCH // processes}"]
    if processes > 1:
        sets.append(f"hardware.nproc_per_node={processes}")
    argv = [sys.executable, "-m", "engine.cli", "--db", str(db), "run", str(spec_file), "--quiet"]
    argv += [x for s in sets for x in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.time()
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    store = RunStore(db)
    run = store.list_runs(limit=1)[0]
    steps, _, walls = store.series(run["id"], "train/loss")
    per_step = (walls[-1] - walls[WARMUP]) / (steps[-1] - steps[WARMUP])
    return {
        "samples_per_s": GLOBAL_BATCH / per_step,
        "first_step_s": walls[0] - t0,
        "total_s": time.time() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average before {os.getloadavg()}")
    # (label, processes, threads per process; None: torch's default, every core)
    cases = [("1 process, all cores", 1, None), ("1 process, 1 thread", 1, 1), ("DDP, 2 processes", 2, None)]
    results: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "bench.json"
        spec_file.write_text(json.dumps(spec(args.steps)))
        for _ in range(args.repeats):
            for label, processes, threads in cases:
                results[label].append(run_once(Path(tmp) / "runs.db", spec_file, processes, threads))
    rate = {label: statistics.median(r["samples_per_s"] for r in rows) for label, rows in results.items()}
    for label, rows in results.items():
        first = statistics.median(r["first_step_s"] for r in rows)
        print(
            f"{label:22} {rate[label]:8.0f} samples/s (median of {len(rows)}), first step after {first:.1f} s"
        )
    ddp = rate["DDP, 2 processes"]
    print(f"throughput ratio DDP(2) / single process (all cores): {ddp / rate['1 process, all cores']:.2f}")
    print(f"throughput ratio DDP(2) / single process (1 thread):  {ddp / rate['1 process, 1 thread']:.2f}")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
