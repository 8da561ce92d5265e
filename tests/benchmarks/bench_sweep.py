"""Sweep benchmarks (scripts, not part of the suite).

python tests/benchmarks/bench_sweep.py storage [--kills 10]
    Which Optuna storage survives kill -9 of the writing process: a writer asks, reports
    and tells trials in a loop and prints each number once `tell` returned; it is killed at a
    random moment, then a new process opens the study (timed) and checks every acknowledged
    trial is there, complete, and that it can write at once (a lock left behind would make
    it wait). For Optuna's SQLite storage, its journal file as Optuna leaves it, and the
    journal as Trainbench opens it (engine.sweep.study.repair first).

python tests/benchmarks/bench_sweep.py overhead [--trials 16] [--epochs 4] [--repeats 3]
    16 trials of the digits CNN (random sampler, seed 0): `trainbench sweep` wall time vs a
    plain Optuna script that trains the same trials in one process with a hand-written loop,
    alternately, the overhead of the median wall times.

python tests/benchmarks/bench_sweep.py kills [--kills 20] [--trials 12]
    kill -9 of `trainbench sweep` at random moments, each followed by `sweep --resume`, until
    the budget is spent; then every trial number must be there once, complete, in the store
    and in the study.

python tests/benchmarks/bench_sweep.py parallel [--trials 8]
    The same sweep at parallel 1 and 2, with the cores split among the trials
    (hardware.threads = cores / parallel, the default) and without (every trial on every core).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

WRITER = r"""
import sys, optuna, logging
optuna.logging.set_verbosity(logging.WARNING)
sys.path.insert(0, {root!r})
kind, path = sys.argv[1], sys.argv[2]
if kind == "sqlite":
    storage = optuna.storages.RDBStorage("sqlite:///" + path)
else:
    if kind == "trainbench":
        from engine.sweep.study import repair
        from pathlib import Path
        repair(Path(path))
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    storage = optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
study = optuna.create_study(storage=storage, study_name="s", load_if_exists=True)
print("open", flush=True)
while True:
    t = study.ask({{"x": optuna.distributions.FloatDistribution(0, 1)}})
    for step in range(5):
        t.report(t.params["x"] * step, step)
    study.tell(t, t.params["x"])
    print(t.number, flush=True)
"""


def _writer(kind: str, path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER.format(root=str(ROOT)), kind, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def bench_storage(kills: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    for kind in ("sqlite", "journal", "trainbench"):
        folder = Path(tempfile.mkdtemp(prefix=f"bench-storage-{kind}-"))
        path = folder / ("study.db" if kind == "sqlite" else "study.journal")
        acked: list[int] = []
        opens, first_writes, rates, problems = [], [], [], []
        for _ in range(kills):
            t0 = time.perf_counter()
            proc = _writer(kind, path)
            assert proc.stdout.readline().strip() == "open", proc.stderr.read()
            opened = time.perf_counter()
            opens.append(opened - t0)
            first = proc.stdout.readline().strip()
            if not first.isdigit():
                problems.append(f"could not write: {proc.stderr.read().strip().splitlines()[-1:]}")
                proc.kill()
                proc.wait()
                continue
            first_writes.append(time.perf_counter() - opened)
            acked.append(int(first))
            deadline = time.perf_counter() + rng.uniform(0.2, 1.0)
            n0 = len(acked)
            while time.perf_counter() < deadline:
                line = proc.stdout.readline().strip()
                if line.isdigit():
                    acked.append(int(line))
            rates.append((len(acked) - n0 + 1) / (time.perf_counter() - opened))
            os.kill(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate()
            acked += [int(x) for x in rest.split() if x.isdigit()]
        storage = (
            optuna.storages.RDBStorage("sqlite:///" + str(path))
            if kind == "sqlite"
            else optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        )
        try:
            trials = {t.number: t for t in optuna.load_study(study_name="s", storage=storage).trials}
            lost = [n for n in acked if n not in trials or trials[n].state.name != "COMPLETE"]
            if lost:
                problems.append(f"{len(lost)} acknowledged trial(s) lost or not complete")
        except Exception as err:  # noqa: BLE001 - the measurement is whether it opens
            problems.append(f"does not open: {type(err).__name__}: {err}")
        lock_left = (Path(str(path) + ".lock")).exists()
        stale = ""
        if kind != "sqlite":  # a kill inside append_logs leaves the lock file: as if it had
            Path(str(path) + ".lock").touch()
            t0 = time.perf_counter()
            proc = _writer(kind, path)
            proc.stdout.readline()
            proc.stdout.readline()
            stale = f"; first write with a lock file left behind: {time.perf_counter() - t0:.1f} s"
            proc.kill()
            proc.wait()
        print(
            f"{kind:10s} kills {kills}: acknowledged trials {len(acked)}, "
            f"open {_median(opens) * 1000:.0f} ms (median), first write after open max {max(first_writes, default=0):.2f} s, "
            f"~{_median(rates):.0f} trials/s; lock file left by the kills: {lock_left}{stale}; "
            + ("; ".join(problems) if problems else "every acknowledged trial kept")
        )
        shutil.rmtree(folder, ignore_errors=True)


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0.0


# ------------------------------------------------------------------ sweep overhead

PLAIN = r"""
import sys, time, logging, torch, optuna
sys.path.insert(0, {root!r})
optuna.logging.set_verbosity(logging.WARNING)
torch.set_num_threads({threads})
from engine.data import load_dataset
from engine.graph.build import GraphModule
from engine.graph.model import Graph
from engine.graph.shapes import validate
from engine.spec import load_spec
import torch.nn.functional as F

