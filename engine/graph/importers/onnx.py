"""ONNX files into graphs (the `onnx` package reads them, onnxruntime runs the reference).

Nodes map to registry ops where they can — Conv, Gemm and MatMul(+Add) as Linear, norms,
activations, pooling, Flatten/Reshape, Add, Concat, Gather on a weight as Embedding — and
initializers become the ops' weights. Trainbench's own ONNX export writes its transformer
layers as ONNX functions (`engine.graph.layers` domain), so those come back as the same ops;
the settings a function does not carry (heads, causal masking) are found by running each
candidate against onnxruntime on the node's real input. A Linear whose weight equals an
Embedding's is tied to it again (an export stores a tied head as its own transposed copy).

What maps to no op is refused with the op types listed: executing arbitrary ONNX subgraphs
needs a converter (onnx2torch) whose ops import torchvision, which does not load beside the
CPU build of torch here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from engine.graph.importers.report import Imported, ModelImportError, check_sample
from engine.graph.layers import MultiheadSelfAttention, TransformerBlock
from engine.graph.model import Graph

LAYERS_DOMAIN = "engine.graph.layers"
BATCH = 2
_FLOAT, _INT64 = 1, 7  # onnx.TensorProto.FLOAT, INT64


def import_onnx(path: Path) -> Imported:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelImportError(
            "importing ONNX needs the onnx package: pip install onnx onnxruntime"
        ) from None
    path = Path(path)
    if not path.is_file():
        raise ModelImportError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as err:  # noqa: BLE001 - onnx's parser raises several types
        raise ModelImportError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    unknown = Counter(n.op_type for n in g.node if _rule(n) is None)
    if unknown:
        listed = ", ".join(f"{op} ×{k}" if k > 1 else op for op, k in sorted(unknown.items()))
        raise ModelImportError(
            f"{path}: these ONNX ops map to no registry op: {listed} (an opaque ONNX node would need "
            "onnx2torch, which needs torchvision: it does not load beside this torch)"
        )
    example = tuple(_example(i, path) for i in inputs)
    values = _reference(model, {i.name: x.numpy() for i, x in zip(inputs, example, strict=True)}, path)
    translator = _Translator(g, inits, values, path.stem)
    for i in inputs:
        translator.input(i)
    for n in g.node:
        translator.node(n)
    graph = translator.finish([o.name for o in g.output])
    expected = torch.from_numpy(values[g.output[0].name])
    params_before = _weights_used(g, inits)
    imported = Imported(graph, translator.state, str(path), "onnx", params_before, example, expected)
    imported.scopes = translator.scopes
    imported.warnings = translator.warnings
    return imported


def _weights_used(g, inits: dict) -> int:
    """The file's float weights counted per node that uses them (an exporter keeps one copy of
    equal initializers, such as the ones of every fresh LayerNorm, and names it twice)."""
    source = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Identity" and n.input[0] in inits}
    total = 0
    for n in g.node:
        if n.op_type == "Identity":
            continue
        for name in n.input:
            w = inits.get(source.get(name, name))
            if w is not None and w.dtype.kind == "f":
                total += int(np.prod(w.shape))
    return total


def _example(value_info, path: Path) -> torch.Tensor:
    t = value_info.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if not dims or any(d is None or d < 1 for d in dims[1:]):
        raise ModelImportError(
            f"{path}: input {value_info.name} needs a fixed shape after its batch dimension"
        )
    check_sample(dims[1:], f"{path}: input {value_info.name}")
    gen = torch.Generator().manual_seed(0)
    shape = (BATCH, *dims[1:])
    if t.elem_type == _INT64:
        return torch.randint(0, 2, shape, generator=gen)
    if t.elem_type != _FLOAT:
        raise ModelImportError(f"{path}: input {value_info.name} is not float32 or int64")
    return torch.randn(shape, generator=gen)


def _reference(model, feeds: dict, path: Path) -> dict[str, np.ndarray]:
    """Every value of the model on `feeds`, computed by onnxruntime (the file's own semantics)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelImportError(
            "importing ONNX needs onnxruntime to check the import: pip install onnxruntime"
        ) from None
    import onnx

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for vi in probe.graph.value_info:
        if vi.name not in known and vi.type.tensor_type.elem_type in (_FLOAT, _INT64):
            probe.graph.output.append(vi)
    try:
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feeds), strict=True))
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types
        raise ModelImportError(
            f"{path}: onnxruntime cannot run the model: {str(err).splitlines()[0][:300]}"
        ) from None


