"""The learning-rate finder: an exponential LR sweep on a throwaway copy of a spec's model,
and two suggestions read off the loss curve.

`lr_find(spec, store)` builds the spec's model afresh (seeded as the run would be), trains it
for `steps` optimizer steps (default 200) with the spec's optimizer, data and batch size while
the LR grows exponentially from `start_lr` to `end_lr`, and stops early once the loss diverges
(not finite, or over DIVERGED × its best smoothed value). The model is then thrown away: no
checkpoint, no change to anything but the record of the sweep, which is a small run of kind
`lr_find` in the store (series `lr_find/lr`, `lr_find/loss`, `lr_find/smoothed`; summary with
the suggestions) so sweeps can be listed and compared like runs.

Suggestions, both on the smoothed curve (a debiased EMA with weight SMOOTHING, as fastai's
finder smooths) without its first SKIP_START share and the diverging tail:

  valley    the middle (in log LR) of the stretch over which the loss falls, from where it
            leaves its starting plateau to its minimum — fastai's "longest valley" idea, the
            suggestion it moved to because it lands well inside the region that trains,
            where "steepest" is often early and noisy
  steepest  where the loss falls fastest per decade of LR

`valley` is the one the run form's Accept sets as `optim.lr`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from engine.errors import SpecError

SMOOTHING = 0.98
DIVERGED = 4.0
SKIP_START = 0.1
FLAT = 0.01  # a curve that falls by less than this share of its start suggests nothing
MIN_STEPS, MAX_STEPS = 20, 2000
DEFAULTS = {"steps": 200, "start_lr": 1e-7, "end_lr": 10.0}


def check_range(steps: int, start_lr: float, end_lr: float) -> None:
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise SpecError.at("steps", f"must be between {MIN_STEPS} and {MAX_STEPS}, got {steps}")
    if not (0 < start_lr < end_lr <= 1e3 and math.isfinite(start_lr)):
        raise SpecError.at(
            "start_lr", f"needs 0 < start_lr < end_lr <= 1000, got {start_lr:g} and {end_lr:g}"
        )


def smooth(losses: np.ndarray, weight: float = SMOOTHING) -> np.ndarray:
    """Debiased exponential moving average (the start is not pulled towards 0)."""
    out = np.empty(len(losses))
    avg = 0.0
    for i, v in enumerate(losses):
        avg = weight * avg + (1 - weight) * v
        out[i] = avg / (1 - weight ** (i + 1))
    return out


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> dict:
    """{"valley": lr, "steepest": lr} (None where the curve is too short or flat to tell)."""
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    keep = np.isfinite(smoothed)
    lrs, smoothed = lrs[keep], smoothed[keep]
    lo = int(len(lrs) * SKIP_START)
    lrs, smoothed = lrs[lo:], smoothed[lo:]
    if len(lrs) < 5:
        return {"valley": None, "steepest": None}
    low = int(np.argmin(smoothed))  # the diverging tail after the minimum is never suggested
    top = float(np.median(smoothed[: max(1, len(smoothed) // 10)]))
    drop = top - float(smoothed[low])
    if low < 2 or drop <= FLAT * abs(top):
        return {"valley": None, "steepest": None}
    slope = np.gradient(smoothed[: low + 1], np.log10(lrs[: low + 1]))
    steepest = float(lrs[int(np.argmin(slope))])
    # The valley: where the loss has left its starting plateau (fallen by a twentieth of the
    # whole drop; a plateau's noise would otherwise make the longest falling stretch start at
    # the smallest LR) down to its minimum; its middle, in log LR, is well inside it.
    start = int(np.flatnonzero(smoothed[: low + 1] < top - drop / 20)[0])
    return {"valley": float(lrs[(start + low) // 2]), "steepest": steepest}


def lr_find(
    spec: dict,
    store=None,
    steps: int = DEFAULTS["steps"],
    start_lr: float = DEFAULTS["start_lr"],
    end_lr: float = DEFAULTS["end_lr"],
    progress=None,
) -> dict:
    """Sweep, suggest, record (when given a store); returns the sweep as a dict: lr, loss,
    smoothed (lists), valley, steepest, steps done, stopped early, run id. `progress(i, n)`
    is called after each step."""
    import torch

    from engine.data import load_dataset
    from engine.graph.build import GraphModule
    from engine.graph.model import Graph
    from engine.graph.shapes import validate
    from engine.optim import make_optimizer
    from engine.preflight import check_model_fits
    from engine.seed import seed_everything
    from engine.strategies import make_strategy
    from engine.tasks.batches import BatchPlan
    from engine.tasks.objectives import Objective

    if spec["task"]["kind"] != "train":
        raise SpecError.at(
            "task.kind", f"the LR finder sweeps a train spec, not a {spec['task']['kind']} spec"
        )
    check_range(steps, start_lr, end_lr)
    train = spec["train"]
    single = {
        **spec,
        "hardware": {**spec["hardware"], "strategy": "single", "nproc_per_node": None, "nnodes": "1"},
    }
    seed_everything(train["seed"], train["deterministic"])
    data = load_dataset(spec["data"], spec["task"]["objective"])
    analysis = validate(Graph.from_dict(spec["model"]))
    check_model_fits(analysis, data)
    strategy = make_strategy(single)
    model = strategy.setup(GraphModule(analysis))
    objective = Objective(data.objective)
    x, y = (
        torch.as_tensor(data.x_train, device=strategy.device),
        torch.as_tensor(data.y_train, device=strategy.device),
    )
    plan = BatchPlan(len(x), train["batch_size"], 1, train["seed"])
    optimizer = make_optimizer(model, spec["optim"])
    clip = spec["optim"]["grad_clip"]

    run_id = owner = None
    if store is not None:
        run_id = store.create_run(spec, kind="lr_find")
        owner = store.start_run(run_id)
    started = time.time()
    lrs, losses, walls = [], [], []
    best, stopped = math.inf, False
    status, error = "failed", None
    try:
        model.train()
        avg = 0.0
        for i in range(steps):
            lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            (idx,) = plan.micro_batches(i)
            with strategy.precision.autocast():
                loss = objective.loss(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            strategy.precision.backward(loss)
            if clip:
                strategy.precision.unscale(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            strategy.precision.step(optimizer)
            value = float(loss.detach())
            lrs.append(lr)
            losses.append(value)
            walls.append(time.time())
            if progress is not None:
                progress(i + 1, steps)
            if not math.isfinite(value):
                stopped = True
                break
            avg = SMOOTHING * avg + (1 - SMOOTHING) * value
            smoothed = avg / (1 - SMOOTHING ** (i + 1))
            best = min(best, smoothed)
            if i >= 10 and smoothed > DIVERGED * best:
                stopped = True
                break
        status = "completed"
    except KeyboardInterrupt:
        status = "stopped"
        raise
    except Exception as err:
        error = str(err)
        raise
    finally:
        result = _result(lrs, losses, stopped, run_id, time.time() - started)
        if store is not None:
            _record(store, run_id, owner, result, walls, status, error, (steps, start_lr, end_lr))
    return result


def _result(lrs, losses, stopped: bool, run_id, elapsed: float) -> dict:
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    finite = np.where(np.isfinite(losses), losses, np.nan)
    smoothed = smooth(np.nan_to_num(finite, nan=np.nanmax(finite) if np.isfinite(finite).any() else 0.0))
    smoothed[~np.isfinite(losses)] = np.nan
    return {
        "run_id": run_id,
        "lr": lrs.tolist(),
        "loss": losses.tolist(),
        "smoothed": smoothed.tolist(),
        **suggest(lrs, smoothed),
        "steps": len(lrs),
        "stopped_early": stopped,
        "elapsed_s": round(elapsed, 3),
    }


def _record(store, run_id, owner, result: dict, walls, status: str, error, asked) -> None:
    steps = np.arange(1, len(result["lr"]) + 1, dtype=np.int64)
    walls = np.asarray(walls, dtype=np.float64)
    if len(steps):
        store.add_metrics(
            run_id,
            {
                f"lr_find/{k}": (steps, np.asarray(result[k], dtype=np.float64), walls)
                for k in ("lr", "loss", "smoothed")
            },
            owner,
        )
    summary = {k: result[k] for k in ("valley", "steepest", "steps", "stopped_early", "elapsed_s")}
    summary.update(dict(zip(("sweep_steps", "start_lr", "end_lr"), asked, strict=True)))
    store.finish_run(run_id, status, summary, error, owner)
