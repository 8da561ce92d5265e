"""Hostile input through `trainbench validate`: hundreds of mutated specs and graphs (types,
ranges, sizes, structure, encodings, file kinds) and ~55 broken data sets. Every case must
end in a verdict — exit 0 with a valid table, or a non-zero exit with one error line (plus
one line per problem, each naming its path) — never a traceback or a hang; and for the data
sets validate's verdict must be the loader's (what a run would find).

The cases run in one worker process (`python -m tests.engine.test_hostile_inputs --worker`)
through `engine.cli.main`, with an address-space limit, so a regression that allocates
gigabytes fails the case instead of the machine, and a per-case alarm as hang detector (a
generous timeout, not a speed bound). A sample runs as real `trainbench` subprocesses.

Run the worker by hand for the counts: `python -m tests.engine.test_hostile_inputs --report`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import random
import re
import signal
import struct
import sys
import tempfile
import traceback
import zlib
from pathlib import Path

from tests.conftest import EXAMPLES, ROOT, TEMPLATES, trainbench

HANG_S = 60  # per case: only a hang gets near this
SEED = 12

# ------------------------------------------------------------------ what comes out of a case

PROBLEM_LINE = re.compile(r"^  ([A-Za-z_][\w.\[\]/]*: |… and [\d,]+ more problems$)")


def verdict_problems(rc: int, out: str, err: str) -> list[str]:
    """What is wrong with one validate run's output (empty: a clean verdict)."""
    wrong = []
    if "Traceback" in err or "Traceback" in out:
        wrong.append("traceback")
    if len(err) > 20_000:
        wrong.append(f"error output of {len(err):,} characters")
    if rc == 0:
        if ": valid;" not in out:
            wrong.append("exit 0 without a valid table")
        return wrong
    lines = [line for line in err.splitlines() if not line.startswith("trainbench: warning:")]
    if not lines or not lines[0].startswith("trainbench: error: "):
        wrong.append(f"no error line: {err[:200]!r}")
        return wrong
    head = re.match(r"trainbench: error: (\d+) problems:$", lines[0])
    if head:
        if len(lines) != 1 + int(head.group(1)):
            wrong.append(f"{head.group(1)} problems announced, {len(lines) - 1} lines follow")
        wrong += [
            f"problem line names no path: {line!r}" for line in lines[1:] if not PROBLEM_LINE.match(line)
        ]
    elif len(lines) != 1:
        wrong.append(f"{len(lines)} lines for one problem: {err[:300]!r}")
    return wrong


# ------------------------------------------------------------------ base documents


def _base_specs() -> dict[str, dict]:
    """The train examples, each self-contained (model inline, data paths absolute)."""
    out = {}
    for name in ("digits_cnn", "digits_mlp", "char_gpt", "wine_csv"):
        doc = json.loads((EXAMPLES / f"{name}.json").read_text())
        if isinstance(doc["model"], str):
            doc["model"] = json.loads((EXAMPLES / doc["model"]).read_text())
        if doc["data"].get("path"):
            doc["data"]["path"] = str(EXAMPLES / doc["data"]["path"])
        out[name] = doc
    resnet = copy.deepcopy(out["digits_cnn"])
    resnet["model"] = json.loads((TEMPLATES / "resnet_cnn.json").read_text())
    out["digits_resnet"] = resnet
    return out


NUMBERS_BAD = [1e308, -1e308, 10**30, "7", [1], {"a": 1}, True, math.nan, math.inf, -math.inf, 2**70]
STRINGS_BAD = [5, 1.5, [], {}, True, ["a"]]
IDS_BAD = [
    "forward",
    "training",
    "train",
    "to",
    "class",
    "__init__",
    "_x",
    "",
    "a.b",
    "a b",
    123,
    None,
    [],
    "x" * 65,
]
IDS_FINE = ["output", "inputs", "steps", "frees", "node", "self", "match", "x_1"]


class Cases:
    """Collects cases: (name, argv after `validate`, expected: error | ok | either)."""

    def __init__(self, root: Path):
        self.root, self.items, self.rng = root, [], random.Random(SEED)

    def write(self, doc, name: str, raw: bytes | None = None) -> str:
        path = self.root / f"{len(self.items):04d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:60]}.json"
        path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
        return str(path)

    def add(self, name, doc=None, expect="error", raw=None, argv=None, path=None, match=""):
        """`match`: a text the error must contain (the case fails for the reason it was made for)."""
        if argv is None:
            argv = [path or self.write(doc, name, raw)]
        self.items.append({"name": name, "argv": argv, "expect": expect, "match": match})