def _attrs(n) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


def _rule(n):
    """The translation of an ONNX node's type (None: it maps to none)."""
    if n.domain == LAYERS_DOMAIN:
        return _LAYERS.get(n.op_type)
    return None if n.domain not in ("", "ai.onnx") else _OPS.get(n.op_type)


class _Translator:
    def __init__(self, g, inits: dict, values: dict, name: str):
        self.g, self.inits, self.values = g, inits, values
        self.graph = Graph(name=name)
        self.state: dict[str, torch.Tensor] = {}
        self.scopes: dict[str, str] = {}
        self.warnings: list[str] = []
        self.node_of: dict[str, str] = {}  # ONNX value → graph node id
        self.alias: dict[str, str] = {}  # ONNX value → the initializer it is (Identity)
        self.pending_bias: dict[str, tuple[str, str]] = {}  # MatMul output → (node id, value)

    # --- the values

    def input(self, vi) -> None:
        t = vi.type.tensor_type
        shape = [d.dim_value for d in t.shape.dim][1:]
        dtype = "long" if t.elem_type == _INT64 else "float"
        self.node_of[vi.name] = self._add(vi.name, "Input", {"shape": shape, "dtype": dtype}, [], "")

    def init(self, name: str) -> np.ndarray | None:
        name = self.alias.get(name, name)
        return self.inits.get(name)

    def node(self, n) -> None:
        _rule(n)(self, n)

    def finish(self, outputs: list[str]) -> Graph:
        if len(outputs) != 1:
            raise ModelImportError(f"the model has {len(outputs)} outputs; a graph has one")
        self.graph.output = self._src(outputs[0])
        self._retie()
        return self.graph

    # --- helpers for the rules

    def _src(self, value: str) -> str:
        if value not in self.node_of:
            raise ModelImportError(f"value {value!r} is computed by nothing this import maps")
        return self.node_of[value]

    def _add(self, onnx_name: str, op: str, params: dict, sources: list[str], scope: str) -> str:
        base = "".join(c if c.isalnum() else "_" for c in onnx_name.strip("/")).strip("_")[-56:] or op.lower()
        nid = self.graph.free_id(base)
        self.graph.add_node(op, params, (0.0, 0.0), nid)
        for port, src in enumerate(sources):
            self.graph.connect(self._src(src), nid, port)
        self.scopes[nid] = scope
        return nid

    def emit(self, n, op: str, params: dict, sources: list[str], weights: dict | None = None) -> str:
        """A node named after the module path the exporter recorded (`/conv1/Conv` → conv1)."""
        scope = ".".join(p for p in n.name.strip("/").split("/")[:-1])
        nid = self._add(scope or n.name or n.output[0], op, params, sources, scope)
        for k, v in (weights or {}).items():  # a copy each: an export shares equal initializers
            self.state[f"{nid}.{k}"] = torch.from_numpy(np.array(v))
        self.node_of[n.output[0]] = nid
        return nid

    def weight(self, n, i: int) -> np.ndarray:
        w = self.init(n.input[i]) if i < len(n.input) and n.input[i] else None
        if w is None:
            raise ModelImportError(f"{n.op_type} {n.name}: input {i} must be a weight (an initializer)")
        return w

    def shape(self, value: str) -> tuple[int, ...]:
        return tuple(self.values[value].shape) if value in self.values else ()

    def _retie(self) -> None:
        """A Linear whose weight equals an Embedding's exactly is tied to it."""
        tables = {
            nid: self.state[f"{nid}.weight"]
            for nid, node in self.graph.nodes.items()
            if node.op == "Embedding"
        }
        for nid, node in self.graph.nodes.items():
            w = self.state.get(f"{nid}.weight")
            if node.op != "Linear" or w is None:
                continue
            for emb, table in tables.items():
                if table.shape == w.shape and torch.equal(table, w):
                    self.graph.tie[f"{nid}.weight"] = f"{emb}.weight"
                    self.warnings.append(
                        f"{nid}.weight equals {emb}.weight exactly: tied again (the file stores it twice), so "
                        f"the graph has {w.numel():,} parameters fewer than the file"
                    )
                    break


