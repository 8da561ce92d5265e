"""What logging costs a plain PyTorch loop: 5 scalars every step through `trainbench`, through
`mlflow.log_metric` and through `torch.utils.tensorboard.SummaryWriter`, against the same loop
logging nothing, on the digits CNN and the char-GPT (CPU), in one process, alternating.

    python tests/benchmarks/bench_tracking.py [--repeats 3]

Two figures per tool: the loop's time per step (median of the repeats; overhead = against the
loop that logs nothing), as wall clock and as this process's CPU time (every thread's, the
recorder's included; other load on the machine inflates the wall clock, not this); and the
time of the logging calls alone (5 scalars, no training), which the ratios compare. torch runs
on one thread (--threads), so the CPU time is the work done, not threads waiting for cores.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
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
from engine.scripts import tracking_import_path  # noqa: E402
from engine.spec import load_spec  # noqa: E402
from engine.tasks.objectives import Objective  # noqa: E402

if tracking_import_path():
    sys.path.insert(0, tracking_import_path())
trainbench = importlib.import_module("trainbench")

CASES = {
    "digits-cnn (batch 64)": ("digits_cnn.json", 64, 300),
    "char-gpt (batch 32 × 64)": ("char_gpt.json", 32, 40),
}
KEYS = ("train/loss", "train/lr", "train/grad_norm", "train/step_ms", "train/epoch")


class Nothing:
    name = "no logging"

    def __call__(self, step: int, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


class Trainbench:
    name = "trainbench"

    def __init__(self, tmp: Path):
        self.run = trainbench.init(name="bench", db=tmp / "bench.db")

    def __call__(self, step: int, values: dict) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class MLflow:
    name = "mlflow.log_metric"

    def __init__(self, tmp: Path):
        import mlflow

        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
        self.mlflow = mlflow
        mlflow.start_run()

    def __call__(self, step: int, values: dict) -> None:
        for k, v in values.items():
            self.mlflow.log_metric(k, v, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class TensorBoard:
    name = "SummaryWriter"

    def __init__(self, tmp: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(tmp / "tb"))

    def __call__(self, step: int, values: dict) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        self.writer.close()


def loop(spec: dict, batch: int, steps: int, log) -> float:
    """Seconds per step of a hand-written loop that computes the 5 values and hands them to `log`."""
    torch.manual_seed(0)
    data = load_dataset(spec["data"], spec["task"]["objective"])
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    model = build(Graph.from_dict(spec["model"]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    objective = Objective(data.objective)
    g = torch.Generator().manual_seed(0)
    per_epoch = len(x) // batch
    perm = torch.randperm(len(x), generator=g)
    t0 = c0 = last = None
    for step in range(steps + 5):
        if step == 5:
            t0, c0 = time.perf_counter(), time.process_time()
        i = step % per_epoch
        if i == 0:
            perm = torch.randperm(len(x), generator=g)
        idx = perm[i * batch : (i + 1) * batch]
        loss = objective.loss(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9)
        opt.step()
        now = time.perf_counter()
        values = {
            "train/loss": loss.item(),
            "train/lr": opt.param_groups[0]["lr"],
            "train/grad_norm": norm.item(),
            "train/step_ms": (now - last) * 1e3 if last else 0.0,
            "train/epoch": step / per_epoch,
        }
        last = now
        log(step, values)
    if hasattr(log, "run"):
        log.run._recorder.flush()  # the points written, inside the timing
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def calls_alone(log, steps: int = 20_000) -> float:
    """Seconds per step of the logging calls alone (5 scalars a step, no training)."""
    values = dict.fromkeys(KEYS, 0.5)
    c0 = time.process_time()
    for step in range(steps):
        log(step, values)
    if hasattr(log, "run"):
        log.run._recorder.flush()
    return (time.process_time() - c0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )
    tools = [Nothing, Trainbench, MLflow, TensorBoard]
    for name, (file, batch, steps) in CASES.items():
        spec = load_spec(ROOT / "resources/examples" / file)
        times = {t.name: [] for t in tools}
        for _ in range(args.repeats):  # alternate, so drift in machine speed hits every tool
            for tool in tools:
                with tempfile.TemporaryDirectory() as tmp:
                    log = tool() if tool is Nothing else tool(Path(tmp))
                    times[tool.name].append(loop(spec, batch, steps, log))
                    log.close()
        wall0 = statistics.median(w for w, _ in times["no logging"])
        cpu0 = statistics.median(c for _, c in times["no logging"])
        print(f"\n{name}: {steps} steps, median of {args.repeats}")
        print(f"  {'tool':20} {'wall ms/step':>13} {'CPU ms/step':>12} {'CPU vs no logging':>18}")
        for tool in tools:
            wall = statistics.median(w for w, _ in times[tool.name])
            cpu = statistics.median(c for _, c in times[tool.name])
            print(f"  {tool.name:20} {wall * 1e3:13.2f} {cpu * 1e3:12.2f} {(cpu / cpu0 - 1) * 100:+17.2f} %")
        print(
            f"  (wall clock: trainbench {(statistics.median(w for w, _ in times['trainbench']) / wall0 - 1) * 100:+.2f} %)"
        )
    print("\nthe logging calls alone, CPU time (5 scalars a step, 20,000 steps; mlflow 1,000):")
    alone = {}
    for tool in tools[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            log = tool(Path(tmp))
            alone[tool.name] = calls_alone(log, 1_000 if tool is MLflow else 20_000)
            log.close()
    ours = alone["trainbench"]
    for name, t in alone.items():
        ratio = "" if name == "trainbench" else f"  ({t / ours:,.0f}× trainbench's)"
        print(f"  {name:20} {t * 1e6:10.1f} µs per step{ratio}")


if __name__ == "__main__":
    main()
