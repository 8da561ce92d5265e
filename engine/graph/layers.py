"""Torch modules for the ops that torch.nn lacks in the form the graph needs.

Kept self-contained (only torch and the standard library), because the PyTorch exporter copies this file's
source into the exported model file so that file runs without Trainbench installed.
"""

import hashlib
import importlib
import importlib.util
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self):
        return f"shape={self.shape}"


class Add(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Concat(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim  # counts the batch dimension

    def forward(self, *xs):
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class PositionalEmbedding(nn.Module):
    def __init__(self, max_len, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def forward(self, x):
        return x + self.weight[: x.shape[1]]

    def extra_repr(self):
        return f"max_len={self.weight.shape[0]}, dim={self.weight.shape[1]}"


class MultiheadSelfAttention(nn.Module):
    """Fused QKV projection and torch's scaled_dot_product_attention (flash kernels on GPU)."""

    def __init__(self, dim, n_heads, causal=True, dropout=0.0):
        super().__init__()
        self.n_heads, self.causal, self.dropout = n_heads, causal, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def extra_repr(self):
        return f"n_heads={self.n_heads}, causal={self.causal}, dropout={self.dropout}"


class TransformerBlock(nn.Module):
    """Pre-norm block (GPT-2 style): x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim, n_heads, causal=True, dropout=0.0, mlp_ratio=4):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = MultiheadSelfAttention(dim, n_heads, causal, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout)
        )
        self.checkpointing = False  # set by the strategy: recompute activations in backward

    def forward(self, x):
        if self.checkpointing and self.training:
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class LSTM(nn.Module):
    """nn.LSTM returning only the per-step outputs, so it composes like any other layer."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False):
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)

    def forward(self, x):
        return self.rnn(x)[0]


class GRU(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False):
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)

    def forward(self, x):
        return self.rnn(x)[0]


class Repeat(nn.Module):
    """`times` copies of a body module applied in sequence; each copy may be checkpointed."""

    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.checkpointing = False

    def forward(self, x):
        for block in self.blocks:
            if self.checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


class HuggingFace(nn.Module):
    """A Hugging Face `transformers` model built from its config's keyword arguments, giving
    the tensor it is trained on — its first output (the logits, or the last hidden state) —
    instead of the output record a graph cannot hold. `target` is the model class
    ("transformers.models.gpt2.modeling_gpt2:GPT2Model"); importing it runs that package."""

    def __init__(self, target: str, config: dict):
        super().__init__()
        module, _, name = target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        self.model = cls(cls.config_class(**config))
        self.reference = {"target": target, "config": config}

    def forward(self, x):
        out = self.model(x, return_dict=False)
        return out[0] if isinstance(out, tuple) else out


def imported_module(target, file=None, kwargs=None):
    """The module an imported node stands for: `target` ("package.module:Name") called with
    `kwargs`. With `file`, the module is that Python file (loaded once per process under a
    name of its own, its folder on the import path while it loads); else an installed one.
    This runs the user's code, so it is called only to build a model, never to show one."""
    module_name, _, attr = target.partition(":")
    module = _load_file(file) if file else importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj(**(kwargs or {}))


def _load_file(path):
    name = "_user_model_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path.remove(folder)
    return module