def _field_cases(c: Cases, base: dict) -> None:
    from engine.spec import SECTIONS, TOP_LEVEL

    fields = [("", f) for f in TOP_LEVEL if f.name not in ("model", "schema")]
    fields += [(s, f) for s, fs in SECTIONS.items() for f in fs]
    for section, f in fields:
        if f.kind in ("int", "float", "ints", "floats"):
            bad = NUMBERS_BAD + ([1.5] if f.kind == "int" else [])
            if f.kind in ("ints", "floats"):
                bad = [[], [1e308], ["a"], list(range(5000)), 3]
        elif f.kind == "bool":
            bad = [1, "true", [], None]
        elif f.kind in ("str", "choice"):
            bad = STRINGS_BAD + (["no-such-choice"] if f.kind == "choice" else [])
        else:  # any: shape is checked later, if at all
            bad = [[[[]]], {"a": [1]}, math.nan, "x" * 100_000]
        for value in c.rng.sample(bad, min(4, len(bad))):
            doc = copy.deepcopy(base)
            target = doc.setdefault(section, {}) if section else doc
            target[f.name] = value
            expect = "either" if f.kind == "any" or (value is None and f.optional) else "error"
            c.add(f"{section or 'top'}.{f.name}={str(value)[:20]}", doc, expect)


def _structure_cases(c: Cases, base: dict) -> None:
    from engine.spec import SECTIONS

    for section in SECTIONS:
        for value in ([], "x", 1, [{}]):
            doc = copy.deepcopy(base)
            doc[section] = value
            c.add(f"{section} is {type(value).__name__}", doc)
    for value in ([base], "spec", 3, None, True):
        c.add(f"document is {type(value).__name__}", value)
    for schema in ("1", math.nan, 2, 0, True, 1e308, -1, [1]):
        c.add(f"schema={schema}", {**base, "schema": schema})
    c.add("unknown top-level key", {**base, "colour": "red"})
    c.add("tags nested 150 deep", {**base, "tags": json.loads("[" * 150 + "]" * 150)})
    c.add("bom", raw=b"\xef\xbb\xbf" + json.dumps(base).encode(), expect="ok")
    c.add("utf-16", raw=json.dumps(base).encode("utf-16"))
    c.add("latin-1 name", raw=json.dumps({**base, "name": "café"}, ensure_ascii=False).encode("latin-1"))
    c.add("invalid utf-8", raw=b'{"name": "\xff\xfe"}')
    c.add("nul bytes", raw=b"\x00" * 100)
    c.add("empty file", raw=b"")
    c.add("whitespace only", raw=b"   \n ")
    c.add("truncated json", raw=json.dumps(base).encode()[:-7])
    c.add("json nested 10,000 deep", raw=b"[" * 10_000 + b"]" * 10_000)
    c.add(
        "json nested 1,000 deep in a field",
        raw=json.dumps({**base, "name": "x"}).encode()[:-1]
        + b', "description": '
        + b"[" * 1000
        + b"]" * 1000
        + b"}",
    )
    c.add(
        "a 5,000-digit integer",
        raw=json.dumps(base).encode()[:-1] + b', "description": ' + b"9" * 5000 + b"}",
    )
    big = c.root / "big.json"
    with big.open("wb") as fh:  # sparse: 2 GiB on paper, nothing on disk
        fh.truncate(2**31)
    c.add("a 2 GiB spec", path=str(big))
    c.add("spec is a folder", path=str(c.root))
    c.add("spec does not exist", path=str(c.root / "missing.json"))
    c.add("spec is /dev/null", path="/dev/null")
    c.add("spec is /dev/zero", path="/dev/zero")
    loop = c.root / "loop.json"
    loop.symlink_to(loop)
    c.add("spec is a symlink loop", path=str(loop))
    for sets in (
        ["train.epochs=1e308"],
        ["train=5"],
        ["a.b.c=1"],
        ["="],
        ["noequals"],
        ["model.nodes=5"],
        ["train.epochs.x=1"],
        ["data.path=\u0000x"],
        ["train.epochs=" + "[" * 5000],
    ):
        c.add(
            f"--set {sets[0][:20]}",
            argv=[c.write(base, "set-base"), *[a for s in sets for a in ("--set", s)]],
        )
    c.add("--set fine", argv=[c.write(base, "set-ok"), "--set", "train.epochs=2"], expect="ok")


def _renamed(param: str, old: str, new) -> str:
    node, _, rest = param.partition(".")
    return f"{new}.{rest}" if node == old and isinstance(new, str) else param


