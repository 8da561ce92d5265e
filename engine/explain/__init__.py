"""Why a trained model predicts what it does, on chosen validation samples; what
`trainbench explain RUN` computes and writes beside the run (`explain/`), for the GUI to show.

  saliency               |∂ score / ∂ input| (Captum `Saliency`), the largest over channels
  integrated_gradients   Captum `IntegratedGradients` from an all-zero baseline, summed |·|
                         over channels
  gradcam                Captum `LayerGradCam` on the last Conv2d node, upsampled to the input's
                         height × width (image classifiers only)
  attention              the attention weights of every MultiheadSelfAttention layer
                         (TransformerBlocks included) per head: T × T for T input tokens

Attributions explain the predicted class (classification) or the first output (regression).
Arrays go to `explain/attributions.npz` and `explain/attention.npz` (read with
allow_pickle=False), a PNG per sample and map beside them, and `explain/explain.json` lists
what was made. Images get H × W maps; rows of features get one value per feature.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.errors import TrainbenchError
from engine.evaluation import Trained, load_trained, predict

METHODS = ("saliency", "integrated_gradients", "gradcam", "attention")
IG_STEPS = 32
DEFAULT_COUNT = 4
MAX_SAMPLES = 64


class ExplainError(TrainbenchError):
    """Samples or methods that do not fit the run (an index past the split, Grad-CAM on a
    model without a Conv2d)."""


def choose_samples(trained: Trained, indices: list[int] | None, count: int) -> list[int]:
    n = len(trained.data.x_val)
    if indices:
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise ExplainError(f"sample {bad[0]} is not in the validation split (0 … {n - 1})")
        return list(dict.fromkeys(indices))[:MAX_SAMPLES]
    return list(range(min(max(1, count), n, MAX_SAMPLES)))


def applicable(trained: Trained) -> list[str]:
    """The methods that apply to this run's model and data."""
    from engine.explain.attention import attention_layers

    out = []
    if trained.data.input_dtype == "float" and trained.data.objective != "language_model":
        out += ["saliency", "integrated_gradients"]
        if (
            trained.data.x_val.ndim == 4
            and trained.data.objective == "classification"
            and _last_conv(trained)
        ):
            out.append("gradcam")
    if attention_layers(trained.model):
        out.append("attention")
    return out


def _last_conv(trained: Trained) -> str | None:
    convs = [n for n in trained.analysis.order if trained.analysis.nodes[n].op == "Conv2d"]
    return convs[-1] if convs else None


def explain_run(
    store,
    run_id: int,
    indices: list[int] | None = None,
    count: int = DEFAULT_COUNT,
    methods: list[str] | None = None,
    trained: Trained | None = None,
    out_dir: Path | None = None,
) -> dict:
    """Compute `methods` (default: every one that applies) for the chosen samples and write
    them; returns explain.json's content."""
    trained = trained or load_trained(store, run_id)
    can = applicable(trained)
    asked = list(methods) if methods else can
    unknown = [m for m in asked if m not in METHODS]
    if unknown:
        raise ExplainError(f"unknown method {unknown[0]!r}; methods: {', '.join(METHODS)}")
    missing = [m for m in asked if m not in can]
    if missing:
        raise ExplainError(
            f"{missing[0]} does not apply to run {run_id}'s model and data (these do: {', '.join(can) or 'none'})"
        )
    out = Path(out_dir) if out_dir else store.artifacts_root / f"run-{run_id}" / "explain"
    out.mkdir(parents=True, exist_ok=True)
    chosen = choose_samples(trained, indices, count)
    doc = {
        "run_id": run_id,
        "step": trained.step,
        "checkpoint": trained.checkpoint,
        "methods": asked,
        "samples": [],
    }
    doc["samples"] = _samples(trained, chosen)
    if any(m != "attention" for m in asked):
        _attributions(trained, chosen, [m for m in asked if m != "attention"], out, doc)
    if "attention" in asked:
        _attention(trained, chosen, out, doc)
    (out / "explain.json").write_text(json.dumps(doc, indent=1, allow_nan=False))
    return doc


