"""PyTorch models into graphs, through torch.fx.

The model is built by its own factory (a function or class in a Python file or an installed
package, with keyword arguments), traced with a tracer that stops at every module that maps
to a registry op, measured once with fake tensors (every value's shape, without computing
anything), and translated node by node: a module or call that maps becomes that op with its parameters and weights; shape
arithmetic (`x.size(0)`, `view(b, -1)`) folds into the shapes it computed.

What maps to no op becomes an opaque `Module` node for the innermost module around it that
can be referenced — its class by import path, its constructor arguments as they were passed
(recorded while the factory ran), never pickled — with its weights, shapes and FLOPs as
measured here. A forward that fx cannot trace (Python control flow on tensors) makes its
module opaque the same way. When the problem is in the model's own forward, nothing smaller
can be kept: torch.export captures the whole model instead (`aten`), and when even that maps
to no ops the whole model becomes one opaque node — still trainable and exportable, just not
editable inside.
"""

from __future__ import annotations

import importlib
import inspect
import keyword
import math
import operator
import re
import sys
from pathlib import Path

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from engine.fields import check_fields
from engine.graph import layers
from engine.graph.importers.report import Imported, ModelImportError, check_sample
from engine.graph.model import TORCH_MODULE_NAMES, Graph
from engine.graph.ops import OPS

BATCH = 2  # samples in the measuring input: a batch of one would hide a batch-size bug
MAX_ATTEMPTS = 64  # re-traces, each making one more module opaque
INSIDE_LINES = 40  # lines of an opaque module's repr kept for the designer's box


def import_pytorch(source: str, kwargs: dict, input_shape, dtype: str = "float") -> Imported:
    factory, file = resolve_source(source)
    if input_shape is None:
        raise ModelImportError(
            "a PyTorch model needs --input: one sample's shape without the batch, e.g. 3,224,224"
        )
    check_sample(input_shape, "--input")
    with CtorRecorder() as recorder:
        try:
            model = factory(**kwargs)
        except Exception as err:  # noqa: BLE001 - the user's factory can raise anything
            raise ModelImportError(
                f"{source}({_call_args(kwargs)}) failed: {type(err).__name__}: {err}"
            ) from None
    if not isinstance(model, nn.Module):
        raise ModelImportError(f"{source} returned a {type(model).__name__}, not a torch.nn.Module")
    model.eval()
    example = (_example(input_shape, dtype),)
    try:
        with torch.no_grad():
            expected = model(*example)
    except Exception as err:  # noqa: BLE001
        raise ModelImportError(
            f"the model does not run on an input of {BATCH}×{'×'.join(map(str, input_shape))} {dtype}: "
            f"{type(err).__name__}: {err}"
        ) from None
    if not isinstance(expected, torch.Tensor):
        raise ModelImportError(
            f"the model returns a {type(expected).__name__}; a graph has one tensor output (wrap the model "
            "in a factory that returns the tensor you train on)"
        )
    refs = References(recorder, file)
    params_before = sum(p.numel() for p in model.parameters())
    opaque: dict[str, str] = {}  # module path → why
    for _ in range(MAX_ATTEMPTS):
        try:
            traced = fx.GraphModule(model, _Tracer(model, opaque).trace(model))
            measured = _measure(traced, set(opaque), example)
            translator = _Translator(traced, measured, refs, opaque, type(model).__name__)
            graph, state, scopes, made_opaque = translator.translate()
        except _NeedsOpaque as need:
            path = refs.innermost(model, need.paths)
            if path is None:  # nothing smaller to keep as it is: torch.export, else the whole model
                return _exported_or_whole(
                    model, source, kwargs, file, example, expected, params_before, need.why
                )
            if path in opaque:
                raise ModelImportError(f"{path}: {need.why}") from None
            opaque[path] = need.why
            continue
        imported = Imported(
            graph, state, source, "torch.fx", params_before, example, expected.detach(), scopes=scopes
        )
        imported.opaque = made_opaque
        return imported
    raise ModelImportError(f"the model needed more than {MAX_ATTEMPTS} opaque modules to trace")


# ---------------------------------------------------------------- the source