def _graph_cases(c: Cases, name: str, base: dict) -> None:
    from engine.graph.ops import OPS

    graph = base["model"]

    def with_graph(mutate, label: str, expect: str = "error", as_file: bool = False):
        g = copy.deepcopy(graph)
        mutate(g)
        doc = copy.deepcopy(base)
        if as_file:
            doc["model"] = c.write(g, f"{name}-graph-{label}")
        else:
            doc["model"] = g
        c.add(f"{name}: {label}", doc, expect)

    nodes = graph["nodes"]
    for i in c.rng.sample(range(len(nodes)), min(3, len(nodes))):
        old = nodes[i]["id"]
        for new in c.rng.sample(IDS_BAD, 5) + c.rng.sample(IDS_FINE, 2):

            def rename(g, i=i, old=old, new=new):
                g["nodes"][i]["id"] = new
                for e in g["edges"]:
                    e["from"] = new if e["from"] == old else e["from"]
                    e["to"] = new if e["to"] == old else e["to"]
                if g.get("output") == old:
                    g["output"] = new
                g["tie"] = {  # a tie names its nodes' parameters: it follows the rename
                    _renamed(k, old, new): _renamed(v, old, new) for k, v in g.get("tie", {}).items()
                }

            with_graph(rename, f"id {old}->{str(new)[:12]}", "ok" if new in IDS_FINE else "error")
        for op in ("Conv3d", 5, None, ["Linear"], {"a": 1}):
            with_graph(lambda g, i=i, op=op: g["nodes"][i].__setitem__("op", op), f"op {op}")
        for params in ([], "x", 5):
            with_graph(lambda g, i=i, p=params: g["nodes"][i].__setitem__("params", p), f"params {params}")
        for pos in ("x", [1], None, [True, 0], [1, 2, 3], [10**400, 0]):
            with_graph(lambda g, i=i, p=pos: g["nodes"][i].__setitem__("pos", p), f"pos {pos}")
        for pos in ([math.nan, math.inf], [1e308, -1e308]):  # any two numbers: the designer re-lays them out
            with_graph(lambda g, i=i, p=pos: g["nodes"][i].__setitem__("pos", p), f"pos {pos}", expect="ok")
        op = OPS.get(nodes[i]["op"])
        for f in (op.params if op else ())[:3]:
            if f.kind in ("int", "float"):
                values = c.rng.sample(NUMBERS_BAD, 3)
            elif f.kind in ("ints", "floats"):
                values = [[], list(range(100)), ["a"]]
            elif f.kind == "graph":
                values = [5, [], {"nodes": 5}]
            elif f.kind == "bool":
                values = [1, "true", None]
            else:
                values = c.rng.sample(STRINGS_BAD, 3)
            for v in values:
                with_graph(
                    lambda g, i=i, k=f.name, v=v: g["nodes"][i].setdefault("params", {}).__setitem__(k, v),
                    f"param {f.name}={str(v)[:12]}",
                )
    edges = graph["edges"]
    for j in c.rng.sample(range(len(edges)), min(2, len(edges))):
        for port in (-1, 10**9, "0", 1.5, True, None, 63):
            with_graph(lambda g, j=j, p=port: g["edges"][j].__setitem__("port", p), f"port {port}")
        for end in ("from", "to"):
            for v in ("nope", 5, [], None):
                with_graph(lambda g, j=j, e=end, v=v: g["edges"][j].__setitem__(e, v), f"edge {end}={v}")
        with_graph(lambda g, j=j: g["edges"].append(dict(g["edges"][j])), "duplicate edge")
        with_graph(
            lambda g, j=j: g["edges"].append({"from": g["edges"][j]["to"], "to": g["edges"][j]["to"]}),
            "self loop",
        )
        with_graph(
            lambda g, j=j: g["edges"].append(
                {"from": g["edges"][-1]["to"], "to": g["edges"][j]["from"], "port": 1}
            ),
            "cycle",
        )
        with_graph(lambda g, j=j: g["edges"].pop(j), "edge removed")
        with_graph(lambda g, j=j: g["edges"][j].__setitem__("colour", "red"), "edge field")
    for out in ("nope", 5, [], ""):
        with_graph(lambda g, o=out: g.__setitem__("output", o), f"output {out}")
    for key, value in (
        ("nodes", {}),
        ("nodes", "x"),
        ("edges", {}),
        ("edges", 5),
        ("version", "1"),
        ("version", math.nan),
        ("version", 2),
        ("version", True),
        ("name", 5),
        ("format", "x"),
        ("colour", 1),
    ):
        with_graph(lambda g, k=key, v=value: g.__setitem__(k, v), f"{key}={value}")
    with_graph(lambda g: None, "as a file", expect="ok", as_file=True)
    with_graph(lambda g: g["nodes"].append({"id": "zz", "op": "ReLU"}), "dangling node", as_file=True)


