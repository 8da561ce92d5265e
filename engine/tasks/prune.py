"""The prune task: make a finished run smaller, and measure what that cost.

It reads top to bottom: the parent (its checkpoint, checked against its graph) and the data;
the pruner, with the ratio searched when the target is a budget; `prune.steps` rounds of
prune-then-fine-tune, the fine-tuning done by the training loop (`fit`) so its curves are
like any run's; then parent and child measured side by side (parameters, FLOPs, size, CPU
latency, validation metrics, and int8 when asked), stored as the run's `compression` summary
that `trainbench compare PARENT CHILD` prints.

A stopped or crashed prune run resumes by starting over from its parent: the architecture
changes during the run, so a mid-run checkpoint is no starting point for the pruner.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from engine.data import Dataset, load_dataset
from engine.graph.build import example_input
from engine.graph.shapes import analyze, validate
from engine.graph.shrink import output_head
from engine.lineage import ParentRun
from engine.preflight import check_model_fits
from engine.seed import seed_everything
from engine.tasks import footprint
from engine.tasks.batches import BatchPlan
from engine.tasks.context import TaskContext
from engine.tasks.objectives import Objective
from engine.tasks.pruners import (
    OPAQUE_OPS,
    BudgetPruner,
    PruneError,
    StructuredPruner,
    UnstructuredPruner,
    tied_nodes,
)
from engine.tasks.train import fit

TAYLOR_BATCHES = 8  # training batches whose loss gradient ranks channels for Taylor importance


def run(ctx: TaskContext) -> dict:
    spec, p = ctx.spec, ctx.spec["prune"]
    seed_everything(spec["train"]["seed"], spec["train"]["deterministic"])
    parent = ParentRun.of(spec)
    data = load_dataset(spec["data"], spec["task"]["objective"])
    check_model_fits(parent.analysis, data)
    objective = Objective(data.objective)
    if ctx.resume:
        start_over(ctx)
    if ctx.is_main and ctx.get_run(parent.id)["spec"]["data"] != spec["data"]:
        ctx.log(
            "the data differs from the parent's: the 'before' figures are measured on this run's "
            "validation split, which the parent may have trained on",
            "warning",
        )

    model = parent.build()
    keep = p["keep"] or output_head(parent.graph)
    ctx.log(f"pruning run {parent.id} ({parent.analysis.total_params:,} parameters); kept: {', '.join(keep)}")
    pruner = make_pruner(ctx, model, parent, data, objective, keep)

    # --- prune in steps, fine-tuning after each; the phases' steps continue one another
    epochs = spec["train"]["epochs"] if p["finetune_epochs"] is None else p["finetune_epochs"]
    phase_spec = {**spec, "train": {**spec["train"], "epochs": max(epochs, 1)}}
    total = p["steps"] * phase_steps(phase_spec, data) if epochs else 0
    ctx.events.emit("run_started", name=spec["name"], kind="prune", total_steps=total, resumed_from=0)
    offset, elapsed, result = 0, 0.0, {}
    for k in range(1, p["steps"] + 1):
        graph = pruner.step()
        analysis = validate(graph)
        shape = pruner.describe()
        if k == p["steps"] and shape.get("widths") == {}:
            raise PruneError(
                "structured pruning removed no channel: every layer is kept, opaque "
                f"({', '.join(sorted(OPAQUE_OPS))}) or coupled to one that is, or the ratio is too small "
                "to remove a whole channel; raise prune.ratio, or try method unstructured"
            )
        ctx.log(
            f"pruning step {k}/{p['steps']}: {analysis.total_params:,} parameters, {analysis.total_flops:,} FLOPs"
            + (f", {shape['sparsity']:.2%} of the pruned weights zero" if "sparsity" in shape else "")
        )
        ctx.log_metrics(
            offset,
            {"prune/params": analysis.total_params, "prune/flops": analysis.total_flops}
            | ({"prune/sparsity": shape["sparsity"]} if "sparsity" in shape else {}),
        )
        if epochs:
            phase = PhaseContext(ctx, phase_spec, offset, total, elapsed, last=k == p["steps"])
            result = fit(phase, model, data, analysis, graph=graph.to_dict())
            offset, elapsed = offset + result["steps"], elapsed + result["elapsed_s"]
        if ctx.stop_requested:
            break
    if not epochs:
        result = save_without_finetuning(ctx, model, graph, analysis, data, objective)

    # --- before → after, measured together on the CPU
    compression = {"parent": parent.id, "method": p["method"], "scope": p["scope"], **pruner.describe()}
    if ctx.is_main:
        models = {"before": (parent.build(), parent.analysis), "after": (model, analysis)}
        if p["quantize"]:
            models["int8"] = (footprint.quantize_int8(model), analysis)
            compression["int8_note"] = (
                "measured, not saved: the checkpoint keeps float weights (a quantized model is no plain "
                "state dict of the graph); quantize_dynamic on Linear/LSTM after loading gives these figures"
            )
        compression |= footprint.compare(models, data, objective)
        ctx.update_summary(compression=compression, total_steps=offset)
        _log_tradeoff(ctx, compression)
    return {**result, "steps": offset, **({"elapsed_s": round(elapsed, 3)} if epochs else {})}


def start_over(ctx: TaskContext) -> None:
    """A resumed prune run begins again from its parent: its metrics and checkpoints so far
    go, so none of the earlier attempt's can be mistaken for this one's."""
    ctx.truncate_metrics(after_step=-1)
    ctx.discard_checkpoints()
    ctx.log("a prune run starts over from its parent when resumed")


def make_pruner(ctx, model, parent: ParentRun, data: Dataset, objective: Objective, keep: list[str]):
    spec, p = ctx.spec, ctx.spec["prune"]
    if p["method"] == "unstructured":
        return UnstructuredPruner(model, parent.graph, p["scope"], p["ratio"], p["steps"], keep)
    if tied := tied_nodes(parent.graph):
        ctx.log(f"tied layers keep their widths (they share one tensor): {', '.join(sorted(tied))}")
    example = example_input(parent.analysis, batch=2)
    score = taylor_score(data, objective, spec["train"]["batch_size"])

    def make(m, graph, ratio: float, steps: int = 1) -> StructuredPruner:
        return StructuredPruner(m, graph, example, p["method"], p["scope"], ratio, steps, keep, score)

    if p["target"] == "ratio":
        return make(model, parent.graph, p["ratio"], p["steps"])
    field = f"max_{p['target']}"
    measure = "total_params" if p["target"] == "params" else "total_flops"
    return BudgetPruner(
        model,
        parent.graph,
        make,
        lambda g: getattr(analyze(g), measure),
        p[field],
        p["steps"],
        spec["train"]["seed"],
        f"prune.{field}",
    )


def taylor_score(data: Dataset, objective: Objective, batch_size: int):
    """Accumulates the task loss's gradient over a few training batches, in eval mode so
    BatchNorm's running statistics stay as trained."""
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)

    def score(model: torch.nn.Module) -> None:
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        model.zero_grad(set_to_none=True)
        for i in range(TAYLOR_BATCHES):
            xb, yb = x[i * batch_size : (i + 1) * batch_size], y[i * batch_size : (i + 1) * batch_size]
            if len(xb):
                objective.loss(model(xb.to(device)), yb.to(device)).backward()
        model.train(was_training)

    return score