def resolve_source(source: str):
    """(the factory, the user's Python file or None) for `file.py:name` or `package.module:name`
    (`package.module.name` also works)."""
    where, sep, attr = source.rpartition(":")
    if not sep:
        where, _, attr = source.rpartition(".")
    if not where or not attr:
        raise ModelImportError(
            f"{source!r}: name the factory as file.py:make_model or package.module:make_model"
        )
    file = None
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ModelImportError(f"{where}: no such Python file")
        file = path
        try:
            module = layers._load_file(str(path))
        except Exception as err:  # noqa: BLE001 - running the user's file
            raise ModelImportError(f"{where}: importing it failed: {type(err).__name__}: {err}") from None
    else:
        try:
            module = importlib.import_module(where)
        except Exception as err:  # noqa: BLE001
            raise ModelImportError(f"cannot import {where}: {type(err).__name__}: {err}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelImportError(f"{where} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelImportError(f"{source} is not callable")
    return _with_config(obj), file


def _with_config(obj):
    """A Hugging Face model class (it has a `config_class`) is built from its config's
    keyword arguments and wrapped to give its first output (`layers.HuggingFace`); anything
    else is called with them as they are."""
    if isinstance(obj, type) and issubclass(obj, nn.Module) and hasattr(obj, "config_class"):
        target = f"{obj.__module__}:{obj.__qualname__}"
        return lambda **kw: layers.HuggingFace(target, kw)
    return obj


def _example(shape, dtype: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if dtype == "long":
        return torch.randint(0, 2, (BATCH, *shape), generator=gen)
    return torch.randn((BATCH, *shape), generator=gen)


def _call_args(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


class CtorRecorder:
    """Records the arguments every nn.Module's constructor was called with while the factory
    runs (a profile hook sees each `__init__` call before its body), so an opaque module can be
    referenced by its class and those arguments instead of being pickled."""

    def __init__(self):
        self.calls: dict[int, tuple[nn.Module, dict | None]] = {}

    def __enter__(self) -> CtorRecorder:
        self._previous = sys.getprofile()
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(self._previous if callable(self._previous) else None)

    def _profile(self, frame, event, arg) -> None:
        if event != "call" or frame.f_code.co_name != "__init__":
            return
        code = frame.f_code
        if not code.co_argcount:
            return
        names = code.co_varnames
        obj = frame.f_locals.get(names[0])
        if not isinstance(obj, nn.Module) or id(obj) in self.calls:
            return  # the first __init__ call of an object is its own class's
        values = frame.f_locals
        named = names[1 : code.co_argcount + code.co_kwonlyargcount]
        kwargs: dict | None = {n: values[n] for n in named if n in values}
        extra = code.co_argcount + code.co_kwonlyargcount
        if code.co_flags & 0x04:  # *args: positional arguments without names cannot be replayed
            if values.get(names[extra]):
                kwargs = None
            extra += 1
        if kwargs is not None and code.co_flags & 0x08:  # **kwargs
            kwargs.update(values.get(names[extra]) or {})
        self.calls[id(obj)] = (obj, kwargs)

    def kwargs_of(self, module: nn.Module) -> dict | None:
        obj, kwargs = self.calls.get(id(module), (None, None))
        return kwargs if obj is module else None


class References:
    """How a module can be referenced from a graph: its class's import path and the recorded
    constructor arguments, both checked here (the class must be reachable by that path, and
    the arguments must be plain JSON values)."""

    def __init__(self, recorder: CtorRecorder, file: Path | None):
        self.recorder, self.file = recorder, file
        self.user_module = layers._load_file(str(file)).__name__ if file else None

    def of(self, module: nn.Module) -> tuple[dict | None, str]:
        """({"target", "file", "kwargs"}, '') or (None, why it cannot be referenced)."""
        cls = type(module)
        if "<locals>" in cls.__qualname__:
            return None, f"{cls.__qualname__} is defined inside a function"
        kwargs = self.recorder.kwargs_of(module)
        if kwargs is None:
            return None, f"{cls.__name__}'s constructor arguments were not seen (built outside the factory)"
        try:
            kwargs = _json(kwargs)
        except TypeError as err:
            return None, f"{cls.__name__}'s constructor takes {err}, which a graph cannot hold"
        if self.user_module and cls.__module__ == self.user_module:
            stem = re.sub(r"\W", "_", self.file.stem) or "model"
            stem = stem if stem[0].isalpha() or stem[0] == "_" else f"m_{stem}"
            return {"target": f"{stem}:{cls.__qualname__}", "file": str(self.file), "kwargs": kwargs}, ""
        if cls.__module__ == "__main__":
            return None, f"{cls.__name__} is defined in __main__, which cannot be imported again"
        try:
            found = importlib.import_module(cls.__module__)
            for part in cls.__qualname__.split("."):
                found = getattr(found, part)
        except Exception:  # noqa: BLE001
            found = None
        if found is not cls:
            return None, f"{cls.__module__}.{cls.__qualname__} cannot be imported by that name"
        return {"target": f"{cls.__module__}:{cls.__qualname__}", "file": None, "kwargs": kwargs}, ""

    def innermost(self, model: nn.Module, paths: list[str]) -> str | None:
        """The deepest of `paths` (module paths, innermost last) that can be referenced; '' (the
        root) does not count: the caller falls back to the whole model."""
        for path in reversed(paths):
            if path and self.of(model.get_submodule(path))[0] is not None:
                return path
        return None


def _json(value):
    """`value` as plain JSON data (tuples become lists), or TypeError naming what is not."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"the number {value}")
        return value
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json(v) for k, v in value.items()}
    raise TypeError(f"a {type(value).__name__}")


# ---------------------------------------------------------------- tracing and measuring


class _NeedsOpaque(Exception):
    """A node that maps to no op (or a forward fx cannot trace), with the module paths around
    it, outermost first."""

    def __init__(self, paths: list[str], why: str):
        super().__init__(why)
        self.paths, self.why = paths, why


class _Tracer(fx.Tracer):
    """Stops at modules that map to an op and at those already chosen to be opaque; a
    forward that fails to trace makes its module a candidate for opaque."""

    def __init__(self, model: nn.Module, opaque: dict[str, str]):
        super().__init__()
        self.opaque = opaque
        self.stack: list[str] = []
        # decided before tracing: reading a parameter while tracing would record a node for it
        self.mapped = {id(m) for m in model.modules() if module_op(m) is not None}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.opaque or id(m) in self.mapped or super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        path = self.path_of_module(m)
        if self.is_leaf_module(m, path):
            return super().call_module(m, forward, args, kwargs)
        self.stack.append(path)
        try:
            return super().call_module(m, forward, args, kwargs)
        except _NeedsOpaque:
            raise
        except Exception as err:  # noqa: BLE001 - fx reports untraceable code in many types
            why = (
                f"torch.fx cannot trace its forward ({type(err).__name__}: {str(err).splitlines()[0][:160]})"
            )
            raise _NeedsOpaque(["", *self.stack], why) from None
        finally:
            self.stack.pop()

    def trace(self, root, concrete_args=None):
        try:
            return super().trace(root, concrete_args)
        except _NeedsOpaque:
            raise
        except Exception as err:  # noqa: BLE001
            why = (
                f"torch.fx cannot trace its forward ({type(err).__name__}: {str(err).splitlines()[0][:160]})"
            )
            raise _NeedsOpaque([""], why) from None


class _Measurer(fx.Interpreter):
    """Runs the traced model once, keeping every value's type (tensors) or value (shape
    arithmetic), and the FLOPs of each opaque module."""

    def __init__(self, gm: fx.GraphModule, opaque: set[str]):
        super().__init__(gm)
        self.opaque = opaque
        self.values: dict[fx.Node, object] = {}
        self.flops: dict[str, int] = {}

    def measure(self, example: tuple) -> _Measurer:
        with torch.no_grad():
            self.run(*example)
        return self

    def run_node(self, n: fx.Node):
        if n.op == "call_module" and n.target in self.opaque:
            with FlopCounterMode(display=False) as counter:
                out = super().run_node(n)
            self.flops[n.target] = counter.get_total_flops()
        else:
            out = super().run_node(n)
        self.values[n] = _Meta(out) if isinstance(out, torch.Tensor) else out
        return out


def _measure(traced: fx.GraphModule, opaque: set[str], example: tuple) -> _Measurer:
    """Every value's shape, measured with fake tensors (shapes and FLOPs without computing
    anything: a GPT-2's forward costs seconds); with real ones where fake tensors cannot follow
    the code (data-dependent shapes)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            return _Measurer(traced, opaque).measure(tuple(mode.from_tensor(x) for x in example))
    except Exception:  # noqa: BLE001 - whatever fake tensors cannot do, real ones can
        return _Measurer(traced, opaque).measure(example)


class _Meta:
    """A measured tensor's shape and dtype (the tensor itself is not kept)."""

    def __init__(self, t: torch.Tensor):
        self.shape, self.dtype = tuple(t.shape), t.dtype

    @property
    def kind(self) -> str | None:
        if self.dtype.is_floating_point:
            return "float"
        return "long" if self.dtype == torch.int64 else None


# ---------------------------------------------------------------- modules and calls → ops


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _square(v) -> int | None:
    a, b = _pair(v)
    return a if a == b else None


def _conv(m: nn.Module, dims: int):
    if m.padding_mode != "zeros" or isinstance(m.padding, str) or any(d != 1 for d in m.dilation):
        return None
    k, s, p = (set(getattr(m, a)) for a in ("kernel_size", "stride", "padding"))
    if len(k) > 1 or len(s) > 1 or len(p) > 1:
        return None
    return f"Conv{dims}d", {
        "out_channels": m.out_channels,
        "kernel_size": k.pop(),
        "stride": s.pop(),
        "padding": p.pop(),
        "groups": m.groups,
        "bias": m.bias is not None,
    }


def _batchnorm(m, name):
    if not (m.affine and m.track_running_stats and m.momentum == 0.1):
        return None
    return name, {"eps": m.eps}


def _pool(m, name):
    if getattr(m, "ceil_mode", False) or getattr(m, "return_indices", False):
        return None
    if name == "MaxPool2d" and _square(m.dilation) != 1:
        return None
    if name == "AvgPool2d" and (not m.count_include_pad or m.divisor_override is not None):
        return None
    k, s, p = (
        _square(m.kernel_size),
        _square(m.stride if m.stride is not None else m.kernel_size),
        _square(m.padding),
    )
    if None in (k, s, p):
        return None
    return name, {"kernel_size": k, "stride": s, "padding": p}


def _adaptive(m):
    size = _pair(m.output_size)
    return (
        ("AdaptiveAvgPool2d", {"output_size": size[0]}) if None not in size and size[0] == size[1] else None
    )


def _layernorm(m):
    if len(m.normalized_shape) != 1 or not m.elementwise_affine or m.bias is None:
        return None
    return "LayerNorm", {"eps": m.eps}


def _embedding(m):
    if m.padding_idx is not None or m.max_norm is not None or m.scale_grad_by_freq or m.sparse:
        return None
    return "Embedding", {"num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim}


def _softmax(m):
    return ("Softmax", {}) if m.dim in (-1, None) else None


MODULES = {
    nn.Linear: lambda m: ("Linear", {"out_features": m.out_features, "bias": m.bias is not None}),
    nn.Conv1d: lambda m: _conv(m, 1),
    nn.Conv2d: lambda m: _conv(m, 2),
    nn.BatchNorm1d: lambda m: _batchnorm(m, "BatchNorm1d"),
    nn.BatchNorm2d: lambda m: _batchnorm(m, "BatchNorm2d"),
    nn.LayerNorm: _layernorm,
    nn.Dropout: lambda m: ("Dropout", {"p": m.p}),
    nn.ReLU: lambda m: ("ReLU", {}),
    nn.GELU: lambda m: ("GELU", {}) if m.approximate == "none" else None,
    nn.SiLU: lambda m: ("SiLU", {}),
    nn.Tanh: lambda m: ("Tanh", {}),
    nn.Sigmoid: lambda m: ("Sigmoid", {}),
    nn.Softmax: _softmax,
    nn.MaxPool2d: lambda m: _pool(m, "MaxPool2d"),
    nn.AvgPool2d: lambda m: _pool(m, "AvgPool2d"),
    nn.AdaptiveAvgPool2d: _adaptive,
    nn.Flatten: lambda m: ("Flatten", {}) if (m.start_dim, m.end_dim) == (1, -1) else None,
    nn.Embedding: _embedding,
    nn.Identity: lambda m: ("", {}),  # an alias of its input
}


def _attention(m):
    return "MultiheadSelfAttention", {"n_heads": m.n_heads, "causal": m.causal, "dropout": m.dropout}


def _block(m):
    ratio, rest = divmod(m.mlp[0].out_features, m.mlp[0].in_features)
    if rest:
        return None
    return "TransformerBlock", {**_attention(m.attn)[1], "mlp_ratio": ratio}


def _rnn(m, name):
    rnn = m.rnn
    return name, {
        "hidden_size": rnn.hidden_size,
        "num_layers": rnn.num_layers,
        "bidirectional": rnn.bidirectional,
    }


# Trainbench's own layers, as `engine.graph.layers` defines them and an exported model file
# copies them: a class of that name whose source is the same maps back to its op, so an
# exported model imports back op for op.
LAYERS = {
    "MultiheadSelfAttention": _attention,
    "TransformerBlock": _block,
    "PositionalEmbedding": lambda m: ("PositionalEmbedding", {"max_len": m.weight.shape[0]}),
    "LSTM": lambda m: _rnn(m, "LSTM"),
    "GRU": lambda m: _rnn(m, "GRU"),
    "Add": lambda m: ("Add", {}),
}
_SOURCES: dict[type, bool] = {}


def module_op(m: nn.Module) -> tuple[str, dict] | None:
    """(op, params) of a module that maps to a registry op as a whole; None otherwise."""
    rule = MODULES.get(type(m))
    if rule is not None:
        return rule(m)
    rule = LAYERS.get(type(m).__name__)
    return rule(m) if rule is not None and _ours(type(m)) else None


def _ours(cls: type) -> bool:
    """Whether `cls` is Trainbench's layer of that name: the class itself or a verbatim copy."""
    if cls not in _SOURCES:
        ours = getattr(layers, cls.__name__)
        try:
            _SOURCES[cls] = cls is ours or inspect.getsource(cls) == inspect.getsource(ours)
        except (OSError, TypeError):
            _SOURCES[cls] = False
    return _SOURCES[cls]


# call_function targets and call_method names that map to an op on their first argument
_ACTIVATIONS = {
    torch.relu: "ReLU",
    F.relu: "ReLU",
    "relu": "ReLU",
    "relu_": "ReLU",
    F.silu: "SiLU",
    torch.tanh: "Tanh",
    F.tanh: "Tanh",
    "tanh": "Tanh",
    torch.sigmoid: "Sigmoid",
    F.sigmoid: "Sigmoid",
    "sigmoid": "Sigmoid",
}
_ADD = {operator.add, operator.iadd, torch.add, "add", "add_", "__add__", "__iadd__"}
_CAT = {torch.cat, torch.concat}
_RESHAPE = {torch.reshape, torch.flatten, "view", "reshape", "flatten"}
_SAME = {"contiguous", "clone", "detach", "float", "to", "type_as"}  # aliases when the dtype stays
# calls that compute with sizes, never with tensor data: their values fold into constants
_SIZE = {"size", "dim", "numel", getattr, operator.getitem, len, operator.mul, operator.floordiv}
_SIZE |= {operator.add, operator.sub, operator.truediv}


# ---------------------------------------------------------------- the translation


class _Translator:
    def __init__(
        self, gm: fx.GraphModule, measured: _Measurer, refs: References, opaque: dict[str, str], name: str
    ):
        self.gm, self.m, self.refs, self.opaque_why = gm, measured, refs, opaque
        self.graph = Graph(name=name)
        self.state: dict[str, torch.Tensor] = {}
        self.scopes: dict[str, str] = {}
        self.opaque: list[dict] = []
        self.value: dict[fx.Node, tuple[str, object]] = {}  # ("node", id) | ("const", value)

    def translate(self):
        for n in self.gm.graph.nodes:
            self._node(n)
        self._ties()
        return self.graph, self.state, self.scopes, self.opaque

    # --- per fx node

    def _node(self, n: fx.Node) -> None:
        if n.op == "placeholder":
            meta = self._tensor(n)
            if meta.kind is None:
                raise ModelImportError(
                    f"the model's input {n.name} is {meta.dtype}; graphs take float or int64"
                )
            nid = self._add(n, "Input", {"shape": list(meta.shape[1:]), "dtype": meta.kind})
            self.value[n] = ("node", nid)
        elif n.op == "output":
            out = n.args[0]
            if not isinstance(out, fx.Node) or self.value.get(out, ("",))[0] != "node":
                self._cannot(n, "the model's output is not a single tensor")
            self.graph.output = self.value[out][1]
        elif n.op == "get_attr":
            self._cannot(n, f"it reads the tensor {n.target} directly")
        elif n.op == "call_module":
            self._module(n)
        else:
            self._call(n)

    def _module(self, n: fx.Node) -> None:
        m = self.gm.get_submodule(n.target)
        if n.target in self.opaque_why:
            self._opaque(n, m, self.opaque_why[n.target])
            return
        if isinstance(m, nn.MultiheadAttention) and self._self_attention(n, m):
            return
        mapped = module_op(m)
        if mapped is None:
            why = f"{type(m).__name__} maps to no registry op"
            self._opaque_or_cannot(n, m, why)
            return
        op, params = mapped
        sources = self._tensor_args(n)
        if sources is None:
            self._opaque_or_cannot(n, m, "it is called with arguments other than tensors")
            return
        if op == "":  # nn.Identity
            self.value[n] = self.value[n.args[0]]
            return
        problem = self._param_problem(op, params)
        if problem:
            self._opaque_or_cannot(n, m, problem)
            return
        nid = self._add(n, op, params, sources)
        self.value[n] = ("node", nid)
        for k, v in m.state_dict().items():
            self.state[f"{nid}.{k}"] = v

    def _self_attention(self, n: fx.Node, m: nn.MultiheadAttention) -> bool:
        """nn.MultiheadAttention called on one sequence as query, key and value, without masks:
        the registry's MultiheadSelfAttention (the same fused projections, in the same order)."""
        names = ("query", "key", "value")
        qkv = [n.args[i] if i < len(n.args) else n.kwargs.get(k) for i, k in enumerate(names)]
        rest = {k: v for k, v in n.kwargs.items() if k not in names}
        plain = rest.pop("need_weights", True) in (True, False) and all(
            v in (None, False) for v in rest.values()
        )
        fused = (
            m._qkv_same_embed_dim and m.in_proj_bias is not None and m.bias_k is None and not m.add_zero_attn
        )
        if not (m.batch_first and fused and plain and len(n.args) <= 3 and qkv[0] is qkv[1] is qkv[2]):
            return False
        if self.value.get(qkv[0], ("",))[0] != "node":
            return False
        params = {"n_heads": m.num_heads, "causal": False, "dropout": m.dropout}
        if self._param_problem("MultiheadSelfAttention", params):
            return False
        nid = self._add(n, "MultiheadSelfAttention", params, [qkv[0]])
        self.value[n] = ("tuple", nid)  # (output, weights): its first item is the node's output
        for ours, theirs in (("qkv", "in_proj_"), ("proj", "out_proj.")):
            self.state[f"{nid}.{ours}.weight"] = m.state_dict()[f"{theirs}weight"]
            self.state[f"{nid}.{ours}.bias"] = m.state_dict()[f"{theirs}bias"]
        return True

    def _call(self, n: fx.Node) -> None:
        target = n.target
        if target is operator.getitem and self.value.get(n.args[0], ("",))[0] == "tuple":
            if n.args[1] == 0:
                self.value[n] = ("node", self.value[n.args[0]][1])
            elif n.users:  # an unused one is left by `y, _ = attn(...)`
                self._cannot(n, "it uses the attention weights, which no registry op returns")
            return
        measured = self.m.values.get(n)
        if not isinstance(measured, _Meta):
            if target in _SIZE and all(self._foldable(a) for a in _flat(n.args, n.kwargs)):
                self.value[n] = ("const", measured)
                return
            self._cannot(
                n,
                f"{_name(target)} returns a {_kind(measured)} rather than one tensor: no registry op computes it",
            )
        tensors = [a for a in _flat(n.args, n.kwargs) if isinstance(a, fx.Node) and self._is_tensor(a)]
        x = tensors[0] if tensors else None
        if target in _SAME and x is not None and len(tensors) == 1:
            if self._tensor(x).dtype == measured.dtype and self._tensor(x).shape == measured.shape:
                self.value[n] = self.value[x]
                return
        if target in _ACTIVATIONS and len(tensors) == 1 and n.args and n.args[0] is x:
            self.value[n] = ("node", self._add(n, _ACTIVATIONS[target], {}, [x]))
            return
        if target in (F.gelu, "gelu") and n.kwargs.get("approximate", "none") == "none" and len(n.args) == 1:
            self.value[n] = ("node", self._add(n, "GELU", {}, [x]))
            return
        if target in (F.softmax, torch.softmax, "softmax") and len(tensors) == 1:
            dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
            if dim in (-1, len(measured.shape) - 1):
                self.value[n] = ("node", self._add(n, "Softmax", {}, [x]))
                return
        if target in (F.dropout, "dropout") and len(tensors) == 1:
            p = n.kwargs.get("p", n.args[1] if len(n.args) > 1 else 0.5)
            if isinstance(p, float) and p <= 0.99:
                self.value[n] = ("node", self._add(n, "Dropout", {"p": p}, [x]))
                return
        if target is F.adaptive_avg_pool2d and _square(
            n.args[1] if len(n.args) > 1 else n.kwargs["output_size"]
        ):
            size = _square(n.args[1] if len(n.args) > 1 else n.kwargs["output_size"])
            self.value[n] = ("node", self._add(n, "AdaptiveAvgPool2d", {"output_size": size}, [x]))
            return
        if target in _ADD and len(tensors) == 2 and len(n.args) == 2 and not n.kwargs:
            a, b = (self._tensor(t) for t in tensors)
            if a.shape == b.shape == measured.shape:
                self.value[n] = ("node", self._add(n, "Add", {}, tensors))
                return
        if target in _CAT and isinstance(n.args[0], list | tuple):
            dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
            parts = list(n.args[0])
            if len(parts) >= 2 and all(self._is_tensor(p) for p in parts) and isinstance(dim, int):
                dim %= len(measured.shape)
                if dim > 0:
                    self.value[n] = ("node", self._add(n, "Concat", {"dim": dim - 1}, parts))
                    return
        if target in _RESHAPE and x is not None and len(tensors) == 1:
            before = self._tensor(x)
            if measured.shape[:1] == before.shape[:1] and len(measured.shape) >= 2:
                if len(measured.shape) == 2 and len(before.shape) > 2:
                    op, params = "Flatten", {}
                elif len(measured.shape) == len(before.shape) and measured.shape == before.shape:
                    self.value[n] = self.value[x]
                    return
                else:
                    op, params = "Reshape", {"shape": list(measured.shape[1:])}
                self.value[n] = ("node", self._add(n, op, params, [x]))
                return
        self._cannot(n, f"{_name(target)} maps to no registry op")

    # --- opaque modules

    def _opaque_or_cannot(self, n: fx.Node, m: nn.Module, why: str) -> None:
        ref, _ = self.refs.of(m)
        if ref is None:
            self._cannot(n, why)
        self._opaque(n, m, why)

    def _opaque(self, n: fx.Node, m: nn.Module, why: str) -> None:
        ref, reason = self.refs.of(m)
        if ref is None:
            self._cannot(n, f"{why}; and it cannot be kept as it is: {reason}")
        sources = self._tensor_args(n)
        out = self.m.values.get(n)
        if sources is None or not isinstance(out, _Meta) or out.kind is None:
            self._cannot(n, f"{why}; and its inputs or output are not single tensors")
        inputs = [self._type(self._tensor(s)) for s in sources]
        if any(t["dtype"] is None for t in inputs):
            self._cannot(n, f"{why}; and it takes a tensor of dtype other than float or int64")
        inside = repr(m).splitlines()
        if len(inside) > INSIDE_LINES:
            inside = [*inside[: INSIDE_LINES - 1], f"… ({len(inside) - INSIDE_LINES + 1} more lines)"]
        params = {
            **ref,
            "inputs": inputs,
            "output": self._type(out),
            "parameters": {k: list(p.shape) for k, p in m.named_parameters()},
            "flops": int(self.m.flops.get(n.target, 0)) // BATCH,
            "inside": "\n".join(inside),
        }
        nid = self._add(n, "Module", params, sources)
        self.value[n] = ("node", nid)
        for k, v in m.state_dict().items():
            self.state[f"{nid}.{k}"] = v
        self.opaque.append({"node": nid, "target": ref["target"], "why": why})

    # --- shared weights

    def _ties(self) -> None:
        """Parameters the original shares between modules (a tied LM head) become a `tie`."""
        first: dict[tuple, str] = {}
        params = {_where(p) for p in self.gm.parameters()}
        for name, t in self.state.items():
            key = _where(t)
            if key not in params:
                continue
            if key in first:
                self.graph.tie[name] = first[key]
            else:
                first[key] = name

    # --- helpers

    def _add(self, n: fx.Node, op: str, params: dict, sources=()) -> str:
        nid = self._id(n.name)
        self.graph.add_node(op, params, (0.0, 0.0), nid)
        for port, src in enumerate(sources):
            self.graph.connect(self.value[src][1], nid, port)
        stack = list(n.meta.get("nn_module_stack", {}))
        if n.op == "call_module":
            stack.append(n.target)
        self.scopes[nid] = stack[-1] if stack else ""
        return nid

    def _id(self, name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", name)[:56] or "node"
        if not base[0].isalpha():
            base = "n" + base
        if keyword.iskeyword(base) or base in TORCH_MODULE_NAMES:
            base += "_"
        return self.graph.free_id(base)

    def _param_problem(self, op: str, params: dict) -> str | None:
        problems: list = []
        check_fields(OPS[op].params, params, "", problems)
        return (
            f"its {op} parameters are outside the registry's range ({problems[0][1]})" if problems else None
        )

    def _tensor_args(self, n: fx.Node) -> list[fx.Node] | None:
        if n.kwargs or not all(isinstance(a, fx.Node) and self._is_tensor(a) for a in n.args):
            return None
        if not all(self.value.get(a, ("",))[0] == "node" for a in n.args):
            return None
        return list(n.args)

    def _is_tensor(self, a) -> bool:
        return isinstance(a, fx.Node) and isinstance(self.m.values.get(a), _Meta)

    def _foldable(self, a) -> bool:
        if not isinstance(a, fx.Node):
            return True
        return self.value.get(a, ("",))[0] == "const" or self._is_tensor(a)

    def _tensor(self, a: fx.Node) -> _Meta:
        return self.m.values[a]

    @staticmethod
    def _type(meta: _Meta) -> dict:
        return {"shape": list(meta.shape[1:]), "dtype": meta.kind}

    def _cannot(self, n: fx.Node, why: str):
        stack = list(n.meta.get("nn_module_stack", {}))
        if n.op == "call_module":
            stack.append(n.target)
        raise _NeedsOpaque(["", *stack], f"{n.name}: {why}")


def _where(t: torch.Tensor) -> tuple:
    """Where a tensor's values live: equal for a parameter and the state dict's view of it."""
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))


def _flat(args, kwargs) -> list:
    out = []
    for a in [*args, *kwargs.values()]:
        out.extend(_flat(a, {}) if isinstance(a, list | tuple) else [a])
    return out


def _kind(value) -> str:
    cls = type(value)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _name(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _exported_or_whole(model, source, kwargs, file, example, expected, params_before, why) -> Imported:
    from engine.graph.importers.aten import Unmapped, import_exported

    try:
        imported = import_exported(model, example, source, params_before, expected)
    except Unmapped as err:
        return _whole(model, source, kwargs, file, example, expected, params_before, f"{why}; {err}")
    imported.warnings.append(f"torch.fx could not map the model ({why}): it was captured with torch.export")
    return imported


def _whole(model, source, kwargs, file, example, expected, params_before, why) -> Imported:
    """The whole model as one opaque node, when nothing smaller can be kept as it is."""
    try:
        kwargs = _json(kwargs)
    except TypeError as err:
        raise ModelImportError(
            f"{why}; the model cannot be kept whole either: its arguments hold {err}"
        ) from None
    where, _, attr = source.rpartition(":") if ":" in source else source.rpartition(".")
    module = re.sub(r"\W", "_", Path(where).stem) if file else where
    target = f"{module if module[:1].isalpha() else 'm_' + module}:{attr}"
    if isinstance(model, layers.HuggingFace):  # built from a config: the wrapper is the reference
        target, kwargs = "engine.graph.layers:HuggingFace", model.reference
    graph = Graph(name=type(model).__name__)
    x = example[0]
    dtype = "long" if x.dtype == torch.int64 else "float"
    graph.add_node("Input", {"shape": list(x.shape[1:]), "dtype": dtype}, (0.0, 0.0), "x")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*example)
    inside = repr(model).splitlines()
    params = {
        "target": target,
        "file": str(file) if file else None,
        "kwargs": kwargs,
        "inputs": [{"shape": list(x.shape[1:]), "dtype": dtype}],
        "output": {
            "shape": list(expected.shape[1:]),
            "dtype": "float" if expected.dtype.is_floating_point else "long",
        },
        "parameters": {k: list(p.shape) for k, p in model.named_parameters()},
        "flops": counter.get_total_flops() // BATCH,
        "inside": "\n".join(inside[:INSIDE_LINES]),
    }
    graph.add_node("Module", params, (180.0, 0.0), "model")
    graph.connect("x", "model")
    graph.output = "model"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    imported = Imported(graph, state, source, "torch.fx", params_before, example, expected.detach())
    imported.opaque = [{"node": "model", "target": target, "why": why}]
    imported.warnings.append("nothing inside the model could be mapped on its own: it is one opaque node")
    return imported