def _exhaustion_cases(c: Cases, specs: dict) -> None:
    mlp, gpt = specs["digits_mlp"], specs["char_gpt"]

    def spec(base, **sections):
        doc = copy.deepcopy(base)
        for k, v in sections.items():
            doc[k] = {**doc.get(k, {}), **v} if isinstance(v, dict) and k != "model" else v
        return doc

    chain = lambda *nodes: {  # noqa: E731 - a graph literal builder
        "nodes": [{"id": "x", "op": "Input", "params": {"shape": [1, 8, 8]}}, {"id": "f", "op": "Flatten"}]
        + [{"id": i, "op": op, "params": p} for i, op, p in nodes],
        "edges": [
            {"from": a, "to": b}
            for a, b in zip(["x", "f", *[n[0] for n in nodes]], ["f", *[n[0] for n in nodes]], strict=False)
        ],
    }
    c.add(
        "samples 1e8",
        spec(mlp, data={"source": "synthetic_classification", "samples": 10**8}),
        match="data.samples: must be >= 10 and <= 1,000,000",
    )
    c.add(
        "samples 1e308",
        spec(mlp, data={"source": "synthetic_classification", "samples": 1e308}),
        match="data.samples: must be >= 10 and <= 1,000,000",
    )
    c.add(
        "seed 1e308", spec(mlp, train={"seed": 1e308}), match="train.seed: must be >= 0 and <= 4,294,967,295"
    )
    c.add(
        "split_seed 2**64",
        spec(mlp, data={"source": "digits", "split_seed": 2**64}),
        match="data.split_seed: must be",
    )
    c.add(
        "image_size 10^5",
        spec(mlp, data={"source": "images", "path": str(c.root), "image_size": [10**5, 10**5]}),
        match="data.image_size: every item must be >= 1 and <= 4096",
    )
    c.add(
        "Linear of 10^12 features",
        spec(mlp, model=chain(("fc", "Linear", {"out_features": 10**12}))),
        match="out_features: must be >= 1 and <= 1,048,576",
    )
    c.add(
        "Linear that does not fit",
        spec(
            mlp,
            model=chain(
                ("a", "Linear", {"out_features": 1 << 20}),
                ("b", "Linear", {"out_features": 1 << 20}),
                ("c", "Linear", {"out_features": 10}),
            ),
        ),
        match="the largest part is the parameters",
    )
    wide = chain(
        ("r", "Reshape", {"shape": [1, 8, 8]}),
        ("conv", "Conv2d", {"out_channels": 1 << 17}),
        ("f2", "Flatten", {}),
        ("fc", "Linear", {"out_features": 10}),
    )
    c.add(
        "activations that do not fit",
        spec(mlp, model=wide, train={"batch_size": 1024}),
        match="train.batch_size: needs ~",
    )
    c.add(
        "a batch larger than the data",
        spec(gpt, train={"batch_size": 1 << 20}),
        match="exceeds the 605 training samples",
    )
    tab = {
        "nodes": [
            {"id": "x", "op": "Input", "params": {"shape": [10**4]}},
            {"id": "fc", "op": "Linear", "params": {"out_features": 3}},
        ],
        "edges": [{"from": "x", "to": "fc"}],
    }
    c.add(
        "a data set that does not fit",
        spec(
            mlp,
            model=tab,
            data={"source": "synthetic_classification", "samples": 10**6, "features": 10**4},
            train={},
        ),
        match="the data set, held in memory",
    )
    c.add(
        "a context longer than the text, forced",
        argv=[
            c.write(
                spec(
                    gpt,
                    train={"batch_size": 20},
                    data={"source": "text", "path": gpt["data"]["path"], "context": 1 << 16},
                ),
                "ctx",
            ),
            "--force",
        ],
    )
    add = {
        "nodes": [{"id": "x", "op": "Input", "params": {"shape": [4]}}, {"id": "s", "op": "Add"}],
        "edges": [{"from": "x", "to": "s", "port": 0}, {"from": "x", "to": "s", "port": 10**9}],
    }
    c.add("Add port 10^9", spec(mlp, model=add), match="port 1e+09 does not exist")
    add7 = copy.deepcopy(add)
    add7["edges"][1]["port"] = 10**7
    c.add("Add port 10^7", spec(mlp, model=add7), match="port 1e+07 does not exist")
    body = {
        "nodes": [{"id": "i", "op": "Input"}, {"id": "r", "op": "ReLU"}],
        "edges": [{"from": "i", "to": "r"}],
    }
    for _ in range(3):
        body = {
            "nodes": [
                {"id": "i", "op": "Input"},
                {"id": "r", "op": "Repeat", "params": {"times": 1024, "body": body}},
            ],
            "edges": [{"from": "i", "to": "r"}],
        }
    nested = chain(("rep", "Repeat", {"times": 1024, "body": body}), ("fc", "Linear", {"out_features": 10}))
    c.add("Repeat nested 3x1024", spec(mlp, model=nested), match="the model unrolls to")
    deep = {
        "nodes": [{"id": "i", "op": "Input"}, {"id": "r", "op": "ReLU"}],
        "edges": [{"from": "i", "to": "r"}],
    }
    for _ in range(12):
        deep = {
            "nodes": [
                {"id": "i", "op": "Input"},
                {"id": "r", "op": "Repeat", "params": {"times": 1, "body": deep}},
            ],
            "edges": [{"from": "i", "to": "r"}],
        }
    c.add(
        "Repeat nested 12 deep",
        spec(
            mlp,
            model=chain(
                ("rep", "Repeat", {"times": 1, "body": deep}), ("fc", "Linear", {"out_features": 10})
            ),
        ),
        match="bodies nest more than 8 deep",
    )
    huge = chain(("fc", "Linear", {"out_features": 10}))
    huge["nodes"][0]["params"]["shape"] = [1 << 24] * 6
    c.add("Input of 2^144 values", spec(mlp, model=huge), match="the Input takes 16777216×")
    c.add(
        "conv 2^20 channels",
        spec(
            mlp,
            model=chain(
                ("r", "Reshape", {"shape": [1, 8, 8]}),
                ("conv", "Conv2d", {"out_channels": 1 << 20}),
                ("f2", "Flatten", {}),
                ("fc", "Linear", {"out_features": 10}),
            ),
        ),
        match="needs ~",
    )
    relus = [(f"r{i}", "ReLU", {}) for i in range(20_000)]
    c.add(
        "20,000-node chain",
        spec(mlp, model=chain(*relus, ("fc", "Linear", {"out_features": 10}))),
        expect="ok",
    )
    many = [(f"r{i}", "Linear", {"out_features": 0}) for i in range(2000)]
    c.add("2,000 bad nodes", spec(mlp, model=chain(*many)), match="more problems")
    c.add("model is a number", spec(mlp, model=5))
    c.add("model path with NUL", spec(mlp, model="a\u0000b.json"), match="NUL")
    c.add("model is /dev/zero", spec(mlp, model="/dev/zero"), match="not a regular file (a character device)")
    c.add("model is a folder", spec(mlp, model=str(c.root)))
    c.add("model is the spec itself", spec(mlp, model=c.write(mlp, "self")))
    c.add(
        "data.path is /dev/zero",
        spec(gpt, data={"path": "/dev/zero"}),
        match="not a regular file (a character device)",
    )
    c.add("data.path is a folder", spec(gpt, data={"path": str(c.root)}))
    c.add("data.path missing", spec(gpt, data={"path": str(c.root / "none.txt")}))
    c.add("cuda asked, none here", spec(mlp, hardware={"device": "cuda"}), expect="either")