spec = load_spec({spec!r})
data = load_dataset(spec["data"], "classification")
x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
xv, yv = torch.as_tensor(data.x_val), torch.as_tensor(data.y_val)
space = {{"optim.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
          "train.batch_size": optuna.distributions.CategoricalDistribution([32, 64])}}
study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
t0 = time.perf_counter()
for _ in range({trials}):
    trial = study.ask(space)
    torch.manual_seed(0)
    model = GraphModule(validate(Graph.from_dict(spec["model"])))
    opt = torch.optim.AdamW(model.parameters(), lr=trial.params["optim.lr"], weight_decay=0.01)
    bs = trial.params["train.batch_size"]
    g = torch.Generator().manual_seed(0)
    for epoch in range(spec["train"]["epochs"]):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - bs + 1, bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (model(xv).argmax(-1) == yv).float().mean().item()
        trial.report(acc, epoch)
    study.tell(trial, acc)
print(f"{{time.perf_counter() - t0:.2f}} {{study.best_value:.4f}}")
"""


EPOCHS = 4


def _sweep_spec(folder: Path, trials: int, parallel: int, threads: int | None) -> Path:
    doc = json.loads((ROOT / "resources/examples/digits_cnn.json").read_text())
    doc["model"] = str(ROOT / "resources/templates/cnn.json")
    doc["train"]["epochs"] = EPOCHS
    doc["schedule"] = {"name": "constant"}
    if threads:
        doc["hardware"] = {"threads": threads}
    doc["sweep"] = {
        "params": {"optim.lr": {"log_uniform": [1e-4, 1e-2]}, "train.batch_size": {"choice": [32, 64]}},
        "objective": {"metric": "val/accuracy", "direction": "maximize"},
        "trials": trials,
        "parallel": parallel,
        "sampler": "random",
        "seed": 0,
    }
    path = folder / f"sweep-{parallel}-{threads}.json"
    path.write_text(json.dumps(doc))
    return path


def _time_sweep(spec: Path, folder: Path) -> tuple[float, str]:
    db = folder / f"{spec.stem}.db"
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--db", str(db), "sweep", str(spec), "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - t0
    return wall, out.stderr.strip().splitlines()[-1]


def bench_overhead(trials: int, repeats: int) -> None:
    """The two, alternately, `repeats` times; the overhead of the medians."""
    from engine.runner import cpu_cores

    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    spec = _sweep_spec(folder, trials, 1, None)
    plains, walls = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                PLAIN.format(root=str(ROOT), threads=cpu_cores(), spec=str(spec), trials=trials),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        plains.append(time.perf_counter() - t0)
        loop_s, best = out.stdout.split()
        wall, line = _time_sweep(spec, folder)
        walls.append(wall)
        print(
            f"plain Optuna script: {plains[-1]:.1f} s wall ({loop_s} s in its loop), best val/accuracy {best}"
        )
        print(f"trainbench sweep:    {wall:.1f} s wall; {line}")
        for made in folder.glob(f"{spec.stem}.db*"):  # the next sweep starts on an empty store
            made.unlink()
        shutil.rmtree(folder / f"{spec.stem}-artifacts", ignore_errors=True)
    plain, wall = _median(plains), _median(walls)
    print(
        f"overhead: {100 * (wall / plain - 1):+.1f}% (medians of {repeats}: {wall:.1f} s vs {plain:.1f} s; "
        f"{trials} trials of {EPOCHS} epochs, {cpu_cores()} cores)"
    )
    shutil.rmtree(folder, ignore_errors=True)


def bench_parallel(trials: int) -> None:
    from engine.runner import cpu_cores

    cores = cpu_cores()
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-par-"))
    walls = {}
    for parallel, threads, label in (
        (1, None, "parallel 1"),
        (2, None, "parallel 2, split"),
        (2, cores, "parallel 2, all cores each"),
    ):
        walls[label], line = _time_sweep(_sweep_spec(folder, trials, parallel, threads), folder)
        print(f"{label:28s} {walls[label]:6.1f} s  ({line})")
    base = walls["parallel 1"]
    for label in ("parallel 2, split", "parallel 2, all cores each"):
        print(f"{label} vs parallel 1: {walls[label] / base:.2f}× the wall time")
    shutil.rmtree(folder, ignore_errors=True)


def bench_kills(kills: int, trials: int) -> None:
    import optuna

    from engine.store import RunStore
    from engine.sweep.study import STUDY_FILE

    rng = random.Random(0)
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-kills-"))
    doc = json.loads((ROOT / "resources/examples/digits_mlp.json").read_text())
    doc["model"] = str(ROOT / "resources/templates/mlp.json")
    doc["train"]["epochs"] = 40
    doc["sweep"] = {
        "params": {"optim.lr": {"log_uniform": [1e-4, 1e-1]}},
        "objective": {"metric": "val/accuracy", "direction": "maximize"},
        "trials": trials,
        "parallel": 2,
        "sampler": "tpe",
        "pruner": "asha",
        "seed": 0,
    }
    spec = folder / "sweep.json"
    spec.write_text(json.dumps(doc))
    db = folder / "runs.db"
    args = ["sweep", str(spec), "--quiet"]
    landed = 0
    for attempt in range(kills + 50):
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "--db", str(db), *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=subprocess.PIPE,
            text=True,
        )
        args = ["sweep", "--resume", "1", "--quiet"]
        try:
            proc.wait(rng.uniform(0.3, 4.0) if landed < kills else 600)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            landed += 1
        err = proc.communicate()[1]
        if proc.returncode == 0:
            break
        if proc.returncode != -signal.SIGKILL:
            raise SystemExit(f"attempt {attempt}: the sweep exited {proc.returncode}: {err[-2000:]}")
    store = RunStore(db)
    children = sorted(
        (r for r in store.list_runs() if r["parent_id"] == 1), key=lambda r: r["summary"].get("trial", -1)
    )
    numbers = [r["summary"].get("trial") for r in children]
    settled = [r["summary"].get("trial_state") for r in children]
    path = store.artifacts_dir(1) / STUDY_FILE
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    study = optuna.load_study(study_name="sweep", storage=optuna.storages.JournalStorage(backend))
    problems = []
    if numbers != list(range(trials)):
        problems.append(f"trial numbers {numbers}")
    if any(s not in ("complete", "pruned") for s in settled):
        problems.append(f"trial states {settled}")
    if sorted(t.number for t in study.trials) != list(range(trials)):
        problems.append(f"study trials {[t.number for t in study.trials]}")
    if any(t.state.name not in ("COMPLETE", "PRUNED") for t in study.trials):
        problems.append(f"study states {[t.state.name for t in study.trials]}")
    resumed = sum(
        "resumed from the checkpoint" in (store.artifacts_dir(r["id"]) / "run.log").read_text()
        for r in children
    )
    print(
        f"{landed} kill(s) of the sweep at random moments, {attempt + 1} start(s); {trials} trials, "
        f"{resumed} of them continued from a checkpoint; "
        + (
            "; ".join(problems)
            if problems
            else "every trial number once, every trial settled, study and store agree"
        )
    )
    store.close()
    shutil.rmtree(folder, ignore_errors=True)


def bench_view(trials: int) -> None:
    import numpy as np

    from engine.spec import load_spec
    from engine.store import RunStore

    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-view-"))
    spec_path = _sweep_spec(folder, trials, 2, None)
    spec = load_spec(spec_path)
    store = RunStore(folder / "runs.db")
    sweep_id = store.create_run(spec, kind="sweep")
    owner = store.start_run(sweep_id)
    base = {k: v for k, v in spec.items() if k != "sweep"}
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for n in range(trials):
        lr, batch = float(10 ** rng.uniform(-4, -2)), int(rng.choice([32, 64]))
        run_spec = {**base, "name": f"{base['name']} #{n}", "optim": {**base["optim"], "lr": lr}}
        run_spec["train"] = {**base["train"], "batch_size": batch}
        rid = store.create_run(run_spec, parent_id=sweep_id)
        pruned = n % 5 == 4
        steps = np.arange(1, 3 if pruned else 5) * 45
        acc = np.clip(0.99 - abs(np.log10(lr) + 2.5) * 0.2 + rng.normal(0, 0.01, len(steps)), 0, 1)
        o = store.start_run(rid)
        store.add_metrics(rid, {"val/accuracy": (steps, acc, np.full(len(steps), time.time()))}, o)
        store.finish_run(
            rid, "stopped" if pruned else "completed", {"steps": int(steps[-1]), "total_steps": 180}, None, o
        )
        notes = {"trial": n, "trial_state": "pruned" if pruned else "complete", "objective": float(acc[-1])}
        store.update_summary(rid, **notes, **({"pruned_step": int(steps[-1])} if pruned else {}))
    store.finish_run(sweep_id, "completed", {"trials": trials}, None, owner)
    store.close()
    print(f"stored {trials} trials in {time.perf_counter() - t0:.1f} s")

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.sweeps.view import TABS, SweepView

    app = QApplication.instance() or QApplication([])
    t0 = time.perf_counter()
    view = SweepView(folder / "runs.db", sweep_id)
    view.resize(1200, 800)
    view.show()
    app.processEvents()
    view.grab()  # the first paint, table and best-so-far curve included
    print(f"sweep view with {trials} trials: open to first paint {1000 * (time.perf_counter() - t0):.0f} ms")
    for i, name in enumerate(TABS[1:], start=1):
        t0 = time.perf_counter()
        view.tabs.setCurrentIndex(i)
        app.processEvents()
        view.grab()
        print(f"  tab {name!r}: first draw {1000 * (time.perf_counter() - t0):.0f} ms")
    view.close()
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    global EPOCHS
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("storage", "overhead", "parallel", "view", "kills"))
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--epochs", type=int, default=EPOCHS, help="of each trial (digits CNN)")
    p.add_argument("--repeats", type=int, default=3, help="overhead: measurements of each")
    args = p.parse_args()
    EPOCHS = args.epochs
    if args.what == "storage":
        bench_storage(args.kills)
    elif args.what == "view":
        bench_view(args.trials or 2000)
    elif args.what == "kills":
        bench_kills(args.kills, args.trials or 12)
    elif args.what == "overhead":
        bench_overhead(args.trials or 16, args.repeats)
    else:
        bench_parallel(args.trials or 8)


if __name__ == "__main__":
    main()
