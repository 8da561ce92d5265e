"""PyTorch models that torch.fx cannot trace, through torch.export.

fx fails on Python control flow that looks at a tensor (`if x.dim() == 3:`); torch.export runs
the code with fake tensors instead and specialises such branches to the example's shapes, so
it captures these models whole, as a graph of ATen ops with every value's shape and the
module path each op came from. The high-level ops (conv2d, linear, batch_norm, layer_norm,
embedding, activations, pooling, reshapes, add, cat) map to registry ops with the parameters
and buffers the graph's signature names; any other op means the model is kept as one opaque
node instead (see `engine.graph.importers.fx`).
"""

from __future__ import annotations

import operator

import torch

from engine.graph.importers.report import Imported, ModelImportError
from engine.graph.model import Graph


class Unmapped(ModelImportError):
    """ATen ops no registry op expresses (the caller falls back to an opaque model)."""


def import_exported(model, example: tuple, source: str, params_before: int, expected) -> Imported:
    try:
        ep = torch.export.export(model, example, strict=False)
    except Exception as err:  # noqa: BLE001 - the exporter raises many types
        raise Unmapped(
            f"torch.export failed too ({type(err).__name__}: {str(err).splitlines()[0][:160]})"
        ) from None
    t = _Translator(ep, type(model).__name__)
    unknown = sorted({_op(n) for n in ep.graph.nodes if n.op == "call_function" and _op(n) not in _RULES})
    if unknown:
        raise Unmapped(f"torch.export captured ATen ops that map to no registry op: {', '.join(unknown)}")
    for n in ep.graph.nodes:
        t.node(n)
    imported = Imported(t.graph, t.state, source, "torch.export", params_before, example, expected.detach())
    imported.scopes = t.scopes
    return imported


def _op(n) -> str:
    """`aten.conv2d.default` → conv2d; operator.getitem → getitem."""
    if n.target is operator.getitem:
        return "getitem"
    parts = str(n.target).split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "aten" else str(n.target)


class _Translator:
    def __init__(self, ep, name: str):
        self.ep = ep
        sig = ep.graph_signature
        self.weights = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}  # placeholder → name
        self.tensors = {**ep.state_dict, **ep.constants}
        self.users = set(sig.user_inputs)
        self.graph = Graph(name=name)
        self.state: dict[str, torch.Tensor] = {}
        self.scopes: dict[str, str] = {}
        self.value: dict[str, str] = {}  # fx node name → graph node id

    def node(self, n) -> None:
        if n.op == "placeholder":
            if n.name in self.users:
                val = n.meta["val"]
                dtype = "long" if val.dtype == torch.int64 else "float"
                self.value[n.name] = self.add(n, "Input", {"shape": list(val.shape[1:]), "dtype": dtype}, [])
        elif n.op == "output":
            (out,) = n.args[0] if isinstance(n.args[0], tuple | list) else (n.args[0],)
            self.graph.output = self.value[out.name]
        elif n.op == "call_function":
            _RULES[_op(n)](self, n)

    # --- helpers for the rules

    def weight(self, arg) -> torch.Tensor | None:
        if arg is None:
            return None
        name = self.weights.get(getattr(arg, "name", None))
        if name is None:
            raise Unmapped(f"an op takes a computed tensor ({arg}) where a weight belongs")
        return self.tensors[name]

    def add(self, n, op: str, params: dict, sources: list, weights: dict | None = None) -> str:
        stack = list((n.meta.get("nn_module_stack") or {}).values())
        scope = stack[-1][0] if stack else ""
        base = (
            scope.replace(".", "_") if scope and op not in ("ReLU", "Add", "Concat") else n.name
        ) or op.lower()
        nid = self.graph.free_id(base[:56] if base[:1].isalpha() else f"n{base}"[:56])
        self.graph.add_node(op, params, (0.0, 0.0), nid)
        for port, src in enumerate(sources):
            self.graph.connect(self.value[src.name], nid, port)
        for k, v in (weights or {}).items():
            self.state[f"{nid}.{k}"] = v
        self.scopes[nid] = scope
        self.value[n.name] = nid
        return nid

    @staticmethod
    def shape(arg) -> tuple[int, ...]:
        return tuple(arg.meta["val"].shape)