# ---------------------------------------------------------------- the rules, one per ONNX op


def _same(values, what: str, n) -> int:
    if len(set(values)) != 1:
        raise ModelImportError(f"{n.op_type} {n.name}: {what} {list(values)} differ by axis (square only)")
    return values[0]


def _conv(t: _Translator, n) -> None:
    a = _attrs(n)
    w = t.weight(n, 1)
    dims = w.ndim - 2
    plain = a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    if dims not in (1, 2) or any(d != 1 for d in a.get("dilations", [1] * dims)) or not plain:
        raise ModelImportError(f"Conv {n.name}: only 1-d/2-d convolutions without dilation or auto_pad map")
    pads = a.get("pads", [0] * 2 * dims)
    params = {
        "out_channels": int(w.shape[0]),
        "kernel_size": _same(list(w.shape[2:]), "kernel sizes", n),
        "stride": _same(a.get("strides", [1] * dims), "strides", n),
        "padding": _same(pads, "pads", n),
        "groups": int(a.get("group", 1)),
        "bias": len(n.input) > 2 and bool(n.input[2]),
    }
    weights = {"weight": w} | ({"bias": t.weight(n, 2)} if params["bias"] else {})
    t.emit(n, f"Conv{dims}d", params, [n.input[0]], weights)


def _gemm(t: _Translator, n) -> None:
    a = _attrs(n)
    if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
        raise ModelImportError(f"Gemm {n.name}: only x·Wᵀ + b (transA 0, alpha and beta 1) maps to Linear")
    w = t.weight(n, 1)
    w = w if a.get("transB", 0) else w.T
    bias = len(n.input) > 2 and bool(n.input[2])
    weights = {"weight": w} | ({"bias": np.broadcast_to(t.weight(n, 2), (w.shape[0],))} if bias else {})
    t.emit(n, "Linear", {"out_features": int(w.shape[0]), "bias": bias}, [n.input[0]], weights)


def _matmul(t: _Translator, n) -> None:
    w = t.weight(n, 1)
    if w.ndim != 2:
        raise ModelImportError(f"MatMul {n.name}: only a product with a 2-d weight maps to Linear")
    nid = t.emit(n, "Linear", {"out_features": int(w.shape[1]), "bias": False}, [n.input[0]], {"weight": w.T})
    t.pending_bias[n.output[0]] = (nid, n.output[0])


def _add(t: _Translator, n) -> None:
    a, b = n.input
    for value, other in ((a, b), (b, a)):  # a bias added to a MatMul: the Linear's bias
        if value in t.pending_bias and t.init(other) is not None and t.init(other).ndim == 1:
            nid, _ = t.pending_bias.pop(value)
            t.graph.nodes[nid].params["bias"] = True
            t.state[f"{nid}.bias"] = torch.from_numpy(np.array(t.init(other)))
            t.node_of[n.output[0]] = nid
            return
    if t.init(a) is not None or t.init(b) is not None:
        raise ModelImportError(f"Add {n.name}: adding a constant tensor maps to no registry op")
    if t.shape(a) != t.shape(b):
        raise ModelImportError(
            f"Add {n.name}: broadcasting {t.shape(a)} + {t.shape(b)} maps to no registry op"
        )
    t.emit(n, "Add", {}, [a, b])


def _batchnorm(t: _Translator, n) -> None:
    a = _attrs(n)
    rank = len(t.shape(n.input[0]))
    op = {3: "BatchNorm1d", 2: "BatchNorm1d", 4: "BatchNorm2d"}.get(rank)
    if op is None:
        raise ModelImportError(f"BatchNormalization {n.name}: on {rank}-d values maps to no registry op")
    weights = {k: t.weight(n, i) for i, k in enumerate(("weight", "bias", "running_mean", "running_var"), 1)}
    weights["num_batches_tracked"] = np.array(0, dtype=np.int64)
    t.emit(n, op, {"eps": float(a.get("epsilon", 1e-5))}, [n.input[0]], weights)


