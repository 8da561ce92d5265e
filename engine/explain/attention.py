"""Attention maps per layer and head of every MultiheadSelfAttention in a model (also those
inside TransformerBlocks and Repeat copies), recomputed from each attention module's input
exactly as its forward computes them: softmax(q·kᵀ/√d) with the causal mask when it has one.
(The forward itself calls scaled_dot_product_attention, which never forms the weights.)"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from engine.graph.layers import MultiheadSelfAttention


def attention_layers(model: nn.Module) -> dict[str, MultiheadSelfAttention]:
    """Attention modules by a readable name: the module path without GraphModule's wrapping
    (`blocks.0.block` for the first copy of a Repeat's TransformerBlock)."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, MultiheadSelfAttention):
            out[_label(name)] = module
    return out


def _label(path: str) -> str:
    """`blocks.blocks.0.block.attn` → `blocks.0.block`: a Repeat's copies by index, a
    TransformerBlock by its node id."""
    parts = path.split(".")
    if len(parts) > 1 and parts[-1] == "attn":
        parts = parts[:-1]
    kept = [
        p
        for i, p in enumerate(parts)
        if not (p == "blocks" and i + 1 < len(parts) and parts[i + 1].isdigit())
    ]
    return ".".join(kept)


def weights(module: MultiheadSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, T, T) attention weights of `module` for its input `x` (batch, T, dim)."""
    b, t, d = x.shape
    qkv = module.qkv(x).view(b, t, 3, module.n_heads, d // module.n_heads).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d // module.n_heads)
    if module.causal:
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    return F.softmax(scores.float(), dim=-1)


def attention_maps(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{layer: (batch, heads, T, T)} for one forward of `model` on `x`."""
    layers = attention_layers(model)
    maps: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def take(module, inputs, _out):
            maps[name] = weights(module, inputs[0].detach())

        return take

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: maps[n] for n in layers if n in maps}
