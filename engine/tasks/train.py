"""The training loop. It reads top to bottom: data, model, strategy, optimizer, resume, then
the loop (forward, backward, clip, step, log, evaluate, checkpoint) and a final evaluation.

Prune and distill runs reuse `fit` with their own model and loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from engine import freeze, weights
from engine.compiler import Compiler
from engine.control import Control
from engine.data import Dataset, load_dataset
from engine.errors import Diverged
from engine.graph.build import GraphModule
from engine.graph.model import Graph
from engine.graph.shapes import Analysis, validate
from engine.health_probe import Health
from engine.optim import make_optimizer, make_scheduler
from engine.perf import Utilization
from engine.preflight import check_model_fits
from engine.seed import capture_rng, restore_rng, seed_everything
from engine.strategies import make_strategy
from engine.tasks.batches import BatchPlan
from engine.tasks.context import TaskContext
from engine.tasks.objectives import Objective

# (model output, inputs, targets) -> (loss to backpropagate, extra values to log)
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]


def run(ctx: TaskContext) -> dict:
    spec = ctx.spec
    seed_everything(spec["train"]["seed"], spec["train"]["deterministic"])
    data = load_dataset(spec["data"], spec["task"]["objective"])
    analysis = validate(Graph.from_dict(spec["model"]))
    check_model_fits(analysis, data)
    model = GraphModule(analysis)
    weights.init(model, spec["model"], ctx.log)  # model.init_from: a past run's or an import's weights
    # its checkpoints start from themselves: the graph they carry names no first weights
    graph = {k: v for k, v in spec["model"].items() if k not in ("init_from", "strict")}
    return fit(ctx, model, data, analysis, graph=graph)


def fit(
    ctx: TaskContext,
    model: torch.nn.Module,
    data: Dataset,
    analysis: Analysis,
    loss_fn: LossFn | None = None,
    graph: dict | None = None,
    aux: torch.nn.Module | None = None,
) -> dict:
    """Train `model` as the spec says; returns the summary (steps, final validation metrics).

    `graph` goes into every checkpoint (default: the spec's model): a pruned model or a student
    passes its own, so its checkpoints rebuild it. `aux` is a loss's own trainable part, not the
    model's (distillation's feature projection); see `AuxTrainer`.
    """
    spec, train = ctx.spec, ctx.spec["train"]
    graph = graph if graph is not None else spec["model"]
    objective = Objective(data.objective)
    loss_fn = loss_fn or (lambda out, x, y: (objective.loss(out, y), {}))

    # --- fine-tuning: frozen nodes get no gradient (marked before DDP or FSDP wrap the model)
    trainable, frozen = freeze.apply(model, train.get("freeze") or [])

    # --- where and how: device, precision, and how processes cooperate (single, DDP, FSDP)
    strategy = make_strategy(spec)
    device = strategy.device
    model = strategy.setup(model, Compiler(train["compile"], ctx.log))
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
    aux = AuxTrainer(aux.to(device), spec, total_steps) if aux is not None else None

    # --- resume: same weights, optimizer moments, schedule position, RNG, step count and
    # time spent so far; rank 0 reads the checkpoint and every other rank receives it
    step, elapsed_before = 0, 0.0
    state = strategy.broadcast(ctx.last_checkpoint() if ctx.resume else None)
    if state is not None:
        strategy.load_model_state(model, state["model"])
        strategy.load_optimizer_state(model, optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        strategy.precision.load_state_dict(state.get("scaler", {}))
        restore_rng(state["rng"])
        if aux is not None:
            aux.load_state_dict(state["aux"])
        step, elapsed_before = state["step"], state.get("elapsed_s", 0.0)
        ctx.log(f"resumed from the checkpoint at step {step}")
    if ctx.resume:  # the steps after the checkpoint (all of them, without one) are replayed
        ctx.truncate_metrics(after_step=step)

    def snapshot() -> dict:
        return {
            "model": strategy.model_state(model),
            "optimizer": strategy.optimizer_state(model, optimizer),
            "scheduler": scheduler.state_dict(),
            "scaler": strategy.precision.state_dict(),
            "rng": capture_rng(),
            "step": step,
            "epoch": step / plan.steps_per_epoch,
            "elapsed_s": elapsed(),
            "graph": graph,
            **({"aux": aux.state_dict()} if aux is not None else {}),
        }

    def evaluate() -> dict:  # every rank, the whole validation split
        metrics = objective.evaluate(
            model, x_val, y_val, train["eval_batch_size"], strategy.precision.autocast
        )
        ctx.log_metrics(step, metrics)
        return metrics

    def flush() -> None:  # the losses still held for reading back
        _flush_losses(ctx, pending, step / plan.steps_per_epoch, None)
        pending.clear()

    def save(tag: str) -> None:
        # Losses first: a checkpoint is never ahead of the stored curve (a resume continues
        # from it and would never log those steps).
        flush()
        ctx.save_checkpoint(snapshot(), step, tag, keep=spec["checkpoint"]["keep"])

    # --- diagnostics and live control: per-node health on measured steps; commands from the
    # run's control file (a resume replays the changes the run recorded, at their steps)
    sync_every = 8 if device.type == "cpu" else 16  # the loss read-back cadence (see below)
    health = Health(
        spec["health"],
        strategy.unwrap(model),
        analysis,
        ctx,
        strategy.precision.scaler,
        strategy.name == "fsdp",
    )
    control = Control(
        ctx,
        strategy,
        optimizer,
        scheduler,
        spec["schedule"],
        total_steps,
        plan.steps_per_epoch,
        step,
        sync_every,
        evaluate,
        save,
        flush,
    )
    total_steps = control.total

    tokens = data.tokens_per_sample
    ctx.log(
        f"{data.name}: {len(x_train)} train / {len(x_val)} val samples; model {analysis.total_params:,} parameters"
        + (f" ({frozen:,} frozen, {trainable:,} trained)" if frozen else "")
        + ", "
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
    ctx.update_summary(
        params=analysis.total_params,
        flops=analysis.total_flops,
        global_batch=plan.global_batch,
        total_steps=total_steps,
        world_size=strategy.world_size,
        strategy=strategy.name,
        dataset=data.summary(),
        **({"trainable_params": trainable, "frozen_params": frozen} if frozen else {}),
    )

    # Losses are read back a few steps at a time (`sync_every`): on CUDA a read stalls the GPU
    # queue, and on a CPU the per-read bookkeeping cost a 1 ms/step model 14% (measured). The
    # count is the same on every rank, because the read is also where the ranks agree to stop.
    pending: list[tuple[int, torch.Tensor, float, dict]] = []
    started, start_step = time.time(), step

    def elapsed() -> float:  # the run's whole active life, over every attempt, pauses left out
        return elapsed_before + time.time() - started - control.paused_s

    def pace() -> float | None:  # this attempt's steps per second: the ETA follows from it
        spent = time.time() - started - control.paused_s
        return (step - start_step) / spent if spent > 0 and step > start_step else None

    utilization = Utilization(ctx, analysis, device, strategy.world_size)  # MFU, GPU memory
    window_t, window_step, window_paused = time.perf_counter(), step, 0.0
    last_eval: dict[str, float] = {}
    stopping = False  # agreed by all ranks, so that they leave the loop at the same step
    model.train()

    while step < total_steps and not stopping:
        # --- forward and backward over the micro-batches of one optimizer step
        micro = plan.micro_batches(step)
        step_loss, step_parts = 0.0, {}
        for i, idx in enumerate(micro):
            xb, yb = x_train[idx], y_train[idx]
            with (
                strategy.no_sync(model, sync=i == len(micro) - 1),
                strategy.precision.autocast(),
                health.watch(step + 1, first=i == 0),
            ):
                loss, parts = loss_fn(model(xb), xb, yb)
                # The gradient of a mean over the global batch: each micro-batch holds 1/accum of it.
                strategy.precision.backward(loss if len(micro) == 1 else loss / len(micro))
            step_loss = loss.detach() if len(micro) == 1 else step_loss + loss.detach() / len(micro)
            for k, v in parts.items():
                step_parts[k] = step_parts.get(k, 0.0) + v.detach() / len(micro)

        # --- clip (after unscaling fp16 gradients back to their true size) and step
        health.gradients(step + 1)  # per node, before clipping: what the loss asked for
        grad_norm = None
        if spec["optim"]["grad_clip"]:
            strategy.precision.unscale(optimizer)
            grad_norm = strategy.clip_grad_norm(model, spec["optim"]["grad_clip"])
        if aux is not None:
            aux.step(strategy)  # before the model's step, which may change the fp16 loss scale
        strategy.precision.step(optimizer)
        health.record(step + 1)  # the update each node took; warnings name the node
        optimizer.zero_grad(set_to_none=True)
        lr = optimizer.param_groups[0]["lr"]  # this step's: the schedule's, or as changed live
        scheduler.step()
        step += 1

        # --- log: every step's loss (averaged over ranks), read back in small groups
        step_parts = {k: strategy.reduce_mean(v) for k, v in step_parts.items()}
        pending.append((step, strategy.reduce_mean(step_loss), lr, step_parts))
        if len(pending) >= sync_every or step == total_steps:
            _flush_losses(ctx, pending, step / plan.steps_per_epoch, grad_norm)
            pending.clear()
            stopping = strategy.any_rank(ctx.stop_requested)
            ctx.progress(step, total_steps, step / plan.steps_per_epoch, elapsed(), pace())
            ctx.share_cpu()  # runs started or ended on this host since: take up the new share
            now = time.perf_counter()
            if now - window_t >= 1.0 or step == total_steps:
                rate = (
                    (step - window_step)
                    * plan.global_batch
                    / (now - window_t - (control.paused_s - window_paused))
                )
                perf = {"perf/samples_per_s": rate} | ({"perf/tokens_per_s": rate * tokens} if tokens else {})
                ctx.log_metrics(step, perf | utilization.window(rate))
                window_t, window_step, window_paused = now, step, control.paused_s

        # --- live changes (pause, LR, length, evaluate or checkpoint now), then evaluate and
        # checkpoint on their cadence
        total_steps = control.at(step)
        if step % eval_every == 0 and step != total_steps:
            last_eval = evaluate()
        if step % ckpt_every == 0 and step != total_steps:
            save("periodic")

    # --- the end: flush, final evaluation, final checkpoint (also when stopped early)
    if stopping:
        ctx.request_stop()  # a stop asked on another rank stops this one too
    flush()
    last_eval = evaluate()
    ctx.save_checkpoint(snapshot(), step, "final" if step == total_steps else "stop")
    ctx.progress(step, total_steps, step / plan.steps_per_epoch, elapsed(), pace())
    strategy.teardown()
    ctx.log(
        f"{'stopped' if ctx.stop_requested else 'finished'} at step {step}: "
        + ", ".join(f"{k} {v:.4g}" for k, v in last_eval.items())
    )
    return {
        "steps": step,
        "epochs": round(step / plan.steps_per_epoch, 3),
        "elapsed_s": round(elapsed(), 3),
        **last_eval,
    }


class AuxTrainer:
    """Trainable modules that belong to the loss, not to the model (distillation's feature
    projection). They step beside the model with the same optimizer settings and schedule but
    in an optimizer of their own, since checkpoints key the model's optimizer state by the
    model's parameter names; they are saved as `aux` in checkpoints so a resume restores them,
    and never become part of the exported model."""

    def __init__(self, module: torch.nn.Module, spec: dict, total_steps: int):
        self.module = module
        self.optimizer = make_optimizer(module, spec["optim"])
        self.scheduler = make_scheduler(self.optimizer, spec["schedule"], total_steps)

    def step(self, strategy) -> None:
        scaler = strategy.precision.scaler
        scale = scaler.get_scale() if scaler else 1.0
        grads = [p.grad for p in self.module.parameters() if p.grad is not None]
        for g in grads:  # averaged over processes like the model's; fp16 loss scale removed
            g.copy_(strategy.reduce_mean(g) / scale)
        if all(bool(torch.isfinite(g).all()) for g in grads):  # an fp16 overflow skips the step
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def state_dict(self) -> dict:
        return {
            "module": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def _flush_losses(ctx: TaskContext, pending, epoch: float, grad_norm) -> None:
    if not pending:
        return
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