INPUTS = ([3, 8, 8], [3, 8], [8], [6, 16])  # images, channels × length, features, a sequence


def _op_cases(c: Cases, base: dict) -> None:
    """Every op on every kind of input, then each of its params at and past its limits: the
    shape and count rules must answer with a problem, never raise (0 once divided by zero)."""
    from engine.graph.model import Graph
    from engine.graph.ops import OPS
    from engine.graph.shapes import analyze

    def graph(op: str, shape: list, params: dict) -> dict:
        inputs = max(OPS[op].min_inputs, 1) if OPS[op].max_inputs != 0 else 0
        nodes = [
            {"id": "x", "op": "Input", "params": {"shape": shape}},
            {"id": "n", "op": op, "params": params},
        ]
        edges = [{"from": "x", "to": "n", "port": p} for p in range(inputs)]
        return {"nodes": nodes, "edges": edges, "output": "n"}

    for name, op in OPS.items():
        fits = [s for s in INPUTS if not analyze(Graph.from_dict(graph(name, s, {}))).problems]
        for shape in INPUTS:
            c.add(f"{name} on {shape}", {**base, "model": graph(name, shape, {})}, expect="either")
        shape = fits[0] if fits else INPUTS[0]
        for f in op.params:
            if f.kind in ("int", "float"):
                top = f.max if f.max is not None else 10**6
                values = [0, -1, top, top + 1, 1e-300 if f.kind == "float" else 1]
            elif f.kind in ("ints", "floats"):
                values = [[0], [0, -1], [-1, -1], [1] * 7, [2**24], [-1]]
            elif f.kind == "choice":
                values = list(f.choices)
            else:
                continue
            for v in values:
                c.add(
                    f"{name}.{f.name}={v}",
                    {**base, "model": graph(name, shape, {f.name: v})},
                    expect="either",
                )


def spec_cases(root: Path) -> Cases:
    c = Cases(root)
    specs = _base_specs()
    for name, doc in specs.items():
        c.add(f"{name} as is", doc, expect="ok")
    _field_cases(c, specs["digits_cnn"])
    _field_cases(c, specs["char_gpt"])
    _structure_cases(c, specs["digits_mlp"])
    for name in ("digits_cnn", "digits_resnet", "char_gpt", "wine_csv"):
        _graph_cases(c, name, specs[name])
    _exhaustion_cases(c, specs)
    _op_cases(c, specs["digits_mlp"])
    return c


# ------------------------------------------------------------------ hostile data sets


