"""The op registry: every op declared once.

An entry holds the op's parameters (engine `Field`s: type, default, range, help), how many
inputs it takes, its shape rule, its parameter and FLOP counts, the activation memory it
saves for backward, its traits (what pruning and the depth preset may do with it), and the
constructor of the torch module that implements it. Shape inference, the builder, the
exporter, the memory estimate, pruning, the GUI's palette and inspector and the docs' op
table all read this one table; adding an op is one `_op(...)` call. Nothing here imports
torch.

Shapes leave out the batch dimension: images are (C, H, W), sequences (T, D), vectors (F,).
FLOPs count one multiply-add as 2, per sample, forward only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.fields import Field


class ShapeError(ValueError):
    """Raised by a shape rule; shape inference attaches the node id."""


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: str = "float"  # float | long

    def __str__(self) -> str:
        s = "×".join(str(d) for d in self.shape)
        return s if self.dtype == "float" else f"{s} {self.dtype}"


@dataclass(frozen=True)
class ActivationUse:
    """Elements one sample of a node holds, for the memory estimate. `saved`: what its inner
    ops keep for backward beyond the node's own inputs and output (which `OpDef.keeps` says),
    at the precision it computes in (bf16/fp16 under autocast), of which `residual` elements
    at its input's precision (a residual stream stays fp32 under autocast); `largest`: the
    largest single tensor among them; `live`: the most it holds at once under no_grad
    (evaluation), of which `live_residual` at its input's precision; `grad`: what its backward
    holds beyond its output's and inputs' gradients; `index_bytes`: bytes kept whatever the
    precision (pooling indices, dropout masks, normalization statistics)."""

    saved: int
    largest: int
    live: int
    residual: int = 0
    grad: int = 0
    index_bytes: int = 0
    live_residual: int = 0


# A rule gets the op's validated params and its input types, in port order.
ShapeRule = Callable[[dict, list[TensorType]], TensorType]
CountRule = Callable[[dict, list[TensorType], TensorType], int]
MemoryRule = Callable[[dict, list[TensorType], TensorType], ActivationUse]
# ("nn.Conv2d" | "layers.Name", kwargs): used by both the builder and the code exporter.
CtorRule = Callable[[dict, list[TensorType]], tuple[str, dict]]
# {parameter name: shape} of the module's own parameters (`weight`, `bias`): what a graph-level
# `tie` is checked against without building anything.
WeightsRule = Callable[[dict, list[TensorType], TensorType], dict[str, tuple[int, ...]]]

# What an op's traits tell the code that transforms graphs and models:
#   opaque  structured pruning leaves its output width whole (inner widths no param expresses
#           one by one, or a torch-pruning handler that fails on it); unstructured pruning and
#           int8 quantization still reach it
#   deep    its weights transform features although it declares no `width` (what makes a block
#           worth dropping for the half-depth student; norms and embeddings do not)
#   unit    activation checkpointing recomputes it as one unit, and FSDP shards it as one (the
#           copies of a body are units too)
TRAITS = frozenset({"opaque", "deep", "unit"})
# What autograd keeps of a node for its backward (`OpDef.keeps`): the tensors it reads
# ("input": Linear, convolutions, norms, GELU), its result ("output": ReLU, Tanh, Softmax),
# or "none" (sums, average pooling); a "view" shares its input's memory (Flatten, Reshape).
KEEPS = frozenset({"input", "output", "none", "view"})
# Its output's precision under autocast (`OpDef.autocast`): "low" (matrix products: bf16 or
# fp16), "fp32" (fp32 weights added or looked up: embeddings), "fp32_cuda" (autocast's fp32
# list on CUDA: layer norm, softmax; on a CPU they keep their input's), "follow" (its widest
# input's).
AUTOCAST = frozenset({"low", "fp32", "fp32_cuda", "follow"})
# Inputs of one variadic op (Add, Concat): more ports than any model needs, few enough that a
# port number in a file can never make the analysis count to 10^9.
MAX_INPUTS = 64
# The largest width (channels, features, hidden units) a param may declare: 2^20.
MAX_WIDTH = 1 << 20


@dataclass(frozen=True)
class OpDef:
    name: str
    category: str
    help: str
    params: tuple[Field, ...] = ()
    min_inputs: int = 1
    max_inputs: int | None = 1  # None: any number (Add, Concat)
    shape: ShapeRule = lambda p, ins: ins[0]
    n_params: CountRule = lambda p, ins, out: 0
    flops: CountRule = lambda p, ins, out: 0
    ctor: CtorRule | None = None
    memory: MemoryRule | None = None  # default: it saves its output (see `activation_use`)
    traits: frozenset = field(default_factory=frozenset)
    # The param that sets the output width (channels, features, hidden size): what pruning
    # rewrites after removing channels and what the half-width student preset halves.
    width: str | None = None
    # A block op holds a sub-graph in its `body` param, stacked `copies` (a param name) times:
    # shapes analyse the body with the op's input, the builder and the exporter build one
    # module per copy and hand them to the ctor's class, the memory estimate walks the body.
    body: str | None = None
    copies: str | None = None
    weights: WeightsRule | None = None
    keeps: str = "output"  # see KEEPS
    autocast: str = "follow"  # see AUTOCAST

    def __post_init__(self):
        object.__setattr__(self, "traits", frozenset(self.traits))
        unknown = self.traits - TRAITS
        if unknown:
            raise ValueError(f"op {self.name}: unknown traits {sorted(unknown)}")
        if self.keeps not in KEEPS or self.autocast not in AUTOCAST:
            raise ValueError(f"op {self.name}: keeps {self.keeps!r} / autocast {self.autocast!r} unknown")

    def field(self, name: str) -> Field:
        return next(f for f in self.params if f.name == name)

    def defaults(self) -> dict:
        return {f.name: f.default for f in self.params if not f.required}

    @property
    def variadic(self) -> bool:
        return self.max_inputs is None

    @property
    def port_limit(self) -> int:
        """Ports a node of this op may have connected (MAX_INPUTS for a variadic op)."""
        return MAX_INPUTS if self.max_inputs is None else self.max_inputs

    @property
    def transforms_features(self) -> bool:
        """Whether its weights transform features: a width-setting layer, a `deep` op or a block."""
        return bool(self.width) or "deep" in self.traits or self.body is not None

    def activation_use(self, params: dict, inputs: list[TensorType], out: TensorType) -> ActivationUse:
        if self.memory is not None:
            return self.memory(params, inputs, out)
        n = numel(out.shape)
        return ActivationUse(0, n, sum(numel(t.shape) for t in inputs) + n)


OPS: dict[str, OpDef] = {}


def _op(**kw) -> OpDef:
    op = OpDef(**kw)
    OPS[op.name] = op
    return op


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


# ---------------------------------------------------------------- shape helpers


def _float(t: TensorType) -> None:
    if t.dtype != "float":
        raise ShapeError(f"expects float input, got {t.dtype} ({t}); put an Embedding first")


def _rank(t: TensorType, ranks: tuple[int, ...], what: str) -> None:
    if len(t.shape) not in ranks:
        want = " or ".join(f"{r}-d" for r in ranks)
        raise ShapeError(f"expects {what} ({want} without the batch), got shape {t}")


def _check_declared(p: dict, key: str, actual: int, what: str) -> int:
    """Channel/feature counts are inferred; a declared one must match the input."""
    declared = p.get(key)
    if declared is not None and declared != actual:
        raise ShapeError(f"expects {declared} {what}, got {actual}")
    return actual


def _conv_len(n: int, k: int, s: int, pad: int, dil: int = 1) -> int:
    return (n + 2 * pad - dil * (k - 1) - 1) // s + 1


def _with_bias(p: dict, weight: tuple[int, ...], width: int) -> dict[str, tuple[int, ...]]:
    return {"weight": weight, **({"bias": (width,)} if p["bias"] else {})}


def _affine(width: int) -> dict[str, tuple[int, ...]]:
    return {"weight": (width,), "bias": (width,)}


def _elementwise(
    name: str, help: str, flops_per: int = 1, ctor: str | None = None, keeps: str = "output"
) -> OpDef:
    return _op(
        name=name,
        category="Activation",
        help=help,
        flops=lambda p, ins, out: flops_per * numel(out.shape),
        ctor=lambda p, ins: (ctor or f"nn.{name}", {}),
        keeps=keeps,
    )


def _width(name: str, default: int, help: str, optional: bool = False) -> Field:
    return Field(name, "int", default, help, min=1, max=MAX_WIDTH, optional=optional)


def _out_channels(label: str = "output channels") -> Field:
    return _width("out_channels", 16, f"number of {label}")


def _in_channels() -> Field:
    return _width("in_channels", None, "input channels; inferred from the input when empty", optional=True)


def _kernel(default: int = 3) -> Field:
    return Field("kernel_size", "int", default, "kernel size", min=1, max=1024)


def _eps() -> Field:
    return Field(
        "eps", "float", 1e-5, "added to the variance for stability", min=0, max=1, min_exclusive=True
    )


# ---------------------------------------------------------------- input


def _input_shape(p, ins):
    if p["shape"] is None:
        raise ShapeError("needs a shape (the sample shape without the batch dimension)")
    return TensorType(tuple(p["shape"]), p["dtype"])


_op(
    name="Input",
    category="Input",
    help="The model's input: one sample's shape without the batch dimension. "
    "Inside a Repeat body the shape is taken from the Repeat's input.",
    params=(
        Field(
            "shape",
            "ints",
            None,
            "sample shape, e.g. [1, 8, 8] for an image, [64] for 64 tokens",
            min=1,
            max=1 << 24,
            optional=True,
            max_items=6,
        ),
        Field(
            "dtype",
            "choice",
            "float",
            "float for features and images, long for token ids",
            choices=("float", "long"),
        ),
    ),
    min_inputs=0,
    max_inputs=0,
    shape=_input_shape,
    keeps="none",  # the batch itself: the memory estimate counts it apart
)

# ---------------------------------------------------------------- dense


def _linear_shape(p, ins):
    x = ins[0]
    _float(x)
    _rank(x, (1, 2, 3), "features on the last axis")
    _check_declared(p, "in_features", x.shape[-1], "input features")
    return TensorType(x.shape[:-1] + (p["out_features"],))


_op(
    name="Linear",
    category="Dense",
    help="Fully connected layer on the last axis.",
    params=(
        _width("out_features", 64, "number of output features"),
        _width("in_features", None, "input features; inferred when empty", optional=True),
        Field("bias", "bool", True, "learn an additive bias"),
    ),
    shape=_linear_shape,
    n_params=lambda p, ins, out: (
        ins[0].shape[-1] * p["out_features"] + (p["out_features"] if p["bias"] else 0)
    ),
    flops=lambda p, ins, out: 2 * numel(ins[0].shape) * p["out_features"],
    ctor=lambda p, ins: (
        "nn.Linear",
        {"in_features": ins[0].shape[-1], "out_features": p["out_features"], "bias": p["bias"]},
    ),
    width="out_features",
    weights=lambda p, ins, out: _with_bias(p, (p["out_features"], ins[0].shape[-1]), p["out_features"]),
    keeps="input",
    autocast="low",
)

# ---------------------------------------------------------------- convolution


def _conv_params(extra=()):
    return (
        _out_channels(),
        _kernel(),
        Field("stride", "int", 1, "step between kernel positions", min=1, max=1024),
        Field("padding", "int", 0, "zero padding on each side", min=0, max=1024),
        Field(
            "groups",
            "int",
            1,
            "grouped convolution: in and out channels must divide by it",
            min=1,
            max=MAX_WIDTH,
        ),
        Field("bias", "bool", True, "learn an additive bias"),
        _in_channels(),
        *extra,
    )


def _conv_shape(dims: int):
    def rule(p, ins):
        x = ins[0]
        _float(x)
        _rank(x, (dims + 1,), "channels × length" if dims == 1 else "channels × height × width")
        c = _check_declared(p, "in_channels", x.shape[0], "input channels")
        g = p["groups"]
        if c % g or p["out_channels"] % g:
            raise ShapeError(
                f"groups={g} must divide input channels ({c}) and out_channels ({p['out_channels']})"
            )
        spatial = tuple(_conv_len(n, p["kernel_size"], p["stride"], p["padding"]) for n in x.shape[1:])
        if min(spatial) < 1:
            raise ShapeError(
                f"kernel {p['kernel_size']} with padding {p['padding']} does not fit input {x} (output would be {spatial})"
            )
        return TensorType((p["out_channels"],) + spatial)

    return rule


def _conv_weights(p, ins, dims):
    return ins[0].shape[0] // p["groups"] * p["out_channels"] * p["kernel_size"] ** dims


def _conv_ctor(dims):
    def ctor(p, ins):
        return (
            f"nn.Conv{dims}d",
            {
                "in_channels": ins[0].shape[0],
                "out_channels": p["out_channels"],
                "kernel_size": p["kernel_size"],
                "stride": p["stride"],
                "padding": p["padding"],
                "groups": p["groups"],
                "bias": p["bias"],
            },
        )

    return ctor


for _dims in (1, 2):
    _op(
        name=f"Conv{_dims}d",
        category="Convolution",
        help=f"{_dims}-d convolution over {'(C, L) sequences' if _dims == 1 else '(C, H, W) images'}.",
        params=_conv_params(),
        shape=_conv_shape(_dims),
        n_params=lambda p, ins, out, d=_dims: (
            _conv_weights(p, ins, d) + (p["out_channels"] if p["bias"] else 0)
        ),
        flops=lambda p, ins, out, d=_dims: 2 * _conv_weights(p, ins, d) * numel(out.shape[1:]),
        ctor=_conv_ctor(_dims),
        width="out_channels",
        weights=lambda p, ins, out, d=_dims: _with_bias(
            p,
            (p["out_channels"], ins[0].shape[0] // p["groups"]) + (p["kernel_size"],) * d,
            p["out_channels"],
        ),
        keeps="input",
        autocast="low",
        # oneDNN (and cuDNN) compute into an output of their own layout, then reorder it
        memory=lambda p, ins, out: ActivationUse(
            0, numel(out.shape), numel(ins[0].shape) + 2 * numel(out.shape)
        ),
    )


def _pool_shape(p, ins):
    x = ins[0]
    _rank(x, (3,), "channels × height × width")
    stride = p["stride"] or p["kernel_size"]
    h, w = (_conv_len(n, p["kernel_size"], stride, p["padding"]) for n in x.shape[1:])
    if p["padding"] * 2 > p["kernel_size"]:
        raise ShapeError(f"padding {p['padding']} must be at most half the kernel ({p['kernel_size']})")
    if h < 1 or w < 1:
        raise ShapeError(f"kernel {p['kernel_size']} does not fit input {x}")
    return TensorType((x.shape[0], h, w))


for _name, _help in (("MaxPool2d", "Maximum over each window."), ("AvgPool2d", "Mean over each window.")):
    _op(
        name=_name,
        category="Pooling",
        help=_help,
        params=(
            _kernel(2),
            Field(
                "stride",
                "int",
                None,
                "step between windows; the kernel size when empty",
                min=1,
                max=1024,
                optional=True,
            ),
            Field("padding", "int", 0, "padding on each side", min=0, max=512),
        ),
        shape=_pool_shape,
        flops=lambda p, ins, out: numel(out.shape) * p["kernel_size"] ** 2,
        ctor=lambda p, ins, n=_name: (
            f"nn.{n}",
            {
                "kernel_size": p["kernel_size"],
                "stride": p["stride"] or p["kernel_size"],
                "padding": p["padding"],
            },
        ),
        # max pooling keeps its input and where each maximum was (int64); averaging keeps nothing
        keeps="input" if _name == "MaxPool2d" else "none",
        memory=(
            lambda p, ins, out: ActivationUse(
                0, numel(out.shape), numel(ins[0].shape) + numel(out.shape), index_bytes=8 * numel(out.shape)
            )
        )
        if _name == "MaxPool2d"
        else None,
    )


def _adaptive_shape(p, ins):
    x = ins[0]
    _rank(x, (3,), "channels × height × width")
    return TensorType((x.shape[0], p["output_size"], p["output_size"]))


_op(
    name="AdaptiveAvgPool2d",
    category="Pooling",
    help="Mean pooling to a fixed output size, whatever the input size (1 = global average pooling).",
    params=(Field("output_size", "int", 1, "output height and width", min=1, max=4096),),
    shape=_adaptive_shape,
    flops=lambda p, ins, out: numel(ins[0].shape),
    ctor=lambda p, ins: ("nn.AdaptiveAvgPool2d", {"output_size": p["output_size"]}),
    keeps="none",
)

# ---------------------------------------------------------------- normalization


def _bn_shape(ranks, what):
    def rule(p, ins):
        _float(ins[0])
        _rank(ins[0], ranks, what)
        return ins[0]

    return rule


_op(
    name="BatchNorm1d",
    category="Normalization",
    help="Batch normalization over features (F,) or channels of (C, L).",
    params=(_eps(),),
    shape=_bn_shape((1, 2), "features or channels × length"),
    n_params=lambda p, ins, out: 2 * ins[0].shape[0],
    flops=lambda p, ins, out: 2 * numel(out.shape),
    ctor=lambda p, ins: ("nn.BatchNorm1d", {"num_features": ins[0].shape[0], "eps": p["eps"]}),
    weights=lambda p, ins, out: _affine(ins[0].shape[0]),
    keeps="input",
)
_op(
    name="BatchNorm2d",
    category="Normalization",
    help="Batch normalization over the channels of (C, H, W).",
    params=(_eps(),),
    shape=_bn_shape((3,), "channels × height × width"),
    n_params=lambda p, ins, out: 2 * ins[0].shape[0],
    flops=lambda p, ins, out: 2 * numel(out.shape),
    ctor=lambda p, ins: ("nn.BatchNorm2d", {"num_features": ins[0].shape[0], "eps": p["eps"]}),
    weights=lambda p, ins, out: _affine(ins[0].shape[0]),
    keeps="input",
)
_op(
    name="LayerNorm",
    category="Normalization",
    help="Layer normalization over the last axis.",
    params=(_eps(),),
    shape=_bn_shape((1, 2, 3), "features on the last axis"),
    n_params=lambda p, ins, out: 2 * ins[0].shape[-1],
    flops=lambda p, ins, out: 5 * numel(out.shape),
    ctor=lambda p, ins: ("nn.LayerNorm", {"normalized_shape": ins[0].shape[-1], "eps": p["eps"]}),
    weights=lambda p, ins, out: _affine(ins[0].shape[-1]),
    keeps="input",
    autocast="fp32_cuda",
    # its input, and a mean and an inverse deviation (fp32) per row
    memory=lambda p, ins, out: ActivationUse(
        0, numel(out.shape), 2 * numel(out.shape), index_bytes=8 * numel(out.shape) // ins[0].shape[-1]
    ),
)
_op(
    name="Dropout",
    category="Regularization",
    help="Zeroes a random fraction of values while training.",
    params=(Field("p", "float", 0.1, "probability of zeroing a value", min=0, max=0.99),),
    ctor=lambda p, ins: ("nn.Dropout", {"p": p["p"]}),
    keeps="none",  # but its mask, one byte a value
    memory=lambda p, ins, out: ActivationUse(
        0, numel(out.shape), 2 * numel(out.shape), index_bytes=numel(out.shape) if p["p"] else 0
    ),
)

# ---------------------------------------------------------------- activations

_elementwise("ReLU", "max(0, x).")
_elementwise("GELU", "Gaussian error linear unit, the transformer default.", 8, keeps="input")
_elementwise("SiLU", "x · sigmoid(x), also called swish.", 4, keeps="input")
_elementwise("Tanh", "Hyperbolic tangent.", 4)
_elementwise("Sigmoid", "Logistic function.", 4)
_op(
    name="Softmax",
    category="Activation",
    help="Normalizes the last axis to probabilities. Leave it out before a classification loss, "
    "which applies it itself.",
    shape=lambda p, ins: ins[0],
    flops=lambda p, ins, out: 3 * numel(out.shape),
    ctor=lambda p, ins: ("nn.Softmax", {"dim": -1}),
    autocast="fp32_cuda",
)

# ---------------------------------------------------------------- shape ops


_op(
    name="Flatten",
    category="Reshape",
    help="Flattens a sample to a vector.",
    shape=lambda p, ins: TensorType((numel(ins[0].shape),), ins[0].dtype),
    ctor=lambda p, ins: ("nn.Flatten", {}),
    keeps="view",
)


def _reshape_shape(p, ins):
    x, target = ins[0], list(p["shape"])
    if target.count(-1) > 1:
        raise ShapeError("at most one dimension may be -1")
    if 0 in target:
        raise ShapeError(f"dimensions are positive (or one -1), got {p['shape']}")
    known = numel(tuple(d for d in target if d != -1))
    if -1 in target:
        if numel(x.shape) % known:
            raise ShapeError(f"cannot reshape {x} ({numel(x.shape)} values) to {target}")
        target[target.index(-1)] = numel(x.shape) // known
    if numel(tuple(target)) != numel(x.shape):
        raise ShapeError(
            f"cannot reshape {x} ({numel(x.shape)} values) to {p['shape']} ({numel(tuple(target))} values)"
        )
    return TensorType(tuple(target), x.dtype)


_op(
    name="Reshape",
    category="Reshape",
    help="Reshapes a sample; one dimension may be -1 to be inferred.",
    params=(
        Field(
            "shape",
            "ints",
            [-1],
            "target sample shape without the batch dimension",
            min=-1,
            max=1 << 24,
            max_items=6,
        ),
    ),
    shape=_reshape_shape,
    ctor=lambda p, ins: ("layers.Reshape", {"shape": list(_reshape_shape(p, ins).shape)}),
    keeps="view",
)

# ---------------------------------------------------------------- sequence


def _embedding_shape(p, ins):
    x = ins[0]
    if x.dtype != "long":
        raise ShapeError(f"expects token ids (an Input with dtype long), got float {x}")
    _rank(x, (1,), "a sequence of token ids")
    return TensorType(x.shape + (p["embedding_dim"],))


_op(
    name="Embedding",
    category="Sequence",
    help="Looks up a learned vector for each token id.",
    params=(
        Field("num_embeddings", "int", 256, "vocabulary size (256 for byte-level text)", min=1, max=1 << 24),
        _width("embedding_dim", 64, "size of each vector"),
    ),
    shape=_embedding_shape,
    n_params=lambda p, ins, out: p["num_embeddings"] * p["embedding_dim"],
    ctor=lambda p, ins: (
        "nn.Embedding",
        {"num_embeddings": p["num_embeddings"], "embedding_dim": p["embedding_dim"]},
    ),
    width="embedding_dim",
    weights=lambda p, ins, out: {"weight": (p["num_embeddings"], p["embedding_dim"])},
    keeps="input",  # the token ids
    autocast="fp32",
)


def _seq(x: TensorType) -> tuple[int, int]:
    _float(x)
    _rank(x, (2,), "a sequence (length × features)")
    return x.shape


def _posemb_shape(p, ins):
    t, _ = _seq(ins[0])
    if t > p["max_len"]:
        raise ShapeError(f"sequence length {t} exceeds max_len {p['max_len']}")
    return ins[0]


_op(
    name="PositionalEmbedding",
    category="Sequence",
    help="Adds a learned vector for each position of a (T, D) sequence.",
    params=(Field("max_len", "int", 512, "longest sequence it can embed", min=1, max=1 << 20),),
    shape=_posemb_shape,
    n_params=lambda p, ins, out: p["max_len"] * ins[0].shape[-1],
    flops=lambda p, ins, out: numel(out.shape),
    ctor=lambda p, ins: ("layers.PositionalEmbedding", {"max_len": p["max_len"], "dim": ins[0].shape[-1]}),
    traits={"opaque"},
    weights=lambda p, ins, out: {"weight": (p["max_len"], ins[0].shape[-1])},
    keeps="none",
    autocast="fp32",
)


def _heads(p, d: int) -> None:
    if d % p["n_heads"]:
        raise ShapeError(f"model width {d} is not divisible by n_heads={p['n_heads']}")


def _attn_shape(p, ins):
    _, d = _seq(ins[0])
    _heads(p, d)
    return ins[0]


def _attn_flops(t: int, d: int, causal: bool) -> int:
    """QKV projection, scores (Q·Kᵀ), weighted values (A·V) and the output projection. A causal
    query i attends to i + 1 keys, so the two score products cover T(T+1)/2 of the T×T pairs
    (what causal kernels compute; torch's FlopCounterMode counts all T² whatever the mask)."""
    pairs = t * (t + 1) // 2 if causal else t * t
    return 2 * t * d * 3 * d + 2 * 2 * pairs * d + 2 * t * d * d


_ATTN_PARAMS = (
    Field("n_heads", "int", 4, "attention heads; must divide the model width", min=1, max=1024),
    Field("causal", "bool", True, "each position sees only earlier ones (language models)"),
    Field("dropout", "float", 0.0, "dropout on attention weights and outputs", min=0, max=0.99),
)

_op(
    name="MultiheadSelfAttention",
    category="Sequence",
    help="Scaled dot-product self-attention over a (T, D) sequence.",
    params=_ATTN_PARAMS,
    shape=_attn_shape,
    n_params=lambda p, ins, out: 4 * ins[0].shape[-1] ** 2 + 4 * ins[0].shape[-1],
    flops=lambda p, ins, out: _attn_flops(*ins[0].shape, p["causal"]),
    # kept: Q/K/V (one tensor) and the attention output, which SDPA lays out so that the
    # projection reads it as a view; its backward: the gradients of Q/K/V and of the scores' rows
    memory=lambda p, ins, out: ActivationUse(
        4 * numel(out.shape),
        3 * numel(out.shape),
        5 * numel(out.shape),
        grad=4 * numel(out.shape),
        live_residual=numel(out.shape),
    ),
    ctor=lambda p, ins: ("layers.MultiheadSelfAttention", {"dim": ins[0].shape[-1], **p}),
    traits={"opaque", "deep"},
    keeps="input",
    autocast="low",
)


def _block_memory(p, t: int, d: int) -> ActivationUse:
    r = p["mlp_ratio"]
    # kept beyond its input: both norms' outputs, Q/K/V, the attention output, the MLP's
    # hidden layer before and after the activation, and the residual between the halves (at
    # the input's precision); its backward holds the gradients of the residual and of the
    # hidden layer. Live under no_grad: the input, the residual, the second norm's output and
    # the hidden layer twice.
    return ActivationUse(
        (7 + 2 * r) * t * d,
        r * t * d,
        (3 + 2 * r) * t * d,
        residual=t * d,
        grad=(1 + r) * t * d,
        live_residual=3 * t * d,
    )


def _block_params(p, d: int) -> int:
    h = p["mlp_ratio"] * d
    return 2 * 2 * d + (4 * d * d + 4 * d) + (d * h + h) + (h * d + d)


_op(
    name="TransformerBlock",
    category="Sequence",
    help="Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x)).",
    params=(
        *_ATTN_PARAMS,
        Field(
            "mlp_ratio", "int", 4, "hidden width of the MLP as a multiple of the model width", min=1, max=64
        ),
    ),
    shape=_attn_shape,
    n_params=lambda p, ins, out: _block_params(p, ins[0].shape[-1]),
    flops=lambda p, ins, out: (
        _attn_flops(*ins[0].shape, p["causal"]) + 4 * numel(out.shape) * p["mlp_ratio"] * ins[0].shape[-1]
    ),
    memory=lambda p, ins, out: _block_memory(p, *ins[0].shape),
    ctor=lambda p, ins: ("layers.TransformerBlock", {"dim": ins[0].shape[-1], **p}),
    traits={"opaque", "deep", "unit"},
    keeps="input",
)


def _rnn_shape(p, ins):
    t, _ = _seq(ins[0])
    return TensorType((t, p["hidden_size"] * (2 if p["bidirectional"] else 1)))


def _rnn_params(gates: int):
    def count(p, ins, out):
        h, dirs, total, width = p["hidden_size"], 2 if p["bidirectional"] else 1, 0, ins[0].shape[-1]
        for _ in range(p["num_layers"]):
            total += dirs * gates * (h * width + h * h + 2 * h)
            width = h * dirs
        return total

    return count


for _name, _gates in (("LSTM", 4), ("GRU", 3)):
    _op(
        name=_name,
        category="Sequence",
        help=f"{_name} over a (T, F) sequence; outputs every step's hidden state.",
        params=(
            _width("hidden_size", 64, "hidden state size"),
            Field("num_layers", "int", 1, "stacked layers", min=1, max=16),
            Field(
                "bidirectional", "bool", False, "also read the sequence backwards (doubles the output width)"
            ),
        ),
        shape=_rnn_shape,
        n_params=_rnn_params(_gates),
        flops=lambda p, ins, out, g=_gates, n=_name: _rnn_params(g)(p, ins, out) * 2 * ins[0].shape[0],
        # saved per layer: the gates, the cell and hidden states
        memory=lambda p, ins, out, g=_gates: ActivationUse(
            (g + 2) * numel(out.shape) * p["num_layers"], 4 * numel(out.shape), (g + 2) * numel(out.shape)
        ),
        ctor=lambda p, ins, n=_name: (f"layers.{n}", {"input_size": ins[0].shape[-1], **p}),
        keeps="input",
        autocast="low",
        width="hidden_size",
        # torch-pruning 1.6's hidden-size pruning fails on the gate-stacked weights (IndexError)
        traits={"opaque"},
    )

# ---------------------------------------------------------------- merge


def _add_shape(p, ins):
    first = ins[0]
    for i, t in enumerate(ins[1:], 1):
        if t.shape != first.shape:
            raise ShapeError(f"all inputs must have the same shape: input 0 is {first}, input {i} is {t}")
    return first


_op(
    name="Add",
    category="Merge",
    help="Element-wise sum of two or more inputs of the same shape (residual connections).",
    min_inputs=2,
    max_inputs=None,
    shape=_add_shape,
    flops=lambda p, ins, out: (len(ins) - 1) * numel(out.shape),
    ctor=lambda p, ins: ("layers.Add", {}),
    keeps="none",
)


def _concat_shape(p, ins):
    rank, axis = len(ins[0].shape), p["dim"]
    if not -rank <= axis < rank:
        raise ShapeError(f"dim {axis} is out of range for {rank}-d inputs")
    axis %= rank
    total = 0
    for i, t in enumerate(ins):
        others = t.shape[:axis] + t.shape[axis + 1 :]
        if len(t.shape) != rank or others != ins[0].shape[:axis] + ins[0].shape[axis + 1 :]:
            raise ShapeError(f"input {i} is {t}, which does not match input 0 ({ins[0]}) outside dim {axis}")
        total += t.shape[axis]
    shape = list(ins[0].shape)
    shape[axis] = total
    return TensorType(tuple(shape))


_op(
    name="Concat",
    category="Merge",
    help="Joins two or more inputs along one sample axis (0 = channels or features).",
    params=(
        Field("dim", "int", 0, "sample axis to join along (without the batch dimension)", min=-4, max=3),
    ),
    min_inputs=2,
    max_inputs=None,
    shape=_concat_shape,
    ctor=lambda p, ins: ("layers.Concat", {"dim": p["dim"] % len(ins[0].shape) + 1}),
    keeps="none",
)

# ---------------------------------------------------------------- blocks

# Repeat's shape and counts come from its body, a sub-graph analysed with the Repeat's input;
# its copies share one body, so pruning cannot narrow one copy alone (opaque).
_op(
    name="Repeat",
    category="Block",
    help="A sub-block stacked `times` times, so a 24-layer transformer is one node. "
    "The body's output shape must equal its input shape.",
    params=(
        Field("times", "int", 2, "how many copies of the body are stacked", min=1, max=1024),
        Field("body", "graph", None, "the sub-graph: one Input, any ops, and an output", optional=True),
    ),
    ctor=lambda p, ins: ("layers.Repeat", {}),
    traits={"opaque"},
    body="body",
    copies="times",
    keeps="none",  # its body's ops say what they keep
)


# ---------------------------------------------------------------- imported

# What an imported module's reference looks like: `package.module:Name` (an attribute path
# after the colon, e.g. `torchvision.models:resnet18` or `models:Gate.Inner`).
TARGET = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
)
MAX_RANK = 8