def _arg(n, i: int, name: str, default=None):
    return n.args[i] if len(n.args) > i else n.kwargs.get(name, default)


def _single(v, what: str) -> int:
    v = [v] if isinstance(v, int) else list(v)
    if len(set(v)) != 1:
        raise Unmapped(f"{what} {v} differ by axis (square only)")
    return v[0]


def _conv(t: _Translator, n) -> None:
    x, w, b = n.args[0], t.weight(n.args[1]), t.weight(_arg(n, 2, "bias"))
    dims = w.dim() - 2
    if _single(_arg(n, 5, "dilation", 1), "dilations") != 1 or isinstance(_arg(n, 4, "padding", 0), str):
        raise Unmapped("a dilated or 'same'-padded convolution maps to no registry op")
    params = {
        "out_channels": w.shape[0],
        "kernel_size": _single(list(w.shape[2:]), "kernel sizes"),
        "stride": _single(_arg(n, 3, "stride", 1), "strides"),
        "padding": _single(_arg(n, 4, "padding", 0), "pads"),
        "groups": _arg(n, 6, "groups", 1),
        "bias": b is not None,
    }
    t.add(n, f"Conv{dims}d", params, [x], {"weight": w} | ({"bias": b} if b is not None else {}))


def _linear(t: _Translator, n) -> None:
    w, b = t.weight(n.args[1]), t.weight(_arg(n, 2, "bias"))
    params = {"out_features": w.shape[0], "bias": b is not None}
    t.add(n, "Linear", params, [n.args[0]], {"weight": w} | ({"bias": b} if b is not None else {}))


def _batch_norm(t: _Translator, n) -> None:
    x = n.args[0]
    names = ("weight", "bias", "running_mean", "running_var")
    tensors = {k: t.weight(a) for k, a in zip(names, n.args[1:5], strict=True)}
    if any(v is None for v in tensors.values()):
        raise Unmapped("a batch norm without affine weights or running statistics maps to no registry op")
    training = n.args[5] if _op(n) == "batch_norm" else False
    momentum, eps = (n.args[6], n.args[7]) if _op(n) == "batch_norm" else (n.args[5], n.args[6])
    if training or momentum != 0.1:
        raise Unmapped(f"a batch norm with momentum {momentum} maps to no registry op")
    rank = len(t.shape(x))
    op = "BatchNorm2d" if rank == 4 else "BatchNorm1d"
    tensors["num_batches_tracked"] = torch.tensor(0)
    t.add(n, op, {"eps": eps}, [x], tensors)


def _layer_norm(t: _Translator, n) -> None:
    x, shape = n.args[0], n.args[1]
    w, b = t.weight(_arg(n, 2, "weight")), t.weight(_arg(n, 3, "bias"))
    if len(shape) != 1 or w is None or b is None:
        raise Unmapped("only a layer norm over the last axis, with weight and bias, maps")
    t.add(n, "LayerNorm", {"eps": _arg(n, 4, "eps", 1e-5)}, [x], {"weight": w, "bias": b})


def _embedding(t: _Translator, n) -> None:
    w = t.weight(n.args[0])
    if _arg(n, 2, "padding_idx", -1) != -1:
        raise Unmapped("an embedding with a padding index maps to no registry op")
    params = {"num_embeddings": w.shape[0], "embedding_dim": w.shape[1]}
    t.add(n, "Embedding", params, [n.args[1]], {"weight": w})


def _activation(op: str):
    def rule(t: _Translator, n) -> None:
        if op == "GELU" and n.kwargs.get("approximate", _arg(n, 1, "approximate", "none")) != "none":
            raise Unmapped("the tanh approximation of GELU maps to no registry op")
        t.add(n, op, {}, [n.args[0]])

    return rule


def _softmax(t: _Translator, n) -> None:
    if n.args[1] not in (-1, len(t.shape(n.args[0])) - 1):
        raise Unmapped("only a softmax over the last axis maps")
    t.add(n, "Softmax", {}, [n.args[0]])


