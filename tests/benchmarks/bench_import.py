"""TensorBoard history into Trainbench: importing a log of 10 runs × 5 tags × 100,000 steps,
then opening all 10 runs in the compare view, against TensorBoard's own `EventAccumulator`
loading the same logs (every point kept, as the compare needs them).

    python tests/benchmarks/bench_import.py [--runs 10] [--tags 5] [--steps 100000] [--logdir DIR]

The logs are event files as `SummaryWriter.add_scalar` writes them (one event per value),
written once into --logdir (default: a temporary folder) and reused when they are there.
Figures: wall clock and this process's CPU time (which other load on the machine does not
inflate). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TRAINBENCH_APP_DIR", tempfile.mkdtemp(prefix="bench-appdir-"))

from engine.importers.tensorboard import import_logdir  # noqa: E402
from engine.store import RunStore  # noqa: E402

TAGS = ("train/loss", "train/lr", "train/accuracy", "val/loss", "val/accuracy")


def write_logs(logdir: Path, runs: int, tags: int, steps: int) -> None:
    """Event files as SummaryWriter writes them (its own event writer, one event per value): one
    run written, copied into the others' folders (what is read and stored is the same work)."""
    import shutil

    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard.writer import FileWriter

    first = logdir / "run-00"
    if not any(first.glob("*tfevents*")):
        writer = FileWriter(str(first), max_queue=10_000, flush_secs=120)
        for step in range(steps):
            wall = 1_700_000_000.0 + step * 0.05
            for t in range(tags):
                value = 1 / (step + 1) + t
                tag = TAGS[t % len(TAGS)]
                summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
                writer.add_event(Event(wall_time=wall, step=step, summary=summary))
        writer.close()
    (source,) = first.glob("*tfevents*")
    for r in range(1, runs):
        folder = logdir / f"run-{r:02d}"
        if not any(folder.glob("*tfevents*")):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, folder / source.name)


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def accumulator_load(logdir: Path, runs: int) -> int:
    """TensorBoard's own reading of every run, all points kept (size_guidance 0 = no sampling)."""
    from tensorboard.backend.event_processing import event_accumulator

    points = 0
    for r in range(runs):
        acc = event_accumulator.EventAccumulator(
            str(logdir / f"run-{r:02d}"), size_guidance={event_accumulator.SCALARS: 0}
        )
        acc.Reload()
        points += sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])
    return points


def open_compare(db: Path, ids: list[int]) -> None:
    """The Experiments area's compare view with every run, until its plots in view are drawn."""
    from PySide6.QtWidgets import QApplication

    from app.experiments.area import ExperimentsArea

    app = QApplication.instance() or QApplication([])
    area = ExperimentsArea(db)
    area.resize(1600, 1000)
    area.show()
    area.ensure_loaded()
    area.select(ids)
    for _ in range(3):
        app.processEvents()
    _, wall, cpu = timed(lambda: (area.show_compare(), app.processEvents(), area.compare.grab()))
    plot = area.compare.plots[TAGS[0]]
    assert len(plot.curves) == len(ids)
    area.close()
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--tags", type=int, default=5)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--logdir", type=Path)
    args = ap.parse_args()
    logdir = args.logdir or Path(tempfile.mkdtemp(prefix="bench-tb-"))
    total = args.runs * args.tags * args.steps
    print(
        f"{args.runs} runs × {args.tags} tags × {args.steps:,} steps = {total:,} points; load {os.getloadavg()[0]:.2f}"
    )
    _, wall, _ = timed(lambda: write_logs(logdir, args.runs, args.tags, args.steps))
    size = sum(p.stat().st_size for p in logdir.rglob("*tfevents*"))
    print(f"event files: {size / 2**20:.0f} MiB in {logdir} (written in {wall:.1f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.db"
        store = RunStore(db)
        result, wall, cpu = timed(lambda: import_logdir(store, logdir))
        assert result.points == total, result.points
        print(
            f"trainbench import tensorboard: {wall:.1f} s wall, {cpu:.1f} s CPU ({total / wall / 1e6:.2f} M points/s)"
        )
        again, wall2, _ = timed(lambda: import_logdir(store, logdir))
        assert len(again.unchanged) == args.runs
        print(f"  importing again (nothing changed): {wall2 * 1000:.0f} ms")
        ids = [r["id"] for r in store.list_runs()]
        store.close()
        wall, cpu = open_compare(db, ids)
        print(
            f"  then all {len(ids)} runs opened in the compare view (read, smoothed, painted): {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU"
        )
        again_wall, again_cpu = open_compare(db, ids)
        print(f"  and opened again: {again_wall * 1000:.0f} ms wall, {again_cpu * 1000:.0f} ms CPU")
    points, wall, cpu = timed(lambda: accumulator_load(logdir, args.runs))
    assert points == total, points
    print(
        f"TensorBoard EventAccumulator.Reload (every point kept): {wall:.1f} s wall, {cpu:.1f} s CPU, each time it opens them"
    )


if __name__ == "__main__":
    main()