def measured_type(doc, what: str) -> TensorType:
    """A tensor type as an import recorded it: {"shape": [...], "dtype": "float" | "long"}."""
    if not isinstance(doc, dict) or not isinstance(doc.get("shape"), list):
        raise ShapeError(f"{what} must be {{'shape': [...], 'dtype': ...}} as the import measured it")
    shape, dtype = doc["shape"], doc.get("dtype", "float")
    if len(shape) > MAX_RANK or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
    ):
        raise ShapeError(f"{what}: shape must be at most {MAX_RANK} whole numbers >= 1")
    if dtype not in ("float", "long"):
        raise ShapeError(f"{what}: dtype must be 'float' or 'long'")
    return TensorType(tuple(shape), dtype)


def measured_weights(p: dict) -> dict[str, tuple[int, ...]]:
    """An imported module's parameters, {name: shape}, as its import measured them."""
    params = p["parameters"]
    if not isinstance(params, dict):
        raise ShapeError("parameters must map each parameter's name to its shape")
    out = {}
    for name, shape in params.items():
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ShapeError(f"parameters.{name}: a shape is a list of whole numbers")
        out[name] = tuple(shape)
    return out


def _module_shape(p, ins):
    if TARGET.fullmatch(p["target"]) is None:
        raise ShapeError(f"target must be an import path like package.module:Name, got {p['target']!r}")
    if not isinstance(p["kwargs"], dict):
        raise ShapeError("kwargs must be an object of constructor arguments")
    measured = p["inputs"]
    if not isinstance(measured, list) or not measured:
        raise ShapeError("has no measured input shapes; import the model again")
    want = [measured_type(t, f"inputs[{i}]") for i, t in enumerate(measured)]
    if len(ins) != len(want):
        raise ShapeError(f"was measured with {len(want)} input(s) and has {len(ins)}")
    for i, (got, expected) in enumerate(zip(ins, want, strict=True)):
        if got != expected:
            raise ShapeError(
                f"input {i} is {got}, but the module was measured with {expected} when it was imported "
                "(import it again for other shapes)"
            )
    measured_weights(p)
    return measured_type(p["output"], "output")


