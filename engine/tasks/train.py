"""The training loop. It reads top to bottom: data, model, strategy, optimizer, resume, then
the loop (forward, backward, clip, step, log, evaluate, checkpoint) and a final evaluation.

Prune and distill runs reuse `fit` with their own model and loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from engine.data import Dataset, load_dataset
from engine.graph.build import build
from engine.graph.model import Graph
from engine.graph.shapes import Analysis, validate
from engine.optim import make_optimizer, make_scheduler
from engine.runner import Diverged, RunContext
from engine.strategies import make_strategy
from engine.tasks.batches import BatchPlan
from engine.tasks.objectives import Objective, check_model_fits

# (model output, inputs, targets) -> (loss to backpropagate, extra values to log)
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]


def run(ctx: RunContext) -> dict:
    spec = ctx.spec
    seed_everything(spec["train"])
    data = load_dataset(spec["data"], spec["task"]["objective"])
    analysis = validate(Graph.from_dict(spec["model"]))
    check_model_fits(analysis, data)
    return fit(ctx, build(Graph.from_dict(spec["model"])), data, analysis)


def seed_everything(train: dict) -> None:
    torch.manual_seed(train["seed"])
    if train["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)


def fit(
    ctx: RunContext, model: torch.nn.Module, data: Dataset, analysis: Analysis, loss_fn: LossFn | None = None
) -> dict:
    spec, train = ctx.spec, ctx.spec["train"]
    objective = Objective(data.objective)
    loss_fn = loss_fn or (lambda out, x, y: (objective.loss(out, y), {}))

    # --- where and how: device, precision, and (later) how processes cooperate
    strategy = make_strategy(spec)
    device = strategy.device
    model = strategy.setup(model)
    x_train, y_train = (
        torch.as_tensor(data.x_train, device=device),
        torch.as_tensor(data.y_train, device=device),
    )
    x_val, y_val = torch.as_tensor(data.x_val, device=device), torch.as_tensor(data.y_val, device=device)

    # --- the batch plan fixes which samples every step sees, so resume and DDP are exact
    plan = BatchPlan(
        len(x_train),
        train["batch_size"],
        train["grad_accum"],
        train["seed"],
        strategy.world_size,
        strategy.rank,
    )
    total_steps = train["max_steps"] or train["epochs"] * plan.steps_per_epoch
    eval_every = train["eval_every"] or plan.steps_per_epoch
    ckpt_every = spec["checkpoint"]["every"] or plan.steps_per_epoch

    optimizer = make_optimizer(strategy.unwrap(model), spec["optim"])
    scheduler = make_scheduler(optimizer, spec["schedule"], total_steps)

    # --- resume: same weights, optimizer moments, schedule position, RNG and step count
    step = 0
    state = ctx.last_checkpoint() if ctx.resume else None
    if state is not None:
        strategy.unwrap(model).load_state_dict(state["model"])
        strategy.load_optimizer_state(model, optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        strategy.precision.load_state_dict(state.get("scaler", {}))
        torch.set_rng_state(state["rng"])
        step = state["step"]
        ctx.store.truncate_metrics(ctx.run_id, after_step=step)  # the steps after it are replayed
        ctx.log(f"resumed from the checkpoint at step {step}")

    def snapshot() -> dict:
        return {
            "model": strategy.model_state(model),
            "optimizer": strategy.optimizer_state(model, optimizer),
            "scheduler": scheduler.state_dict(),
            "scaler": strategy.precision.state_dict(),
            "rng": torch.get_rng_state(),
            "step": step,
            "epoch": step / plan.steps_per_epoch,
            "graph": spec["model"],
        }

    tokens = data.tokens_per_sample
    ctx.log(
        f"{data.name}: {len(x_train)} train / {len(x_val)} val samples; model {analysis.total_params:,} parameters, "
        f"{analysis.total_flops:,} FLOPs/sample; {strategy.describe()}; global batch {plan.global_batch} "
        f"({train['batch_size']} × {train['grad_accum']} accumulation × {strategy.world_size} process(es)); "
        f"{total_steps} steps ({plan.steps_per_epoch} per epoch)"
    )
    ctx.events.emit(
        "run_started",
        name=spec["name"],
        kind=spec["task"]["kind"],
        total_steps=total_steps,
        resumed_from=step,
    )
    ctx.store.update_summary(
        ctx.run_id,
        params=analysis.total_params,
        flops=analysis.total_flops,
        global_batch=plan.global_batch,
        total_steps=total_steps,
        world_size=strategy.world_size,
        dataset=data.summary(),
    )

    # On CUDA, reading the loss every step would stall the GPU queue; read a few at a time.
    sync_every = 1 if device.type == "cpu" else 16
    pending: list[tuple[int, torch.Tensor, float, dict]] = []
    started, start_step = time.time(), step
    window_t, window_step = time.perf_counter(), step
    last_eval: dict[str, float] = {}
    model.train()

    while step < total_steps and not ctx.stop_requested:
        # --- forward and backward over the micro-batches of one optimizer step
        micro = plan.micro_batches(step)
        step_loss, step_parts = 0.0, {}
        for i, idx in enumerate(micro):
            xb, yb = x_train[idx], y_train[idx]
            with strategy.no_sync(model, sync=i == len(micro) - 1), strategy.precision.autocast():
                loss, parts = loss_fn(model(xb), xb, yb)
                # The gradient of a mean over the global batch: each micro-batch holds 1/accum of it.
                strategy.precision.backward(loss / len(micro))
            step_loss = step_loss + loss.detach() / len(micro)
            for k, v in parts.items():
                step_parts[k] = step_parts.get(k, 0.0) + v.detach() / len(micro)

        # --- clip (after unscaling fp16 gradients back to their true size) and step
        grad_norm = None
        if spec["optim"]["grad_clip"]:
            strategy.precision.unscale(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec["optim"]["grad_clip"])
        strategy.precision.step(optimizer)
        optimizer.zero_grad(set_to_none=True)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        step += 1

        # --- log: every step's loss, read back in small groups
        pending.append((step, strategy.reduce_mean(step_loss), lr, step_parts))
        if len(pending) >= sync_every or step == total_steps:
            _flush_losses(ctx, pending, step / plan.steps_per_epoch, grad_norm)
            pending.clear()
            ctx.progress(step, total_steps, step / plan.steps_per_epoch, started, start_step)
            now = time.perf_counter()
            if now - window_t >= 1.0 or step == total_steps:
                rate = (step - window_step) * plan.global_batch / (now - window_t)
                perf = {"perf/samples_per_s": rate} | ({"perf/tokens_per_s": rate * tokens} if tokens else {})
                ctx.log_metrics(step, perf)
                window_t, window_step = now, step

        # --- evaluate and checkpoint on their cadence
        if step % eval_every == 0 and step != total_steps:
            last_eval = objective.evaluate(
                model, x_val, y_val, train["eval_batch_size"], strategy.precision.autocast
            )
            ctx.log_metrics(step, last_eval)
        if step % ckpt_every == 0 and step != total_steps:
            ctx.save_checkpoint(snapshot(), step, "periodic", keep=spec["checkpoint"]["keep"])

    # --- the end: flush, final evaluation, final checkpoint (also when stopped early)
    if pending:
        _flush_losses(ctx, pending, step / plan.steps_per_epoch, None)
    last_eval = objective.evaluate(model, x_val, y_val, train["eval_batch_size"], strategy.precision.autocast)
    ctx.log_metrics(step, last_eval)
    ctx.save_checkpoint(snapshot(), step, "final" if step == total_steps else "stop")
    ctx.progress(step, total_steps, step / plan.steps_per_epoch, started, start_step)
    strategy.teardown()
    ctx.log(
        f"{'stopped' if ctx.stop_requested else 'finished'} at step {step}: "
        + ", ".join(f"{k} {v:.4g}" for k, v in last_eval.items())
    )
    return {
        "steps": step,
        "epochs": round(step / plan.steps_per_epoch, 3),
        **{k.replace("/", "_"): v for k, v in last_eval.items()},
    }


def _flush_losses(ctx: RunContext, pending, epoch: float, grad_norm) -> None:
    losses = torch.stack([p[1] for p in pending]).float().tolist()
    for (step, _, lr, parts), loss in zip(pending, losses, strict=True):
        if not math.isfinite(loss):
            raise Diverged(
                f"the training loss became {loss} at step {step}; lower optim.lr, or set optim.grad_clip"
            )
        values = {"train/loss": loss, "train/lr": lr, "train/epoch": epoch}
        values.update({f"train/{k}": v.item() for k, v in parts.items()})
        ctx.log_metrics(step, values)
    if grad_norm is not None:
        ctx.log_metrics(pending[-1][0], {"train/grad_norm": float(grad_norm)})
