"""What a trained model gets wrong, on its run's validation split, written beside the run.

`evaluate_run(store, run_id)` loads the run's newest checkpoint (its graph and weights, read
with `weights_only`: nothing is unpickled), predicts the whole validation split and writes
`evaluation/evaluation.json` (small figures) and `evaluation/arrays.npz` (arrays) into the
run's artifacts folder:

  classification  confusion matrix (counts, and normalised by true class), per-class precision,
                  recall, F1 and support, and the most confused samples — wrong predictions
                  with the highest confidence — each with its index in the split, true and
                  predicted class, confidence, and a thumbnail (images) or its values (rows)
  regression      predicted and true values (the scatter), residuals and their histogram,
                  RMSE, MAE and R²
  language model  samples generated from a prompt by every checkpoint the run kept
                  (`lm_samples`), with temperature and top-k, so the text can be read as it
                  improved over the run

The GUI shows these files and never computes them (torch stays out of its process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import StoreError, TrainbenchError

CONFUSED = 12  # most confused samples listed
ROW_VALUES = 16  # a table row's first values shown
RESIDUAL_BINS = 30
DEFAULT_SAMPLE = {"temperature": 0.8, "top_k": 40, "length": 200, "seed": 0}


class EvaluationError(TrainbenchError):
    """A run that cannot be evaluated: no checkpoint, or data that no longer loads."""


@dataclass
class Trained:
    """A run's model with its weights, and its data, ready to predict."""

    run: dict
    spec: dict
    model: object  # torch.nn.Module, in eval mode
    analysis: object
    data: object  # engine.data.Dataset
    step: int
    checkpoint: str

    @property
    def folder(self) -> Path:
        return Path(self.checkpoint).parent.parent


def load_trained(store, run_id: int, checkpoint_path: str | None = None) -> Trained:
    """Run `run_id` at its newest checkpoint (or `checkpoint_path`), on the CPU."""
    from engine.data import load_dataset
    from engine.errors import SpecError
    from engine.lineage import open_checkpoint

    run = store.get_run(run_id)
    if run["kind"] == "lr_find":
        raise EvaluationError(f"run {run_id} is an LR sweep; it keeps no model to evaluate")
    path = checkpoint_path
    if path is None:
        row = store.last_checkpoint(run_id)
        if row is None:
            raise EvaluationError(f"run {run_id} has no checkpoint file to evaluate")
        path = row["path"]
    try:
        parent = open_checkpoint(run_id, path, "run")
    except SpecError as err:
        raise EvaluationError(str(err).removeprefix("run: ")) from None
    model = parent.build().eval()
    spec = run["spec"]
    data = load_dataset(spec["data"], spec["task"]["objective"])
    step = next((c["step"] for c in store.checkpoints(run_id) if c["path"] == str(path)), 0)
    return Trained(run, spec, model, parent.analysis, data, step, str(path))


def predict(trained: Trained, batch_size: int = 512):
    """The model's outputs on the whole validation split, as one float tensor."""
    import torch

    x = torch.as_tensor(trained.data.x_val)
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(trained.model(x[i : i + batch_size]).float())
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate_run(
    store, run_id: int, out_dir: Path | None = None, trained: Trained | None = None, **sample
) -> dict:
    """Evaluate and write the files (see the module docstring); returns evaluation.json's content."""
    trained = trained or load_trained(store, run_id)
    out = Path(out_dir) if out_dir else store.artifacts_root / f"run-{run_id}" / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    kind = trained.data.objective
    doc = {"run_id": run_id, "objective": kind, "step": trained.step, "checkpoint": trained.checkpoint}
    arrays: dict[str, np.ndarray] = {}
    if kind == "classification":
        doc.update(classification(trained, out, arrays))
    elif kind == "regression":
        doc.update(regression(trained, arrays))
    else:
        doc["lm_samples"] = lm_samples(store, run_id, trained, **sample)
    np.savez(out / "arrays.npz", **arrays)
    (out / "evaluation.json").write_text(json.dumps(doc, indent=1, allow_nan=False, default=_plain))
    return doc


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


# ------------------------------------------------------------------ classification


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return counts


def per_class(counts: np.ndarray) -> dict[str, list[float]]:
    """Precision, recall, F1 and support of every class (0 where a class is never predicted)."""
    tp = np.diag(counts).astype(np.float64)
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": actual.astype(int).tolist(),
    }