_op(
    name="Module",
    category="Imported",
    help="A module imported as it is, referenced by its import path and constructor arguments (never "
    "pickled): its shapes and parameters were measured when it was imported. Its code runs only when a "
    "run or an export builds the model, never when a graph is opened.",
    params=(
        Field("target", "str", "", "its class or factory: package.module:Name"),
        Field(
            "file",
            "str",
            None,
            "the Python file that defines it, when it is not an installed package (imported only when a "
            "run or an export builds the model)",
            optional=True,
        ),
        Field("kwargs", "any", {}, "constructor arguments"),
        Field(
            "inputs", "any", None, "the input types it was measured with", optional=True, traits={"measured"}
        ),
        Field("output", "any", None, "its measured output type", optional=True, traits={"measured"}),
        Field("parameters", "any", {}, "its parameters' shapes, by name", traits={"measured"}),
        Field(
            "flops",
            "int",
            0,
            "FLOPs per sample, measured at import",
            min=0,
            max=2**63 - 1,
            traits={"measured"},
        ),
        Field("inside", "str", "", "its layers as the import listed them", traits={"measured"}),
    ),
    min_inputs=1,
    max_inputs=None,
    shape=_module_shape,
    n_params=lambda p, ins, out: sum(numel(s) for s in measured_weights(p).values()),
    flops=lambda p, ins, out: p["flops"],
    ctor=lambda p, ins: (
        "layers.imported_module",
        {"target": p["target"], "file": p["file"], "kwargs": p["kwargs"]},
    ),
    traits={"opaque", "deep"},
    weights=lambda p, ins, out: measured_weights(p),
)


def categories() -> dict[str, list[OpDef]]:
    """Ops by palette category, in declaration order."""
    out: dict[str, list[OpDef]] = {}
    for op in OPS.values():
        out.setdefault(op.category, []).append(op)
    return out