def phase_steps(spec: dict, data: Dataset) -> int:
    train = spec["train"]
    plan = BatchPlan(len(data.x_train), train["batch_size"], train["grad_accum"], train["seed"])
    return train["max_steps"] or train["epochs"] * plan.steps_per_epoch


def save_without_finetuning(ctx, model, graph, analysis, data: Dataset, objective: Objective) -> dict:
    """With `finetune_epochs` 0 the training loop never runs: evaluate and save here."""
    x_val, y_val = torch.as_tensor(data.x_val), torch.as_tensor(data.y_val)
    metrics = objective.evaluate(model, x_val, y_val, ctx.spec["train"]["eval_batch_size"], nullcontext)
    ctx.log_metrics(0, metrics)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ctx.save_checkpoint({"model": state, "graph": graph.to_dict(), "step": 0, "epoch": 0.0}, 0, "final")
    ctx.update_summary(params=analysis.total_params, flops=analysis.total_flops, dataset=data.summary())
    return {"epochs": 0.0, **metrics}


def _log_tradeoff(ctx, c: dict) -> None:
    before, after = c["before"], c["after"]
    acc = "val/accuracy" if "val/accuracy" in before else "val/loss"
    ctx.log(
        f"parameters {before['params']:,} → {after['params']:,}, FLOPs {before['flops']:,} → {after['flops']:,}, "
        f"latency {before['latency_ms']:.2f} → {after['latency_ms']:.2f} ms "
        f"({before['latency_ms'] / after['latency_ms']:.2f}×), {acc} {before[acc]:.4f} → {after[acc]:.4f}"
    )


class PhaseContext:
    """The run as one fine-tuning phase sees it (a `TaskContext`). `fit` counts steps and time
    from 0 and announces the run's length; a prune run fine-tunes once per pruning step, so this
    gives the phase its own `train.epochs`, shifts its steps and elapsed time past the phases
    before it (the curves and the clock continue instead of starting over), tags all but the
    last phase's final checkpoint `phase`, and leaves announcing the run's length to the prune
    task. Everything else is the run's."""

    resume = False

    def __init__(
        self, ctx: TaskContext, spec: dict, offset: int, total_steps: int, elapsed_s: float, last: bool
    ):
        self._ctx, self.spec, self.offset, self.total_steps, self.last = ctx, spec, offset, total_steps, last
        self.elapsed_s = elapsed_s
        self.events = _Unannounced(ctx.events)

    def __getattr__(self, name: str):
        return getattr(self._ctx, name)

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self._ctx.log_metrics(self.offset + step, values)

    def progress(
        self, step: int, total_steps: int, epoch: float, elapsed_s: float, steps_per_s: float | None
    ) -> None:
        self._ctx.progress(
            self.offset + step, self.total_steps, epoch, self.elapsed_s + elapsed_s, steps_per_s
        )

    def save_checkpoint(self, state: dict, step: int, tag: str = "periodic", keep: int | None = None):
        tag = "phase" if tag == "final" and not self.last else tag
        state = {
            **state,
            "step": self.offset + step,
            "elapsed_s": self.elapsed_s + state.get("elapsed_s", 0.0),
        }
        return self._ctx.save_checkpoint(state, self.offset + step, tag, keep)

    def last_checkpoint(self) -> None:
        return None

    def record_event(self, step: int, kind: str, data: dict) -> None:
        self._ctx.record_event(self.offset + step, kind, data)

    def log_histograms(self, step: int, hists: dict) -> None:
        self._ctx.log_histograms(self.offset + step, hists)


class _Unannounced:
    """The run's event stream without `run_started`: the prune task announces the whole run."""

    def __init__(self, events):
        self._events = events

    def emit(self, event: str, /, **fields) -> None:
        if event != "run_started":
            self._events.emit(event, **fields)

    def __getattr__(self, name: str):
        return getattr(self._events, name)