def classification(trained: Trained, out: Path, arrays: dict) -> dict:
    import torch

    from engine.explain.images import save_image

    data = trained.data
    probs = torch.softmax(predict(trained), dim=-1).numpy()
    pred, y = probs.argmax(axis=1), np.asarray(data.y_val)
    counts = confusion(y, pred, len(data.classes))
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    confidence = probs[np.arange(len(pred)), pred]
    wrong = np.flatnonzero(pred != y)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:CONFUSED]
    images = data.x_val.ndim == 4
    samples = []
    for rank, i in enumerate(worst.tolist()):
        item = {
            "index": i,
            "true": data.classes[y[i]],
            "predicted": data.classes[pred[i]],
            "confidence": float(confidence[i]),
            "p_true": float(probs[i, y[i]]),
        }
        if images:
            item["thumbnail"] = save_image(data.x_val[i], out / f"confused-{rank:02d}.png").name
        else:
            item["values"] = [float(v) for v in np.asarray(data.x_val[i]).reshape(-1)[:ROW_VALUES]]
        samples.append(item)
    arrays.update(confusion=counts, normalised=normalised, predicted=pred, probabilities=probs)
    return {
        "classes": list(data.classes),
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "confusion": counts.tolist(),
        "confusion_normalised": normalised.tolist(),
        "per_class": per_class(counts),
        "most_confused": samples,
        "sample_kind": "image" if images else "row",
    }


# ------------------------------------------------------------------ regression


def regression(trained: Trained, arrays: dict) -> dict:
    pred = predict(trained).numpy().reshape(len(trained.data.y_val), -1)
    true = np.asarray(trained.data.y_val, dtype=np.float64).reshape(len(pred), -1)
    residual = pred - true
    counts, edges = (
        np.histogram(residual[:, 0], bins=RESIDUAL_BINS) if len(pred) else (np.zeros(0), np.zeros(0))
    )
    ss_res = float((residual**2).sum())
    ss_tot = float(((true - true.mean(axis=0)) ** 2).sum())
    arrays.update(predicted=pred, true=true, residual=residual)
    return {
        "targets": int(pred.shape[1]),
        "rmse": float(np.sqrt((residual**2).mean())) if len(pred) else 0.0,
        "mae": float(np.abs(residual).mean()) if len(pred) else 0.0,
        "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 0.0,
        "residual_histogram": {"edges": edges.tolist(), "counts": counts.astype(int).tolist()},
    }


# ------------------------------------------------------------------ language models


def lm_samples(
    store,
    run_id: int,
    trained: Trained,
    prompt: str | None = None,
    temperature: float = DEFAULT_SAMPLE["temperature"],
    top_k: int = DEFAULT_SAMPLE["top_k"],
    length: int = DEFAULT_SAMPLE["length"],
    seed: int = DEFAULT_SAMPLE["seed"],
) -> dict:
    """Text generated from `prompt` by every checkpoint the run kept (the same seed for each,
    so the texts differ by what the model learnt). Default prompt: the start of the first
    validation sample."""
    from engine.checkpoint import load
    from engine.graph.build import build
    from engine.graph.model import Graph

    if not 0 < temperature <= 10:
        raise EvaluationError(f"temperature must be > 0 and <= 10, got {temperature:g}")
    if not 1 <= length <= 10_000 or top_k < 0:
        raise EvaluationError("length must be 1..10000 and top_k >= 0")
    context = trained.data.x_val.shape[1]
    if prompt is None:
        prompt = bytes(int(b) for b in trained.data.x_val[0][: context // 2]).decode("utf-8", "replace")
    out = []
    for row in store.checkpoints(run_id):
        if not Path(row["path"]).exists():
            continue
        try:
            state = load(row["path"])
            model = build(Graph.from_dict(state["graph"]))
            model.load_state_dict(state["model"])
        except (StoreError, TrainbenchError, KeyError, RuntimeError) as err:
            out.append({"step": row["step"], "tag": row["tag"], "error": str(err).splitlines()[0]})
            continue
        text = generate(model.eval(), prompt, context, temperature, top_k, length, seed)
        out.append({"step": row["step"], "tag": row["tag"], "text": text})
    return {
        "prompt": prompt,
        "temperature": temperature,
        "top_k": top_k,
        "length": length,
        "seed": seed,
        "samples": out,
    }


def generate(model, prompt: str, context: int, temperature: float, top_k: int, length: int, seed: int) -> str:
    """Sample `length` bytes after `prompt` (the model sees the last `context` of them)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    tokens = list(prompt.encode("utf-8")) or [ord("\n")]
    with torch.no_grad():
        for _ in range(length):
            x = torch.tensor([tokens[-context:]], dtype=torch.long)
            logits = model(x)[0, -1].float() / temperature
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            tokens.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)))
    return bytes(tokens[len(prompt.encode("utf-8")) :]).decode("utf-8", "replace")
