"""Exporting a run: its metrics as CSV (torch-free, so the GUI writes it in its own process)
and its model, from the last checkpoint, through `engine.graph.export` (PyTorch code,
TorchScript, ONNX). `trainbench export` and the desktop app call these same functions."""

from __future__ import annotations

import csv
from pathlib import Path

MODEL_SUFFIX = {"pytorch": ".py", "torchscript": ".ts.pt", "onnx": ".onnx"}
FORMATS = (*MODEL_SUFFIX, "csv")


def export_metrics_csv(store, run_id: int, out: Path) -> None:
    """Long format (metric, step, value, wall_time): one file holds every series."""
    with Path(out).open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", "step", "value", "wall_time"])
        for key in store.series_summaries(run_id):
            steps, vals, walls = store.series(run_id, key)
            w.writerows(zip([key] * len(steps), steps.tolist(), vals.tolist(), walls.tolist(), strict=True))


def export_run(store, run_id: int, fmt: str, out: Path | None = None) -> tuple[list[Path], bool]:
    """Write run `run_id` as `fmt`; returns (files written, whether trained weights went in —
    False when the run has no checkpoint and the architecture was exported with random ones)."""
    if fmt == "csv":
        out = Path(out or f"run-{run_id}-metrics.csv")
        export_metrics_csv(store, run_id, out)
        return [out], True
    from engine import checkpoint
    from engine.graph.export import export
    from engine.graph.model import Graph

    run = store.get_run(run_id)
    row = store.last_checkpoint(run_id)
    state = checkpoint.load(row["path"]) if row else None
    graph = Graph.from_dict(state["graph"] if state else run["spec"]["model"])
    out = Path(out or f"run-{run_id}{MODEL_SUFFIX[fmt]}")
    return export(graph, fmt, out, state["model"] if state else None), state is not None
