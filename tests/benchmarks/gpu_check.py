"""The GPT templates on a GPU: tokens/s, MFU and peak memory against the estimate, for real
`trainbench run`s in bf16, compiled or not, with activation checkpointing or not; and
Trainbench's throughput against the plain torchrun loop of the same model and settings
(`torchrun_gpt.py`; the target is a ratio of at least 0.98).

    python tests/benchmarks/gpu_check.py [--out DIR] [--steps 80] [--all] [--only gpt2_small]

Without --all it measures the cases that answer the questions in a few minutes of GPU time
(each compiled case compiles afresh, about a minute for the 1.2B model). Each case's figures go
to DIR/gpu_check.jsonl as soon as it ends, so a run cut short keeps what it measured; the table
is printed at the end. `gpu_check.sh` runs the `cuda` tests first, then this.

tokens/s and MFU are the medians of the run's throughput windows after the first (which holds
CUDA's start and the compile); peak memory is the largest `perf/gpu_mem_peak_mb` window, against
`trainbench validate`'s estimate for one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.data import describe  # noqa: E402
from engine.memory import DevicePlan, estimate_memory  # noqa: E402
from engine.spec import validate_spec  # noqa: E402
from engine.store import RunStore  # noqa: E402

TEMPLATES = ROOT / "resources" / "templates"
# name: (context, batch per GPU)
MODELS = {"gpt2_small": (1024, 16), "gpt_1b": (2048, 8)}
# (compile, activation checkpointing) per model without --all: enough to see each effect once
QUICK = {
    "gpt2_small": [("off", False), ("default", False)],
    "gpt_1b": [("off", True), ("default", True), ("off", False)],
}
ALL = [(c, a) for c in ("off", "default") for a in (False, True)]


def model_file(name: str, folder: Path) -> Path:
    """The template with the byte corpus's vocabulary (256: the only text source on main reads
    bytes; a GPT-2 tokenizer's 50,257 waits for a tokenized source), or GPT-2 small's shape
    (12 × 768, 12 heads, context 1024) until its template is there."""
    from tests.engine.test_memory_calibration import gpt

    path = TEMPLATES / f"{name}.json"
    doc = json.loads(path.read_text()) if path.is_file() else gpt(256, 1024, 12, 768, 12)
    for node in doc["nodes"]:
        if node["op"] == "Embedding":
            node["params"]["num_embeddings"] = 256
        elif node["id"] == doc["output"] and node["op"] == "Linear":
            node["params"]["out_features"] = 256
    out = folder / f"{name}.json"
    out.write_text(json.dumps(doc))
    return out


def corpus(folder: Path, n_bytes: int) -> Path:
    """Seeded random letters: the loss does not matter here, the shapes and the steps do."""
    path = folder / "corpus.txt"
    if not path.is_file() or path.stat().st_size < n_bytes:
        letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ,.\n", dtype=np.uint8)
        path.write_bytes(np.random.default_rng(0).choice(letters, n_bytes).tobytes())
    return path


def spec(name: str, compile_: str, checkpointing: bool, steps: int, folder: Path) -> dict:
    context, batch = MODELS[name]
    text = corpus(folder, int(steps * batch * context * 1.25 / 0.9) + 4 * context)
    return validate_spec(
        {
            "schema": 1,
            "name": f"{name}-{compile_}{'-ac' if checkpointing else ''}",
            "model": str(model_file(name, folder)),
            "data": {"source": "text", "path": str(text), "context": context, "val_fraction": 0.1},
            "optim": {"name": "adamw", "lr": 3e-4, "weight_decay": 0.1, "grad_clip": 1.0},
            "schedule": {"name": "cosine", "warmup_steps": 10},
            "train": {
                "max_steps": steps,
                "batch_size": batch,
                "eval_batch_size": batch,  # 512 windows of 50,257 logits would not fit
                "eval_every": 10 * steps,
                "precision": "bf16",
                "compile": compile_,
            },
            "hardware": {
                "device": "cuda",
                "activation_checkpointing": checkpointing,
                "matmul_precision": "high",
            },
        },
        base_dir=folder,
    )


def trainbench_case(run_spec: dict, folder: Path) -> dict:
    """One real `trainbench run`; the figures from its store."""
    db = folder / "runs.db"
    path = folder / "case.json"
    path.write_text(json.dumps(run_spec))
    env = {**os.environ, "TRAINBENCH_DB": str(db), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(path), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=1800,
    )
    wall = time.perf_counter() - started
    store = RunStore(db)
    runs = store.list_runs()
    if out.returncode != 0 or not runs or runs[0]["status"] != "completed":
        return {"error": (out.stderr or out.stdout)[-1500:]}
    rid = runs[0]["id"]
    log = (store.artifacts_dir(rid) / "run.log").read_text()

    def windows(key: str) -> list[float]:
        return [float(v) for v in store.series(rid, key)[1]]

    tokens, mfu, peak = windows("perf/tokens_per_s"), windows("perf/mfu"), windows("perf/gpu_mem_peak_mb")
    context, batch = run_spec["data"]["context"], run_spec["train"]["batch_size"]
    plan = DevicePlan("cuda", "single", 1, 1, (0,))
    est = estimate_memory(run_spec, data=describe(run_spec["data"]), plan=plan)
    result = {
        "tokens_per_s": statistics.median(tokens[1:] or tokens),
        "mfu": statistics.median(mfu[1:] or mfu) if mfu else None,
        "peak_mib": max(peak) if peak else None,
        "estimate_mib": est.peak / 2**20,
        "windows": len(tokens),
        "wall_s": round(wall, 1),
        "compile_failed": "torch.compile failed" in log,
        "tokens_per_step": context * batch,
    }
    if result["peak_mib"]:
        result["estimate_error"] = result["estimate_mib"] / result["peak_mib"] - 1
    return result


def torchrun_case(run_spec: dict, model: Path, steps: int) -> dict:
    """The plain loop of the same model and settings, under torchrun."""
    context, batch = run_spec["data"]["context"], run_spec["train"]["batch_size"]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
        str(ROOT / "tests" / "benchmarks" / "torchrun_gpt.py"),
        "--model", str(model),
        "--context", str(context), "--batch", str(batch), "--steps", str(steps), "--warmup", "16",
    ]  # fmt: skip
    if run_spec["train"]["compile"] != "off":
        cmd.append("--compile")
    if run_spec["hardware"]["activation_checkpointing"]:
        cmd.append("--checkpointing")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if out.returncode == 0 and lines else {"error": out.stderr[-1500:]}


def num(row: dict, key: str, spec_: str = ".0f") -> str:
    v = row.get(key)
    return format(v, spec_) if v is not None else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp")) / "gpu_check")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--all", action="store_true", help="every model × compiled or not × checkpointing or not")
    ap.add_argument("--only", choices=sorted(MODELS), action="append", help="one model (repeatable)")
    ap.add_argument("--no-torchrun", action="store_true", help="skip the plain-loop comparison")
    args = ap.parse_args()

    import torch

    gpu = torch.cuda.get_device_name(0)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "gpu_check.jsonl"
    print(f"{gpu}; torch {torch.__version__}; figures to {results}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    rows = []
    try:
        for name in args.only or MODELS:
            for compile_, checkpointing in ALL if args.all else QUICK[name]:
                case = work / f"{name}-{compile_}-{int(checkpointing)}"
                case.mkdir()
                run_spec = spec(name, compile_, checkpointing, args.steps, work)
                row = {"gpu": gpu, "model": name, "compile": compile_, "checkpointing": checkpointing}
                row |= trainbench_case(run_spec, case)
                if not args.no_torchrun and "error" not in row:
                    plain = torchrun_case(run_spec, model_file(name, work), args.steps)
                    row["torchrun_tokens_per_s"] = plain.get("tokens_per_s")
                    row["torchrun_peak_mib"] = plain.get("peak_allocated_mib")
                    if plain.get("tokens_per_s"):
                        row["vs_torchrun"] = row["tokens_per_s"] / plain["tokens_per_s"]
                    if "error" in plain:
                        row["torchrun_error"] = plain["error"]
                shutil.rmtree(case, ignore_errors=True)  # a 1.2B run's checkpoint is ~14 GB
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{gpu}")
    print(
        f"{'case':<28}{'tokens/s':>11}{'MFU':>7}{'peak MiB':>10}{'estimate':>10}{'error':>8}{'vs torchrun':>13}"
    )
    for r in rows:
        label = f"{r['model']} {r['compile']}{' AC' if r['checkpointing'] else ''}"
        if "error" in r:
            print(f"{label:<28} failed: {r['error'].splitlines()[-1] if r['error'] else '?'}")
            continue
        print(
            f"{label:<28}{num(r, 'tokens_per_s'):>11}{num(r, 'mfu', '.1%'):>7}{num(r, 'peak_mib'):>10}"
            f"{num(r, 'estimate_mib'):>10}{num(r, 'estimate_error', '+.0%'):>8}{num(r, 'vs_torchrun', '.3f'):>13}"
        )


if __name__ == "__main__":
    main()
