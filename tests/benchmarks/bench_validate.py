"""`trainbench validate`: whole-process wall time, and graph parsing + analysis against size.

    python tests/benchmarks/bench_validate.py [--repeats 5]

Each spec is validated as a user runs it (`python -m engine.cli validate SPEC`, a fresh
process each time, median of the repeats): the train examples, a ResNet-18 and a GPT-2 (124M)
built here as graphs. Validate imports neither torch nor scikit-learn (the memory estimate and
the data checks are torch-free); `--measure` does, and is timed once for comparison.

Then `Graph.from_dict` and `analyze` on chains of 5,000 and 20,000 nodes: both are linear, so
the per-node time should stay flat as the graph grows (it was quadratic: 10.6 s and 88 s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.graph import Graph, analyze  # noqa: E402

EXAMPLES = ROOT / "resources" / "examples"


def resnet18() -> dict:
    """ResNet-18 for 3×224×224 images, 1,000 classes: 11.7 M parameters."""
    nodes, edges = [{"id": "image", "op": "Input", "params": {"shape": [3, 224, 224]}}], []

    def add(nid, op, src, port=0, **params):
        nodes.append({"id": nid, "op": op, "params": params})
        edges.append({"from": src, "to": nid, "port": port})
        return nid

    x = add("stem", "Conv2d", "image", out_channels=64, kernel_size=7, stride=2, padding=3, bias=False)
    x = add("stem_bn", "BatchNorm2d", x)
    x = add("stem_relu", "ReLU", x)
    x = add("pool", "MaxPool2d", x, kernel_size=3, stride=2, padding=1)
    for stage, width in enumerate((64, 128, 256, 512)):
        for block in range(2):
            name, stride = f"s{stage}b{block}", 2 if stage and not block else 1
            y = add(f"{name}_c1", "Conv2d", x, out_channels=width, stride=stride, padding=1, bias=False)
            y = add(f"{name}_r1", "ReLU", add(f"{name}_n1", "BatchNorm2d", y))
            y = add(
                f"{name}_n2", "BatchNorm2d", add(f"{name}_c2", "Conv2d", y, out_channels=width, padding=1)
            )
            skip = x
            if stride > 1:
                skip = add(
                    f"{name}_down", "Conv2d", x, out_channels=width, kernel_size=1, stride=2, bias=False
                )
            total = add(f"{name}_add", "Add", y)
            edges.append({"from": skip, "to": total, "port": 1})
            x = add(f"{name}_out", "ReLU", total)
    x = add("gap", "Flatten", add("avg", "AdaptiveAvgPool2d", x))
    add("fc", "Linear", x, out_features=1000)
    return {"name": "resnet18", "nodes": nodes, "edges": edges}


def gpt2() -> dict:
    """GPT-2 small: 12 blocks of width 768, context 1,024, a 50,257-token vocabulary."""
    block = {
        "nodes": [
            {"id": "x", "op": "Input"},
            {"id": "t", "op": "TransformerBlock", "params": {"n_heads": 12}},
        ],
        "edges": [{"from": "x", "to": "t"}],
    }
    chain = [
        ("tokens", "Input", {"shape": [1024], "dtype": "long"}),
        ("wte", "Embedding", {"num_embeddings": 50257, "embedding_dim": 768}),
        ("wpe", "PositionalEmbedding", {"max_len": 1024}),
        ("blocks", "Repeat", {"times": 12, "body": block}),
        ("ln_f", "LayerNorm", {}),
        ("head", "Linear", {"out_features": 256}),
    ]
    return {
        "name": "gpt2",
        "nodes": [{"id": i, "op": op, "params": p} for i, op, p in chain],
        "edges": [{"from": a[0], "to": b[0]} for a, b in zip(chain, chain[1:], strict=False)],
    }


def specs(tmp: Path) -> dict[str, Path]:
    out = {n: EXAMPLES / f"{n}.json" for n in ("digits_mlp", "digits_cnn", "wine_csv", "char_gpt")}
    imagenet = tmp / "imagenet"
    for cls in ("a", "b"):  # two classes of one tiny image: the spec needs a folder to check
        (imagenet / cls).mkdir(parents=True)
        (imagenet / cls / "0.png").write_bytes(_tiny_png())
    model = resnet18()
    model["nodes"][-1]["params"]["out_features"] = 2
    resnet = {
        "name": "resnet18",
        "model": model,
        "data": {"source": "images", "path": str(imagenet), "image_size": [224, 224], "val_fraction": 0.5},
        "train": {"batch_size": 1},
    }
    gpt = {
        "name": "gpt2",
        "model": gpt2(),
        "data": {"source": "text", "path": str(EXAMPLES / "data" / "corpus.txt"), "context": 1024},
        "train": {"batch_size": 8},
    }
    for name, doc in (("resnet18", resnet), ("gpt2", gpt)):
        out[name] = tmp / f"{name}.json"
        out[name].write_text(json.dumps(doc))
    return out


def _tiny_png() -> bytes:
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0\0\0" * 2))
        + chunk(b"IEND", b"")
    )


def wall(argv: list[str]) -> tuple[float, int, str]:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", *argv], capture_output=True, text=True, cwd=ROOT
    )
    return (
        time.perf_counter() - t,
        proc.returncode,
        proc.stderr.strip().splitlines()[-1:] and proc.stderr.strip(),
    )


def chain(n: int) -> dict:
    nodes = [{"id": "x", "op": "Input", "params": {"shape": [16]}}]
    nodes += [{"id": f"n{i}", "op": "ReLU" if i % 2 else "Linear", "params": {}} for i in range(n)]
    edges = [{"from": a["id"], "to": b["id"]} for a, b in zip(nodes, nodes[1:], strict=False)]
    return {"nodes": nodes, "edges": edges}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"validate, whole process (median of {args.repeats}):")
        for name, path in specs(Path(tmp)).items():
            runs = [wall(["validate", str(path)]) for _ in range(args.repeats)]
            secs = statistics.median(r[0] for r in runs)
            note = "" if runs[0][1] == 0 else f"  (exit {runs[0][1]}: {runs[0][2]})"
            measured, _, _ = wall(["validate", str(path), "--measure"])
            print(f"  {name:<11} {secs:6.2f} s   with --measure {measured:6.2f} s{note}")
    print("Graph.from_dict + analyze, chains (per node should stay flat):")
    for n in (5_000, 20_000):
        doc = chain(n)
        t = time.perf_counter()
        g = Graph.from_dict(doc)
        parsed = time.perf_counter() - t
        a = analyze(g)
        analysed = time.perf_counter() - t - parsed
        assert a.ok, a.problems[:3]
        print(
            f"  {n:>6,} nodes: from_dict {parsed * 1000:7.1f} ms, analyze {analysed * 1000:7.1f} ms "
            f"({(parsed + analysed) / n * 1e6:.1f} µs per node)"
        )


if __name__ == "__main__":
    main()
