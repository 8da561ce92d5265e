"""The distill task: train a smaller student to imitate a finished run (the teacher).

It reads top to bottom: the data and the student (its graph was settled when the run was
created: a preset that shrinks the teacher, or the spec's own graph), the teacher (in eval
mode, no gradients, measured once), the distillation loss, then the ordinary training loop
(`fit`) with that loss, so the student's curves are like any run's and the soft and hard
parts of the loss are logged beside them. Teacher and student are then measured side by
side, like a prune run's before and after.

Under several processes each one loads its own copy of the teacher from the checkpoint the
spec names: the teacher is replicated, never trained, never synchronised.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from engine.data import load_dataset
from engine.errors import SpecError
from engine.graph.build import build
from engine.graph.model import Graph
from engine.graph.shapes import validate
from engine.lineage import ParentRun
from engine.preflight import check_model_fits
from engine.seed import seed_everything
from engine.tasks import footprint
from engine.tasks.context import TaskContext
from engine.tasks.objectives import Objective
from engine.tasks.train import fit


def run(ctx: TaskContext) -> dict:
    spec, d = ctx.spec, ctx.spec["distill"]
    seed_everything(spec["train"]["seed"], spec["train"]["deterministic"])
    teacher = ParentRun.of(spec)
    data = load_dataset(spec["data"], spec["task"]["objective"])
    if data.objective == "regression":
        raise SpecError.at(
            "distill.teacher", "distillation matches class distributions; this data is a regression task"
        )
    analysis = validate(Graph.from_dict(spec["model"]))
    check_model_fits(teacher.analysis, data)
    check_model_fits(analysis, data)
    objective = Objective(data.objective)
    # Loading the teacher leaves the random numbers alone, so the student starts from the very
    # weights a plain train run of the same graph and seed starts from: the two compare fairly.
    student = build(Graph.from_dict(spec["model"]))

    # --- the teacher: trained weights, eval mode, no gradients; its accuracy logged once
    teacher_model = teacher.build().eval().requires_grad_(False)
    x_val, y_val = torch.as_tensor(data.x_val), torch.as_tensor(data.y_val)
    taught = objective.evaluate(teacher_model, x_val, y_val, spec["train"]["eval_batch_size"], nullcontext)
    if not ctx.resume:  # a resumed run has them from its first attempt (steps up to its checkpoint stay)
        ctx.log_metrics(0, {k.replace("val/", "teacher/"): v for k, v in taught.items()})
    ctx.log(
        f"teacher: run {teacher.id}, {teacher.analysis.total_params:,} parameters, "
        + ", ".join(f"{k} {v:.4g}" for k, v in taught.items())
        + f"; student: {analysis.total_params:,} parameters "
        f"({analysis.total_params / teacher.analysis.total_params:.1%} of the teacher)"
    )

    # --- train the student with the distillation loss
    pair = (d["feature_teacher"], d["feature_student"]) if d["feature_teacher"] else None
    loss = DistillLoss(teacher_model, student, objective, d["temperature"], d["alpha"])
    if pair:
        shapes = (analysis.nodes[pair[1]].out.shape, teacher.analysis.nodes[pair[0]].out.shape)
        loss.match_features(pair, projection(*shapes), d["feature_weight"])
    try:
        result = fit(ctx, student, data, analysis, loss_fn=loss, graph=spec["model"], aux=loss.projection)
    finally:
        loss.close()

    # --- teacher → student, measured together on the CPU
    if ctx.is_main:
        compression = {"parent": teacher.id, "method": "distill", "student": d["student"]}
        compression |= footprint.compare(
            {"before": (teacher_model, teacher.analysis), "after": (student, analysis)}, data, objective
        )
        ctx.update_summary(compression=compression)
    return {**result, **{k.replace("val/", "teacher/"): v for k, v in taught.items()}}


class DistillLoss:
    """α·T²·KL(p_teacher,T ‖ p_student,T) + (1 − α)·task loss, plus β·MSE between a projected
    student feature and a teacher feature when a pair of nodes is given.

    The KL term compares the two temperature-softened distributions (Hinton et al. 2015);
    the T² keeps its gradients on the scale of the task loss's as T changes. Features are
    caught with forward hooks on the named submodules (GraphModule names them by node id)
    and the student's is mapped onto the teacher's by a learned projection: a 1×1
    convolution for images, a linear map of the last axis otherwise. The projection trains
    with the student (as `fit`'s `aux`) but is not part of it.
    """

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        objective: Objective,
        temperature: float,
        alpha: float,
    ):
        self.teacher, self.student, self.objective = teacher, student, objective
        self.temperature, self.alpha, self.weight = temperature, alpha, 0.0
        self.projection: nn.Module | None = None
        self._features: dict[str, torch.Tensor] = {}
        self._hooks = []

    def match_features(self, pair: tuple[str, str], projection: nn.Module, weight: float) -> None:
        """Also pull the student's `pair[1]` output, projected, towards the teacher's `pair[0]`."""
        for side, model, node in (("teacher", self.teacher, pair[0]), ("student", self.student, pair[1])):
            self._hooks.append(getattr(model, node).register_forward_hook(self._catch(side)))
        self.projection, self.weight = projection, weight

    def _catch(self, side: str):
        def hook(module, inputs, output):
            self._features[side] = output

        return hook

    def __call__(self, out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if next(self.teacher.parameters()).device != x.device:
            self.teacher.to(x.device)  # once: the training loop moved the data and the student
        with torch.no_grad():
            teacher_out = self.teacher(x)
        hard = self.objective.loss(out, y)
        soft = soft_loss(out, teacher_out, self.temperature)
        loss = self.alpha * soft + (1 - self.alpha) * hard
        parts = {"soft": soft.detach(), "hard": hard.detach()}
        if self.projection is not None:
            student_feature = self.projection(self._features["student"]).float()
            feature = F.mse_loss(student_feature, self._features["teacher"].float())
            loss = loss + self.weight * feature
            parts["feature"] = feature.detach()
        return loss, parts

    def close(self) -> None:
        """Remove the hooks, so the trained student is a plain model again."""
        for handle in self._hooks:
            handle.remove()
        self._features.clear()


def soft_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(teacher ‖ student) on temperature-softened distributions, averaged per sample
    (per position for a language model)."""
    classes = student_out.shape[-1]
    log_p_student = F.log_softmax(student_out.float().reshape(-1, classes) / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_out.float().reshape(-1, classes) / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    return kl * temperature**2


def projection(student_shape: tuple, teacher_shape: tuple) -> nn.Module:
    """The learned map of a student feature onto a teacher feature (shapes without the batch;
    the spec check already made sure the two fit, see `lineage.projection_problem`)."""
    if len(student_shape) == 3:
        return nn.Conv2d(student_shape[0], teacher_shape[0], kernel_size=1)
    return nn.Linear(student_shape[-1], teacher_shape[-1])
