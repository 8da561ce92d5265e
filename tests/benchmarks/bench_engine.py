"""Engine overhead: `trainbench`'s training loop vs a plain hand-written PyTorch loop on the same
model, data, batch size and optimizer, side by side in one process, alternating, on CPU.

The engine's time per step comes from the wall-clock stamps of its stored train/loss points
(one per step: metrics are logged every step), not from its own throughput metric. Start-up
(process start → first step, and to the end of a digits-CNN run) is reported separately.

    python tests/benchmarks/bench_engine.py [--repeats 3]

Run it on an otherwise idle machine: on 2 cores one concurrent job doubles step times.
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

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.data import load_dataset  # noqa: E402
from engine.graph import Graph  # noqa: E402
from engine.graph.build import build  # noqa: E402
from engine.optim import make_optimizer, make_scheduler  # noqa: E402
from engine.runner import execute  # noqa: E402
from engine.spec import load_spec  # noqa: E402
from engine.store import RunStore  # noqa: E402
from engine.tasks.objectives import Objective  # noqa: E402

CASES = {
    "digits-cnn (batch 64)": ("digits_cnn.json", {"batch_size": 64}, 300),
    "digits-mlp (batch 64)": ("digits_mlp.json", {"batch_size": 64}, 600),
    "char-gpt (batch 32, 64 tokens)": ("char_gpt.json", {"batch_size": 32}, 40),
}


def plain_loop(spec: dict, steps: int) -> float:
    """Seconds per step of the loop a user would write by hand."""
    torch.manual_seed(0)
    data = load_dataset(spec["data"])
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    model = build(Graph.from_dict(spec["model"]))
    opt = make_optimizer(model, spec["optim"])
    sched = make_scheduler(opt, spec["schedule"], steps + 5)  # the spec's schedule, as the engine runs it
    objective = Objective(data.objective)
    bs = spec["train"]["batch_size"]
    model.train()
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    per_epoch = len(x) // bs
    t0 = None
    for step in range(steps + 5):
        if step == 5:
            t0 = time.perf_counter()  # five warm-up steps, as the engine's first stamps also follow some
        i = step % per_epoch
        if i == 0:
            perm = torch.randperm(len(x), generator=g)
        idx = perm[i * bs : (i + 1) * bs]
        loss = objective.loss(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss.item()  # a hand-written loop prints or logs its loss too
    return (time.perf_counter() - t0) / steps


def engine_loop(spec: dict, steps: int, db: Path) -> float:
    spec = json.loads(json.dumps(spec))
    spec["train"].update(max_steps=steps + 5, eval_every=10**6)
    spec["checkpoint"]["every"] = 10**6
    rid, status = execute(db, spec)
    assert status == "completed", RunStore(db).get_run(rid)["error"]
    steps_arr, _, walls = RunStore(db).series(rid, "train/loss")
    return (walls[-1] - walls[5]) / (steps_arr[-1] - steps_arr[5])


def startup(db: Path) -> dict:
    env = {**os.environ, "TRAINBENCH_DB": str(db), "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "run",
            str(ROOT / "resources/examples/digits_cnn.json"),
            "--events",
            "-",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    first_step = None
    for line in proc.stdout:
        ev = json.loads(line) if line.startswith("{") else {}
        if ev.get("event") == "metrics" and first_step is None:
            first_step = ev["points"]["train/loss"][2][0] - t0
    proc.wait()
    total = time.time() - t0
    t1 = time.time()
    code = "import torch, sklearn.datasets; print(1)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return {"to_first_step_s": first_step, "digits_cnn_total_s": total, "bare_imports_s": time.time() - t1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )
    tmp = Path(tempfile.mkdtemp())
    print(f"{'model':34} {'plain ms/step':>14} {'engine ms/step':>15} {'engine/plain throughput':>24}")
    for name, (file, train, steps) in CASES.items():
        spec = load_spec(ROOT / "resources/examples" / file)
        spec["train"].update(train)
        plain, eng = [], []
        for r in range(args.repeats):  # alternate, so drift in machine speed hits both sides
            plain.append(plain_loop(spec, steps))
            eng.append(engine_loop(spec, steps, tmp / f"bench-{r}.db"))
        p, e = statistics.median(plain), statistics.median(eng)
        print(f"{name:34} {p * 1e3:14.2f} {e * 1e3:15.2f} {p / e:24.3f}")
    s = startup(tmp / "startup.db")
    print(
        f"start-up: process start → first training step {s['to_first_step_s']:.2f} s; whole digits-CNN run "
        f"(to ~98%) {s['digits_cnn_total_s']:.2f} s; bare `import torch, sklearn.datasets` {s['bare_imports_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
