"""What the model is trained for: the loss, the validation metrics, and whether a model's
input and output fit the data at all (checked before any training starts)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.data import Dataset
from engine.errors import SpecError
from engine.graph.shapes import Analysis


class Objective:
    def __init__(self, kind: str):
        self.kind = kind  # classification | regression | language_model

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "classification":
            return F.cross_entropy(out.float(), y)
        if self.kind == "language_model":
            return F.cross_entropy(out.float().reshape(-1, out.shape[-1]), y.reshape(-1))
        return F.mse_loss(out.float(), y)

    @torch.no_grad()
    def evaluate(
        self, model, x: torch.Tensor, y: torch.Tensor, batch_size: int, autocast
    ) -> dict[str, float]:
        """Mean loss over the whole validation split, plus accuracy / perplexity / RMSE."""
        was_training = model.training
        model.eval()
        total, correct, count = 0.0, 0, 0
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            with autocast():
                out = model(xb)
            total += self.loss(out, yb).item() * len(xb)
            count += len(xb)
            if self.kind == "classification":
                correct += (out.argmax(-1) == yb).sum().item()
        model.train(was_training)
        loss = total / count
        metrics = {"val/loss": loss}
        if self.kind == "classification":
            metrics["val/accuracy"] = correct / count
        elif self.kind == "language_model":
            metrics["val/perplexity"] = math.exp(min(loss, 50.0))
        else:
            metrics["val/rmse"] = math.sqrt(loss)
        return metrics


def check_model_fits(analysis: Analysis, data: Dataset) -> None:
    """The graph's input must take one data sample and its output must match the target."""
    problems = []
    inp, out = analysis.input_type, analysis.output_type
    if inp is None:
        problems.append(("model", "needs exactly one Input node"))
    elif inp.shape != data.input_shape or inp.dtype != data.input_dtype:
        problems.append(
            (
                "model",
                f"the Input takes {inp} but {data.name} samples are {'×'.join(map(str, data.input_shape))} {data.input_dtype}",
            )
        )
    if out is not None:
        want = {
            "classification": (data.output_size,),
            "regression": (data.output_size,),
            "language_model": (data.tokens_per_sample, 256),
        }[data.objective]
        if out.shape != want:
            what = {
                "classification": f"one score per class ({data.output_size} classes)",
                "regression": f"{data.output_size} target value(s)",
                "language_model": f"{want[0]}×256 (a next-byte score for every position)",
            }[data.objective]
            problems.append(("model", f"the output is {out}, but {data.name} needs {what}"))
    if problems:
        raise SpecError(problems)