def _layernorm(t: _Translator, n) -> None:
    a = _attrs(n)
    if a.get("axis", -1) not in (-1, len(t.shape(n.input[0])) - 1) or len(n.input) < 3:
        raise ModelImportError(f"LayerNormalization {n.name}: only over the last axis, with a bias, maps")
    weights = {"weight": t.weight(n, 1), "bias": t.weight(n, 2)}
    t.emit(n, "LayerNorm", {"eps": float(a.get("epsilon", 1e-5))}, [n.input[0]], weights)


def _pool(op: str):
    def rule(t: _Translator, n) -> None:
        a = _attrs(n)
        if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
            raise ModelImportError(f"{n.op_type} {n.name}: ceil_mode and dilation map to no registry op")
        if op == "AvgPool2d" and not a.get("count_include_pad", 0) and any(a.get("pads", [0])):
            raise ModelImportError(
                f"{n.op_type} {n.name}: padding left out of the mean maps to no registry op"
            )
        k = _same(a["kernel_shape"], "kernel sizes", n)
        params = {
            "kernel_size": k,
            "stride": _same(a.get("strides", [1, 1]), "strides", n),
            "padding": _same(a.get("pads", [0, 0, 0, 0]), "pads", n),
        }
        t.emit(n, op, params, [n.input[0]])

    return rule


def _reshape(t: _Translator, n) -> None:
    out = t.shape(n.output[0])
    before = t.shape(n.input[0])
    if not out or out[:1] != before[:1]:
        raise ModelImportError(f"{n.op_type} {n.name}: a reshape across the batch maps to no registry op")
    if len(out) == 2 and len(before) > 2:
        t.emit(n, "Flatten", {}, [n.input[0]])
    else:
        t.emit(n, "Reshape", {"shape": list(out[1:])}, [n.input[0]])


def _flatten(t: _Translator, n) -> None:
    if _attrs(n).get("axis", 1) != 1:
        raise ModelImportError(f"Flatten {n.name}: only from axis 1 (keeping the batch) maps")
    t.emit(n, "Flatten", {}, [n.input[0]])


def _concat(t: _Translator, n) -> None:
    axis = _attrs(n)["axis"] % len(t.shape(n.output[0]))
    if axis == 0 or any(t.init(v) is not None for v in n.input):
        raise ModelImportError(f"Concat {n.name}: only values joined on a sample axis map")
    t.emit(n, "Concat", {"dim": axis - 1}, list(n.input))


def _gather(t: _Translator, n) -> None:
    table = t.init(n.input[0])
    if table is None or table.ndim != 2 or _attrs(n).get("axis", 0) != 0:
        raise ModelImportError(f"Gather {n.name}: only a lookup in a 2-d weight maps (Embedding)")
    params = {"num_embeddings": int(table.shape[0]), "embedding_dim": int(table.shape[1])}
    t.emit(n, "Embedding", params, [n.input[1]], {"weight": table})


def _constant(t: _Translator, n) -> None:
    from onnx import numpy_helper

    a = _attrs(n)
    if "value" not in a:
        raise ModelImportError(f"Constant {n.name}: only a tensor value maps")
    t.inits[n.output[0]] = numpy_helper.to_array(a["value"])


def _identity(t: _Translator, n) -> None:
    if n.input[0] in t.inits or n.input[0] in t.alias:
        t.alias[n.output[0]] = t.alias.get(n.input[0], n.input[0])
    else:
        t.node_of[n.output[0]] = t._src(n.input[0])


def _activation(op: str):
    def rule(t: _Translator, n) -> None:
        if op == "GELU" and _attrs(n).get("approximate", "none") not in ("none", b"none"):
            raise ModelImportError(f"Gelu {n.name}: the tanh approximation maps to no registry op")
        if op == "Softmax" and _attrs(n).get("axis", -1) not in (-1, len(t.shape(n.input[0])) - 1):
            raise ModelImportError(f"Softmax {n.name}: only over the last axis maps")
        t.emit(n, op, {}, [n.input[0]])

    return rule