def _pool(op: str):
    def rule(t: _Translator, n) -> None:
        k = _single(n.args[1], "kernel sizes")
        stride = _arg(n, 2, "stride", []) or k
        pad = _single(_arg(n, 3, "padding", 0), "pads")
        if op == "MaxPool2d":
            plain = _single(_arg(n, 4, "dilation", 1), "dilations") == 1 and not _arg(
                n, 5, "ceil_mode", False
            )
        else:
            plain = not _arg(n, 4, "ceil_mode", False) and _arg(n, 5, "count_include_pad", True)
            plain = plain and _arg(n, 6, "divisor_override") is None
        if not plain:
            raise Unmapped(f"{op} with dilation, ceil mode or a divisor of its own maps to no registry op")
        params = {"kernel_size": k, "stride": _single(stride, "strides"), "padding": pad}
        t.add(n, op, params, [n.args[0]])

    return rule


def _adaptive(t: _Translator, n) -> None:
    t.add(n, "AdaptiveAvgPool2d", {"output_size": _single(n.args[1], "output sizes")}, [n.args[0]])


def _reshape(t: _Translator, n) -> None:
    x = n.args[0]
    before, after = t.shape(x), t.shape(n)
    if after[:1] != before[:1] or len(after) < 2:
        raise Unmapped("a reshape across the batch maps to no registry op")
    if after == before:
        t.value[n.name] = t.value[x.name]
    elif len(after) == 2 and len(before) > 2:
        t.add(n, "Flatten", {}, [x])
    else:
        t.add(n, "Reshape", {"shape": list(after[1:])}, [x])


def _add(t: _Translator, n) -> None:
    a, b = n.args[0], n.args[1]
    if not (hasattr(a, "meta") and hasattr(b, "meta")) or _arg(n, 2, "alpha", 1) != 1:
        raise Unmapped("adding a number or a scaled tensor maps to no registry op")
    if t.shape(a) != t.shape(b):
        raise Unmapped(f"adding {t.shape(a)} and {t.shape(b)} (broadcasting) maps to no registry op")
    t.add(n, "Add", {}, [a, b])


def _cat(t: _Translator, n) -> None:
    parts, dim = list(n.args[0]), _arg(n, 1, "dim", 0) % len(t.shape(n))
    if dim == 0 or len(parts) < 2:
        raise Unmapped("joining along the batch maps to no registry op")
    t.add(n, "Concat", {"dim": dim - 1}, parts)


def _dropout(t: _Translator, n) -> None:
    t.add(n, "Dropout", {"p": float(n.args[1])}, [n.args[0]])


def _alias(t: _Translator, n) -> None:
    t.value[n.name] = t.value[n.args[0].name]


def _getitem(t: _Translator, n) -> None:
    """The first output of an op that returns several (a batch norm's statistics ride along)."""
    if n.args[1] != 0:
        raise Unmapped("an op's second output maps to no registry op")
    _alias(t, n)


_RULES = {
    "conv1d": _conv,
    "conv2d": _conv,
    "linear": _linear,
    "batch_norm": _batch_norm,
    "_native_batch_norm_legit_no_training": _batch_norm,
    "layer_norm": _layer_norm,
    "embedding": _embedding,
    "relu": _activation("ReLU"),
    "relu_": _activation("ReLU"),
    "gelu": _activation("GELU"),
    "silu": _activation("SiLU"),
    "tanh": _activation("Tanh"),
    "sigmoid": _activation("Sigmoid"),
    "softmax": _softmax,
    "_softmax": _softmax,
    "max_pool2d": _pool("MaxPool2d"),
    "avg_pool2d": _pool("AvgPool2d"),
    "adaptive_avg_pool2d": _adaptive,
    "flatten": _reshape,
    "view": _reshape,
    "reshape": _reshape,
    "_unsafe_view": _reshape,
    "add": _add,
    "add_": _add,
    "cat": _cat,
    "dropout": _dropout,
    "contiguous": _alias,
    "clone": _alias,
    "getitem": _getitem,
}