def _samples(trained: Trained, chosen: list[int]) -> list[dict]:
    import torch

    data = trained.data
    outs = predict(trained)
    items = []
    for i in chosen:
        item: dict = {"index": i}
        if data.objective == "classification":
            probs = torch.softmax(outs[i], -1)
            pred = int(probs.argmax())
            item.update(
                true=data.classes[int(data.y_val[i])],
                predicted=data.classes[pred],
                confidence=float(probs[pred]),
            )
        elif data.objective == "regression":
            item.update(true=float(np.ravel(data.y_val[i])[0]), predicted=float(outs[i].reshape(-1)[0]))
        else:
            item["text"] = bytes(int(b) for b in data.x_val[i]).decode("utf-8", "replace")
        items.append(item)
    return items


def _attributions(trained: Trained, chosen: list[int], methods: list[str], out: Path, doc: dict) -> None:
    try:
        from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
    except ImportError:
        raise ExplainError(
            "saliency, integrated gradients and Grad-CAM need Captum: pip install captum"
        ) from None
    import torch

    from engine.explain.images import save_heat, save_image

    data, model = trained.data, trained.model
    x = torch.as_tensor(data.x_val[chosen]).float()
    with torch.no_grad():
        scores = model(x)
    target = (
        scores.argmax(-1) if data.objective == "classification" else torch.zeros(len(x), dtype=torch.long)
    )
    images = x.dim() == 4
    maps: dict[str, np.ndarray] = {}
    for method in methods:
        inputs = x.clone().requires_grad_(True)
        if method == "saliency":
            attr = Saliency(model).attribute(inputs, target=target, abs=True)
            reduce = "max"
        elif method == "integrated_gradients":
            attr = (
                IntegratedGradients(model)
                .attribute(inputs, torch.zeros_like(inputs), target=target, n_steps=IG_STEPS)
                .abs()
            )
            reduce = "sum"
        else:
            layer = getattr(model, _last_conv(trained))
            cam = LayerGradCam(model, layer).attribute(inputs, target=target, relu_attributions=True)
            attr = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")
            reduce = "max"
        attr = attr.detach().float()
        if images:  # one H × W map per sample: the channels reduced
            attr = attr.amax(dim=1) if reduce == "max" else attr.sum(dim=1)
        else:
            attr = attr.reshape(len(x), -1)
        maps[method] = attr.numpy()
    np.savez(
        out / "attributions.npz", inputs=x.numpy(), targets=target.numpy(), indices=np.array(chosen), **maps
    )
    for k, (item, i) in enumerate(zip(doc["samples"], chosen, strict=True)):
        files = {}
        if images:
            files["input"] = save_image(data.x_val[i], out / f"sample-{i}-input.png").name
            for method, m in maps.items():
                files[method] = save_heat(m[k], out / f"sample-{i}-{method}.png", over=data.x_val[i]).name
        item["files"] = files
    doc["attribution_shape"] = list(next(iter(maps.values())).shape[1:]) if maps else []


def _attention(trained: Trained, chosen: list[int], out: Path, doc: dict) -> None:
    import torch

    from engine.explain.attention import attention_maps
    from engine.explain.images import save_heat

    x = torch.as_tensor(trained.data.x_val[chosen])
    maps = {name: m.numpy() for name, m in attention_maps(trained.model, x).items()}
    np.savez(out / "attention.npz", indices=np.array(chosen), **{_npz_key(n): m for n, m in maps.items()})
    layers = []
    for name, m in maps.items():
        files = []
        for k, i in enumerate(chosen):
            files.append(
                [
                    save_heat(m[k, h], out / f"attention-{_npz_key(name)}-h{h}-sample-{i}.png", size=192).name
                    for h in range(m.shape[1])
                ]
            )
        layers.append(
            {
                "layer": name,
                "key": _npz_key(name),
                "heads": int(m.shape[1]),
                "shape": list(m.shape[2:]),
                "files": files,
            }
        )
    doc["attention"] = layers
    if trained.data.input_dtype == "long":
        doc["tokens"] = [
            [chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in trained.data.x_val[i].tolist()]
            for i in chosen
        ]


def _npz_key(layer: str) -> str:
    return layer.replace(".", "_")