def _dropout(t: _Translator, n) -> None:
    ratio = t.init(n.input[1]) if len(n.input) > 1 and n.input[1] else None
    t.emit(n, "Dropout", {"p": float(ratio) if ratio is not None else 0.5}, [n.input[0]])


_OPS = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "MaxPool": _pool("MaxPool2d"),
    "AveragePool": _pool("AvgPool2d"),
    "GlobalAveragePool": lambda t, n: t.emit(n, "AdaptiveAvgPool2d", {"output_size": 1}, [n.input[0]]),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Concat": _concat,
    "Gather": _gather,
    "Identity": _identity,
    "Constant": _constant,
    "Relu": _activation("ReLU"),
    "Gelu": _activation("GELU"),
    "Sigmoid": _activation("Sigmoid"),
    "Tanh": _activation("Tanh"),
    "Softmax": _activation("Softmax"),
    "Dropout": _dropout,
}


# ---------------------------------------------------------------- Trainbench's own layers


def _transformer(op: str):
    """A TransformerBlock or MultiheadSelfAttention function node: weights from its inputs (the
    projections stored transposed, as MatMul weights), heads and causal masking found by
    running each candidate on the node's real input against onnxruntime's output."""
    names = {
        "TransformerBlock": (
            "ln1.weight ln1.bias attn.qkv.weight attn.qkv.bias attn.proj.weight attn.proj.bias "
            "ln2.weight ln2.bias mlp.0.weight mlp.0.bias mlp.2.weight mlp.2.bias"
        ).split(),
        "MultiheadSelfAttention": "qkv.weight qkv.bias proj.weight proj.bias".split(),
    }[op]

    def rule(t: _Translator, n) -> None:
        if len(n.input) != len(names) + 1:
            raise ModelImportError(f"{op} {n.name}: expected {len(names)} weights, has {len(n.input) - 1}")
        weights = {}
        for i, name in enumerate(names, 1):
            w = t.weight(n, i)
            weights[name] = w.T if w.ndim == 2 else w  # MatMul weights are stored as Wᵀ
        dim = weights[names[0]].shape[-1] if op == "TransformerBlock" else weights["qkv.weight"].shape[1]
        x, want = t.values.get(n.input[0]), t.values.get(n.output[0])
        if x is None or want is None:
            raise ModelImportError(f"{op} {n.name}: its input and output could not be measured")
        extra = {"mlp_ratio": weights["mlp.0.weight"].shape[0] // dim} if op == "TransformerBlock" else {}
        found = _heads(op, dim, extra, weights, torch.from_numpy(x), torch.from_numpy(want))
        if found is None:
            raise ModelImportError(f"{op} {n.name}: no head count and masking reproduce its output")
        t.emit(n, op, {**found, "dropout": 0.0, **extra}, [n.input[0]], weights)
        if not t.warnings:
            t.warnings.append("dropout rates are not stored in an ONNX file: the transformer layers get 0")

    return rule


def _heads(op: str, dim: int, extra: dict, weights: dict, x: torch.Tensor, want: torch.Tensor) -> dict | None:
    cls = TransformerBlock if op == "TransformerBlock" else MultiheadSelfAttention
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    for heads in (h for h in range(1, dim + 1) if dim % h == 0):
        for causal in (True, False):
            with torch.random.fork_rng():
                module = cls(dim, heads, causal, 0.0, **extra).eval()
            module.load_state_dict(state)
            with torch.no_grad():
                if torch.allclose(module(x), want, rtol=1e-4, atol=1e-4):
                    return {"n_heads": heads, "causal": causal}
    return None


def _positional(t: _Translator, n) -> None:
    table = t.weight(n, 1)
    t.emit(n, "PositionalEmbedding", {"max_len": int(table.shape[0])}, [n.input[0]], {"weight": table})


_LAYERS = {
    "TransformerBlock": _transformer("TransformerBlock"),
    "MultiheadSelfAttention": _transformer("MultiheadSelfAttention"),
    "PositionalEmbedding": _positional,
}