def _png(width: int, height: int, body: bytes | None = None) -> bytes:
    """A PNG with the given header; `body` replaces the image data (a bomb declares a huge size
    over a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = (
        body
        if body is not None
        else zlib.compress(b"".join(b"\x00" + bytes(range(width)) for _ in range(height)))
    )
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def data_cases(root: Path) -> Cases:
    """~55 data sets, each with a model that fits the data it means to be."""
    c = Cases(root)

    def tabular(features: int, classes: int) -> dict:
        return {
            "nodes": [
                {"id": "x", "op": "Input", "params": {"shape": [features]}},
                {"id": "fc", "op": "Linear", "params": {"out_features": classes}},
            ],
            "edges": [{"from": "x", "to": "fc"}],
        }

    def csv_case(name: str, text: str | bytes, features: int = 2, classes: int = 2, **data):
        path = root / f"{len(c.items):03d}.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        doc = {
            "model": tabular(features, classes),
            "data": {"source": "csv", "path": str(path), **data},
            "train": {"batch_size": 4, "epochs": 1},
        }
        c.add(f"csv: {name}", doc, expect="either")

    rows = "".join(f"{i},{i % 3},{'a' if i % 2 else 'b'}\n" for i in range(30))
    csv_case("fine", "x,y,t\n" + rows)
    csv_case("empty", "")
    csv_case("header only", "x,y,t\n")
    csv_case("ragged", "x,y,t\n1,2,a\n3,b\n" + rows)
    csv_case("non-numeric", "x,y,t\n1,zz,a\n" + rows)
    csv_case("inf", "x,y,t\n1,inf,a\n" + rows)
    csv_case("-inf and 1e999", "x,y,t\n-inf,1e999,a\n" + rows)
    csv_case("nan", "x,y,t\nnan,1,a\n" + rows)
    csv_case("missing cell", "x,y,t\n1,,a\n" + rows)
    csv_case("beyond float32", "x,y,t\n1e39,1,a\n" + rows)
    csv_case("many bad cells", "x,y,t\n" + "q,w,a\n" * 40 + rows)
    csv_case("single class", "x,y,t\n" + "".join(f"{i},{i},a\n" for i in range(30)))
    csv_case("target missing", "x,y,t\n" + rows, target="label")
    csv_case("target only", "t\n" + "a\nb\n" * 10, features=0)
    csv_case("target missing a value", "x,y,t\n1,2,\n" + rows)
    csv_case("bom", b"\xef\xbb\xbf" + ("x,y,t\n" + rows).encode())
    csv_case("utf-16", ("x,y,t\n" + rows).encode("utf-16"))
    csv_case("nul byte", b"x,y,t\n1,2\x00,a\n" + rows.encode())
    csv_case("huge header field", "x" * 200_000 + ",y,t\n" + rows)
    csv_case(
        "10,000 columns",
        ",".join(f"c{i}" for i in range(10_000))
        + "\n"
        + ("1," * 9_999 + "a\n") * 3
        + ("1," * 9_999 + "b\n") * 3,
        features=9_999,
    )
    csv_case("quoted newline", 'x,y,t\n1,2,"a\nb"\n' + rows, classes=3)
    csv_case("blank lines", "x,y,t\n\n\n" + rows)
    csv_case("crlf", ("x,y,t\n" + rows).replace("\n", "\r\n"))
    csv_case("semicolons", "x;y;t\n" + rows.replace(",", ";"))
    csv_case("one row", "x,y,t\n1,2,a\n")
    csv_case("batch larger than the data", "x,y,t\n1,2,a\n3,4,b\n5,6,a\n")
    csv_case(
        "regression with text",
        "x,y\n" + "".join(f"{i},{i * 0.5}\n" for i in range(30)) + "1,abc\n",
        features=1,
        classes=1,
    )
    csv_case(
        "regression target inf",
        "x,y\n" + "".join(f"{i},{i * 0.5}\n" for i in range(30)) + "1,inf\n",
        features=1,
        classes=1,
    )
    csv_case("a PNG named .csv", _png(4, 4))
    csv_case("model does not match", "x,y,t\n" + rows, features=5)
    for name, path in (
        ("a folder", str(root)),
        ("/dev/zero", "/dev/zero"),
        ("missing", str(root / "nope.csv")),
    ):
        doc = {"model": tabular(2, 2), "data": {"source": "csv", "path": path}, "train": {"batch_size": 4}}
        c.add(f"csv: {name}", doc, expect="either")

    def image_case(name: str, build, channels: int = 3, classes: int = 2, **data):
        folder = root / f"img{len(c.items):03d}"
        folder.mkdir()
        build(folder)
        model = {
            "nodes": [
                {"id": "x", "op": "Input", "params": {"shape": [channels, 8, 8]}},
                {"id": "f", "op": "Flatten"},
                {"id": "fc", "op": "Linear", "params": {"out_features": classes}},
            ],
            "edges": [{"from": "x", "to": "f"}, {"from": "f", "to": "fc"}],
        }
        doc = {
            "model": model,
            "data": {"source": "images", "path": str(folder), "image_size": [8, 8], **data},
            "train": {"batch_size": 2, "epochs": 1},
        }
        c.add(f"images: {name}", doc, expect="either")

    def classes(*names, files=3, content=None):
        def build(folder):
            for n in names:
                (folder / n).mkdir()
                for i in range(files):
                    (folder / n / f"{i}.png").write_bytes(content(i) if content else _png(8, 8))

        return build

    image_case("fine", classes("a", "b"))
    image_case("one class", classes("a"))
    image_case("no classes", classes())
    image_case("a class without images", lambda f: (classes("a")(f), (f / "b").mkdir()))
    image_case(
        "corrupt first image", classes("a", "b", content=lambda i: os.urandom(64) if i == 0 else _png(8, 8))
    )
    image_case(
        "truncated first image",
        classes("a", "b", content=lambda i: _png(8, 8)[:40] if i == 0 else _png(8, 8)),
    )
    image_case("zero-byte image", classes("a", "b", content=lambda i: b"" if i == 1 else _png(8, 8)))
    image_case("text named .png", classes("a", "b", content=lambda i: b"hello" if i == 2 else _png(8, 8)))
    image_case(
        "decompression bomb",
        classes("a", "b", content=lambda i: _png(50_000, 50_000, b"\x00" * 8) if i == 2 else _png(8, 8)),
    )
    image_case("grayscale data, RGB model", classes("a", "b"), grayscale=True)
    image_case("grayscale", classes("a", "b"), channels=1, grayscale=True)

    def with_fifo(folder):
        classes("a", "b")(folder)
        os.mkfifo(folder / "a" / "fifo.png")

    image_case("a FIFO among the images", with_fifo)
    image_case("the folder is a file", lambda f: None, path=str(root / "000.csv"))

    def text_case(name: str, content: bytes | None, path: str | None = None, context: int = 16):
        p = root / f"{len(c.items):03d}.txt"
        if content is not None:
            p.write_bytes(content)
        model = {
            "nodes": [
                {"id": "t", "op": "Input", "params": {"shape": [context], "dtype": "long"}},
                {"id": "e", "op": "Embedding", "params": {"embedding_dim": 8}},
                {"id": "h", "op": "Linear", "params": {"out_features": 256}},
            ],
            "edges": [{"from": "t", "to": "e"}, {"from": "e", "to": "h"}],
        }
        doc = {
            "model": model,
            "data": {"source": "text", "path": path or str(p), "context": context},
            "train": {"batch_size": 2, "epochs": 1},
        }
        c.add(f"text: {name}", doc, expect="either")

    text_case("fine", b"hello world, " * 100)
    text_case("empty", b"")
    text_case("one byte", b"a")
    text_case("too short", b"x" * 30)
    text_case("invalid utf-8", b"hello \xff\xfe world " * 50)
    text_case("utf-16", ("hello world " * 50).encode("utf-16"))
    text_case("latin-1", "café olé ".encode("latin-1") * 50)
    text_case("a folder", None, path=str(root))
    text_case("/dev/zero", None, path="/dev/zero")
    fifo = root / "text.fifo"
    os.mkfifo(fifo)
    text_case("a FIFO", None, path=str(fifo))
    return c


def loader_verdict(spec_path: str) -> tuple[bool, str]:
    """(ok, message) of what a run does first: load the data, check the model against it, and
    lay out the batches."""
    from engine.data import load_dataset
    from engine.errors import TrainbenchError
    from engine.graph import Graph, analyze
    from engine.preflight import check_global_batch, check_model_fits
    from engine.spec import load_spec

    try:
        spec = load_spec(spec_path)
        data = load_dataset(spec["data"], spec["task"]["objective"])
        check_model_fits(analyze(Graph.from_dict(spec["model"])), data)
        train = spec["train"]
        check_global_batch(len(data.x_train), train["batch_size"], train["grad_accum"], 1)
    except TrainbenchError as err:
        return False, str(err)
    return True, ""


# ------------------------------------------------------------------ the worker


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def run_cases(items: list[dict], with_loader: bool = False) -> list[dict]:
    import resource

    from engine.cli import main

    limit = 6 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    results = []
    for case in items:
        out, err = io.StringIO(), io.StringIO()
        signal.alarm(HANG_S)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(["validate", *case["argv"]])
        except Hang:
            rc = "hang"
        except SystemExit as exit_:  # argparse
            rc = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # noqa: BLE001 - the failures this test exists to find
            rc = "exception"
            err.write(traceback.format_exc())
        finally:
            signal.alarm(0)
        result = {**case, "rc": rc, "stdout": out.getvalue()[-3000:], "stderr": err.getvalue()[-25_000:]}
        if with_loader and isinstance(rc, int):
            result["loader_ok"], result["loader_message"] = loader_verdict(case["argv"][0])
        results.append(result)
    return results


def judge(results: list[dict]) -> dict[str, list]:
    bad: dict[str, list] = {"traceback": [], "hang": [], "verdict": [], "unexpected": []}
    for r in results:
        if r["rc"] == "hang":
            bad["hang"].append(r["name"])
            continue
        if r["rc"] == "exception" or "Traceback" in r["stderr"]:
            bad["traceback"].append((r["name"], r["stderr"][-600:]))
            continue
        wrong = verdict_problems(r["rc"], r["stdout"], r["stderr"])
        if wrong:
            bad["verdict"].append((r["name"], wrong, r["stderr"][:300]))
        elif (r["expect"] == "error") != (r["rc"] != 0) and r["expect"] != "either":
            bad["unexpected"].append((r["name"], r["expect"], r["rc"], r["stderr"][:300]))
        elif r.get("match") and r["match"] not in r["stderr"]:
            bad["unexpected"].append((r["name"], f"wanted {r['match']!r}", r["stderr"][:300]))
        if "loader_ok" in r and r["loader_ok"] != (r["rc"] == 0):
            bad["unexpected"].append(
                (
                    r["name"],
                    "validate and the loader disagree",
                    r["rc"],
                    r["loader_message"][:200],
                    r["stderr"][:200],
                )
            )
        elif r.get("loader_message") and r["loader_message"].split(": ", 1)[-1][:60] not in r["stderr"]:
            bad["unexpected"].append(
                (r["name"], "different messages", r["loader_message"][:200], r["stderr"][:200])
            )
    return bad


def _run_worker(items: list[dict], tmp: Path, with_loader: bool) -> list[dict]:
    import subprocess

    cases, results = tmp / "cases.json", tmp / "results.json"
    cases.write_text(json.dumps(items))
    flag = "--with-loader" if with_loader else "--plain"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.engine.test_hostile_inputs",
            "--worker",
            str(cases),
            str(results),
            flag,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S * 20,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(results.read_text())


def _summary(results: list[dict], bad: dict) -> str:
    return (
        f"tried {len(results)}, clean {len(results) - sum(map(len, bad.values()))}, "
        f"tracebacks {len(bad['traceback'])}, hangs {len(bad['hang'])}, "
        f"wrong verdicts {len(bad['verdict']) + len(bad['unexpected'])}"
    )


# ------------------------------------------------------------------ the tests


def test_hostile_specs_and_graphs_get_a_verdict(tmp_path):
    cases = spec_cases(tmp_path).items
    assert len(cases) >= 300
    results = _run_worker(cases, tmp_path, with_loader=False)
    bad = judge(results)
    print(_summary(results, bad))
    assert not any(bad.values()), json.dumps(bad, indent=1)[:8000]


def test_hostile_data_sets_get_the_runs_verdict(tmp_path):
    cases = data_cases(tmp_path).items
    assert len(cases) >= 50
    results = _run_worker(cases, tmp_path, with_loader=True)
    bad = judge(results)
    print(_summary(results, bad))
    assert not any(bad.values()), json.dumps(bad, indent=1)[:8000]
    verdicts = {r["name"]: r["rc"] == 0 for r in results}
    assert verdicts["csv: fine"] and verdicts["images: fine"] and verdicts["text: fine"]
    assert (
        not verdicts["csv: inf"]
        and not verdicts["csv: single class"]
        and not verdicts["images: decompression bomb"]
    )


def test_files_that_block_or_never_end_are_refused_by_the_real_command(tmp_path):
    """FIFOs and devices as spec, model and data, through `trainbench validate` processes."""
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo)
    spec = json.loads((EXAMPLES / "char_gpt.json").read_text())
    spec["model"] = str(TEMPLATES / "gpt.json")
    cases = {str(fifo): "not a regular file (a FIFO)"}
    for where, value in (("model", str(fifo)), ("model", "/dev/zero"), ("data", str(fifo))):
        doc = copy.deepcopy(spec)
        if where == "model":
            doc["model"] = value
        else:
            doc["data"]["path"] = value
        path = tmp_path / f"{where}-{Path(value).name}.json"
        path.write_text(json.dumps(doc))
        cases[str(path)] = "not a regular file"
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(2**31)
    cases[str(big)] = "the JSON file is 2,048.0 MiB"
    for path, message in cases.items():
        out = trainbench("validate", path, timeout=HANG_S)
        assert out.returncode == 2 or out.returncode == 1, (path, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (path, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


# ------------------------------------------------------------------ by hand


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        items = json.loads(Path(argv[1]).read_text())
        results = run_cases(items, with_loader=argv[3] == "--with-loader")
        Path(argv[2]).write_text(json.dumps(results))
        return 0
    if argv[:1] == ["--report"]:
        os.environ.setdefault("TRAINBENCH_DB", tempfile.mkdtemp() + "/runs.db")
        for label, make, loader in (("specs and graphs", spec_cases, False), ("data sets", data_cases, True)):
            with tempfile.TemporaryDirectory() as tmp:
                results = _run_worker(make(Path(tmp)).items, Path(tmp), loader)
                bad = judge(results)
                print(f"{label}: {_summary(results, bad)}")
                for kind, items in bad.items():
                    for item in items:
                        print(f"  {kind}: {str(item)[:400]}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
