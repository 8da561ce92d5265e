"""How a node's key params are written on its card (numbers in general: engine.format).

Pure formatting, shared by the canvas, the inspector and the summary so they agree.
"""

from __future__ import annotations

from engine.graph import OpDef

_SHORT = {
    "out_channels": "out",
    "out_features": "out",
    "kernel_size": "k",
    "stride": "s",
    "padding": "pad",
    "groups": "groups",
    "num_embeddings": "vocab",
    "embedding_dim": "dim",
    "n_heads": "heads",
    "hidden_size": "hidden",
    "num_layers": "layers",
    "output_size": "size",
    "mlp_ratio": "mlp×",
    "times": "×",
}


def key_params(op: OpDef, params: dict, limit: int = 3) -> str:
    """The params worth showing on a node: its first two, then any others set away from the
    default; graph-valued and empty ones are left out."""
    shown: list[str] = []
    for i, f in enumerate(op.params):
        if f.kind == "graph":
            continue
        value = params.get(f.name, None if f.required else f.default)
        leading = i < 2 and f.kind not in ("bool", "choice")
        if value is None or (not leading and value == f.default):
            continue
        if f.kind == "bool":
            shown.append(f.name if value else f"no {f.name}")
        else:
            shown.append(f"{_SHORT.get(f.name, f.name)} {_value(value)}")
        if len(shown) == limit:
            break
    return " · ".join(shown)


def _value(v) -> str:
    if isinstance(v, list | tuple):
        return "×".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
