"""What the model is trained for: the loss and the validation metrics. A language model's
head is as wide as its tokenizer's vocabulary (`DataInfo.output_size`: 256 bytes, the BPE
`data.vocab_size`, or a tokenizer.json's size), which the preflight checks before training."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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
        """Mean loss over the whole of (x, y), plus accuracy / perplexity / RMSE."""
        batches = ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size))
        return self.evaluate_batches(model, batches, autocast)

    @torch.no_grad()
    def evaluate_batches(self, model, batches, autocast) -> dict[str, float]:
        """Mean loss over the validation batches a batch source gives (the whole split or
        `train.eval_batches` of it), plus accuracy / perplexity / RMSE."""
        was_training = model.training
        model.eval()
        total, correct, count = 0.0, 0, 0
        for xb, yb in batches:
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
