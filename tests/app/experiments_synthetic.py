"""Synthetic runs for the Experiments tests, benchmark and screenshots: inserted through the
store's own API (create_run, add_metrics, finish_run), shaped like real runs — a sweep over
learning rate, batch size and optimizer, with prune and distill children for some."""

from __future__ import annotations

import copy
import time

import numpy as np

STATUSES = ["completed"] * 14 + ["failed", "stopped", "crashed"]
TAGS = ["baseline", "sweep", "ablation", "long", "lr-search"]


def add_synthetic_runs(
    store,
    spec: dict,
    n: int,
    points: int = 200,
    seed: int = 0,
    families: int = 0,
    name: str = "sweep",
) -> list[int]:
    """`n` finished train runs of `spec` with varied hyperparameters and `points` steps of
    train/loss, train/lr and train/epoch (val/* every tenth step), plus `families` prune →
    distill chains hanging off the first runs. Returns the new run ids."""
    rng = np.random.default_rng(seed)
    ids = []
    t0 = time.time() - n * 600
    for i in range(n):
        s = copy.deepcopy(spec)
        lr = float(10 ** rng.uniform(-4, -1.3))
        s["name"] = f"{name}-{i:04d}"
        s["optim"]["lr"] = round(lr, 6)
        s["optim"]["name"] = str(rng.choice(["adamw", "adam", "sgd"]))
        s["train"]["batch_size"] = int(rng.choice([16, 32, 64, 128]))
        s["tags"] = sorted({str(t) for t in rng.choice(TAGS, size=int(rng.integers(0, 3)), replace=False)})
        quality = 1 - abs(np.log10(lr) + 2.7) / 2  # best near lr 2e-3
        status = STATUSES[int(rng.integers(len(STATUSES)))]
        params = int(rng.choice([547, 2_115, 8_451, 33_795]))
        rid = _add_run(store, s, "train", None, status, points, quality, params, rng, t0 + i * 600)
        ids.append(rid)
    for f in range(min(families, len(ids))):
        parent = ids[f]
        base = store.get_run(parent)
        prune = copy.deepcopy(base["spec"])
        prune["name"] = f"{base['name']}-pruned"
        prune["task"]["kind"] = "prune"
        pid = _add_run(
            store, prune, "prune", parent, "completed", points // 2, 0.8, base["summary"]["params"] // 3, rng
        )
        store.update_summary(
            pid,
            compression={
                "parent": parent,
                "method": "l1",
                "before": {
                    "params": base["summary"]["params"],
                    "latency_ms": 2.0,
                    "bytes": base["summary"]["params"] * 4,
                },
                "after": {
                    "params": base["summary"]["params"] // 3,
                    "latency_ms": 0.9,
                    "bytes": base["summary"]["params"] * 4 // 3,
                },
            },
        )
        distill = copy.deepcopy(base["spec"])
        distill["name"] = f"{base['name']}-distilled"
        distill["task"]["kind"] = "distill"
        ids += [
            pid,
            _add_run(
                store,
                distill,
                "distill",
                pid,
                "completed",
                points // 2,
                0.85,
                base["summary"]["params"] // 2,
                rng,
            ),
        ]
    return ids


def _add_run(store, spec, kind, parent, status, points, quality, params, rng, created=None) -> int:
    rid = store.create_run(spec, kind=kind, parent_id=parent, status="queued")
    store.start_run(rid)
    steps = np.arange(1, points + 1)
    walls = time.time() + steps * 0.05
    floor = 0.15 + 0.6 * (1 - quality)
    loss = floor + 1.8 * np.exp(-steps / (points / 4)) + 0.08 * rng.standard_normal(points)
    lr = np.full(points, spec["optim"]["lr"], dtype=float)
    epochs = steps / max(1, points // 10)
    vs = steps[9::10]
    val_loss = floor + 1.6 * np.exp(-vs / (points / 4)) + 0.02 * rng.standard_normal(len(vs))
    val_acc = np.clip(
        0.35 + 0.6 * quality * (1 - np.exp(-vs / (points / 5))) + 0.01 * rng.standard_normal(len(vs)), 0, 1
    )
    store.add_metrics(
        rid,
        {
            "train/loss": (steps, loss, walls),
            "train/lr": (steps, lr, walls),
            "train/epoch": (steps, epochs, walls),
            "val/loss": (vs, val_loss, walls[vs - 1]),
            "val/accuracy": (vs, val_acc, walls[vs - 1]),
        },
    )
    summary = {
        "params": int(params),
        "flops": int(params) * 2,
        "steps": points,
        "epochs": float(epochs[-1]),
        "val/loss": float(val_loss[-1]) if len(vs) else None,
        "val/accuracy": float(val_acc[-1]) if len(vs) else None,
    }
    store.finish_run(rid, status, summary, error="RuntimeError: loss is nan" if status == "failed" else None)
    if created is not None:
        with store.write() as c:
            c.execute(
                "UPDATE runs SET created_at=?, started_at=?, ended_at=? WHERE id=?",
                (created, created + 5, created + 5 + points * 0.05, rid),
            )
    return rid


def open_area(qtbot, db):
    """The Experiments area on `db`, shown and loaded, as a user opens it."""
    from app.experiments.area import ExperimentsArea

    area = ExperimentsArea(db)
    qtbot.addWidget(area)
    area.resize(1500, 950)
    area.show()
    qtbot.waitExposed(area)
    area.ensure_loaded()
    qtbot.waitUntil(lambda: area.browser.table.isVisible())
    return area
