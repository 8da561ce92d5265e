"""Compression, measured: what pruning and distillation buy and cost on the digits CNN.

1. Pruning. A digits CNN trained as the example says, then pruned to half its channels (L1,
   per layer, output head kept) and fine-tuned for 3 epochs, through `trainbench`'s own prune
   task. Latency: both models timed interleaved (warm-up first, median of repeats,
   `torch.inference_mode`) at several batch sizes and thread counts; the run's own figure is
   the 1-thread, batch-256 one. Target: >= 1.5× faster.
2. Distillation. The same CNN teaches a quarter-width student (~1/15 of its parameters); the
   same student, same seed (so the same initial weights), same schedule, is also trained
   without a teacher. Three settings: all labels; 10% of the labels (val_fraction 0.9) with a
   teacher trained on that same 10%; and 10% of the labels with the teacher trained on all of
   them, scored on the 359 samples that neither the teacher nor the students trained on (the
   teacher's validation split, which with the same split_seed is the head of the students').
   Several seeds, because on digits the differences are small; reported whichever way they fall.

    python tests/benchmarks/bench_compress.py [--seeds 5]

Run it on an otherwise idle machine; it prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.lineage import load_parent  # noqa: E402
from engine.runner import execute  # noqa: E402
from engine.spec import validate_spec  # noqa: E402
from engine.store import RunStore  # noqa: E402
from engine.tasks.footprint import latency_ms  # noqa: E402

EXAMPLES = ROOT / "resources" / "examples"


def example(name: str, **sections) -> dict:
    doc = json.loads((EXAMPLES / f"{name}.json").read_text())
    for section, values in sections.items():
        doc[section] = {**doc.get(section, {}), **values} if isinstance(values, dict) else values
    return doc


def run(store: RunStore, doc: dict) -> dict:
    run_id, status = execute(store.path, validate_spec(doc, base_dir=EXAMPLES, store=store))
    r = store.get_run(run_id)
    if status != "completed":
        raise SystemExit(f"run {run_id} {status}: {r['error']}")
    return r


def quarter_student() -> dict:
    return json.loads((EXAMPLES / "digits_cnn_distill.json").read_text())["model"]


def pruning(store: RunStore, seed: int) -> dict:
    parent = run(store, example("digits_cnn", train={"seed": seed}))
    child = run(
        store,
        example("digits_cnn_prune", prune={"parent": parent["id"]}, train={"seed": seed}),
    )
    c = child["summary"]["compression"]
    models = [load_parent(store, r["id"], "x").build().eval() for r in (parent, child)]
    x_val = torch.randn(256, 1, 8, 8)
    sweep = {}
    for threads in (1, torch.get_num_threads()):
        for batch in (1, 64, 256):
            before, after = latency_ms(models, x_val[:batch], warmup=10, repeats=100, threads=threads)
            sweep[(threads, batch)] = (before, after)
    return {"parent": parent, "child": child, "c": c, "sweep": sweep}


FEW_LABELS = {"source": "digits", "val_fraction": 0.9}  # 180 training samples: 5 steps an epoch


def distillation(store: RunStore, seeds: list[int], setting: str) -> dict:
    """`setting`: "all" labels, "few" (10%, the teacher trained on the same 10%) or
    "few, teacher saw all" (scored on the samples no one trained on)."""
    data = {"source": "digits"} if setting == "all" else FEW_LABELS
    epochs = 8 if setting == "all" else 40
    if setting == "few, teacher saw all":
        teacher = run(store, example("digits_cnn"))
    else:
        teacher = run(store, example("digits_cnn", data=data, train={"epochs": epochs, "seed": 0}))
    held_out = teacher["summary"]["dataset"]["val_samples"] if setting == "few, teacher saw all" else None
    rows = {"distilled": [], "plain": []}
    for seed in seeds:
        train = {"epochs": epochs, "seed": seed}
        kd = run(
            store, example("digits_cnn_distill", distill={"teacher": teacher["id"]}, data=data, train=train)
        )
        plain_doc = example("digits_cnn_distill", train=train, data=data)
        plain_doc["task"] = {"kind": "train"}
        del plain_doc["distill"]
        plain = run(store, plain_doc)
        rows["distilled"].append(accuracy(store, kd, held_out))
        rows["plain"].append(accuracy(store, plain, held_out))
    return {"teacher": teacher, "teacher_accuracy": accuracy(store, teacher, held_out), "kd_run": kd, **rows}


def accuracy(store: RunStore, r: dict, first: int | None) -> float:
    """The run's validation accuracy, or its accuracy on the first `first` validation samples."""
    if first is None:
        return r["summary"]["val/accuracy"]
    from contextlib import nullcontext

    from engine.data import load_dataset, split
    from engine.tasks.objectives import Objective

    data_spec = r["spec"]["data"]
    # Same split_seed: the head of a larger validation split is the smaller one.
    assert (split(1797, data_spec["val_fraction"], 0)[1][:first] == split(1797, 0.2, 0)[1]).all()
    data = load_dataset(data_spec)
    model = load_parent(store, r["id"], "run").build().eval()
    x, y = torch.as_tensor(data.x_val[:first]), torch.as_tensor(data.y_val[:first])
    return Objective("classification").evaluate(model, x, y, 512, nullcontext)["val/accuracy"]


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0] * 100:.2f}"
    return f"{statistics.mean(values) * 100:.2f} ± {statistics.stdev(values) * 100:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    print(
        f"load average before: {os.getloadavg()[0]:.2f} (1 min); {os.cpu_count()} cores; torch {torch.__version__}"
    )
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs.db")
        p = pruning(store, seed=0)
        settings = {
            "all labels (1438 samples)": distillation(store, seeds, "all"),
            "10% labels, teacher 10% too": distillation(store, seeds, "few"),
            "10% labels, teacher all (*)": distillation(store, seeds, "few, teacher saw all"),
        }

    c = p["c"]
    b, a = c["before"], c["after"]
    print("\n1. Pruning the digits CNN to half its channels (L1, per layer, head kept; 3 fine-tuning epochs)")
    print(f"{'':28}{'parent':>14}{'pruned':>14}{'change':>12}")
    for label, key in (
        ("parameters", "params"),
        ("FLOPs per sample", "flops"),
        ("weights size (bytes)", "bytes"),
        ("latency, ms (run's figure)", "latency_ms"),
        ("val accuracy (%)", "val/accuracy"),
    ):
        if key == "val/accuracy":
            cells, change = (
                (f"{b[key] * 100:.2f}", f"{a[key] * 100:.2f}"),
                f"{(a[key] - b[key]) * 100:+.2f} pt",
            )
        elif key == "latency_ms":
            cells, change = (f"{b[key]:.3f}", f"{a[key]:.3f}"), f"{b[key] / a[key]:.2f}× faster"
        else:
            cells, change = (f"{b[key]:,}", f"{a[key]:,}"), f"{b[key] / a[key]:.2f}× less"
        print(f"{label:28}{cells[0]:>14}{cells[1]:>14}{change:>14}")
    print("\n   latency sweep (median of 100, interleaved, random input):")
    print(f"   {'threads':>7} {'batch':>5} {'parent ms':>10} {'pruned ms':>10} {'speedup':>8}")
    for (threads, batch), (before, after) in p["sweep"].items():
        print(f"   {threads:>7} {batch:>5} {before:>10.3f} {after:>10.3f} {before / after:>7.2f}×")

    print(f"\n2. Distillation into a quarter-width student ({args.seeds} seed(s); val accuracy %, mean ± sd)")
    print(f"   {'setting':30} {'teacher':>8} {'distilled':>16} {'no teacher':>16} {'gain':>7}")
    for label, d in settings.items():
        gain = (statistics.mean(d["distilled"]) - statistics.mean(d["plain"])) * 100
        print(
            f"   {label:30} {d['teacher_accuracy'] * 100:>8.2f} {mean_sd(d['distilled']):>16} "
            f"{mean_sd(d['plain']):>16} {gain:>+6.2f}"
        )
    print("   (*) scored on the 359 samples neither the teacher nor the students trained on")
    s = settings["all labels (1438 samples)"]["kd_run"]["summary"]["compression"]
    print(
        f"   student vs teacher: {s['after']['params']:,} vs {s['before']['params']:,} parameters "
        f"({s['before']['params'] / s['after']['params']:.1f}× fewer), {s['after']['flops']:,} vs "
        f"{s['before']['flops']:,} FLOPs, latency {s['after']['latency_ms']:.3f} vs {s['before']['latency_ms']:.3f} ms "
        f"({s['before']['latency_ms'] / s['after']['latency_ms']:.2f}× faster; 1 thread, batch 256)"
    )
    print(f"\ntotal {time.time() - started:.0f} s; load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
