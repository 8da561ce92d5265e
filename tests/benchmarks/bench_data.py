"""Data at scale, measured: Trainbench's input pipelines against the loops people write by hand.

  images   an image folder of generated 32×32 PNGs (20,000 by default): the engine's samples/s
           training a small CNN with a horizontal flip and per-channel normalization, against a
           plain ImageFolder-style `Dataset` + `DataLoader` loop with the same model, transforms,
           batch and workers (target >= 0.95). torchvision's own ImageFolder cannot be imported
           beside torch 2.13.0 CPU here (`operator torchvision::nms does not exist`), so the plain
           loop is what ImageFolder does: PIL open, convert("RGB"), to a float tensor, normalize.
  tokens   a generated corpus (2 GB by default) tokenized once with BPE (MB/s), then a GPT run on
           it in its own process: its peak RSS (target < 1.5 GB), and the cost of fetching a
           batch of random windows against nanoGPT's `np.memmap` `get_batch` (target within 10%).
  digits   the in-memory path: run tests/benchmarks/bench_engine.py (digits CNN engine/plain).

    python tests/benchmarks/bench_data.py images [--images 20000] [--workers 1] [--steps 300]
    python tests/benchmarks/bench_data.py tokens [--gb 2] [--keep] [--corpus FILE]

Run on an otherwise idle machine; the token case writes the corpus and its token file to a
temporary folder and deletes both afterwards (unless --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CNN = {
    "nodes": [
        {"id": "x", "op": "Input", "params": {"shape": [3, 32, 32]}},
        {"id": "c1", "op": "Conv2d", "params": {"out_channels": 16, "kernel_size": 3, "padding": 1}},
        {"id": "r1", "op": "ReLU"},
        {"id": "p1", "op": "MaxPool2d", "params": {"kernel_size": 2}},
        {"id": "c2", "op": "Conv2d", "params": {"out_channels": 32, "kernel_size": 3, "padding": 1}},
        {"id": "r2", "op": "ReLU"},
        {"id": "p2", "op": "MaxPool2d", "params": {"kernel_size": 2}},
        {"id": "f", "op": "Flatten"},
        {"id": "head", "op": "Linear", "params": {"out_features": 10}},
    ],
}
CNN["edges"] = [
    {"from": a["id"], "to": b["id"]} for a, b in zip(CNN["nodes"], CNN["nodes"][1:], strict=False)
]


# ------------------------------------------------------------------ images


def make_images(root: Path, n: int) -> None:
    from PIL import Image

    sys.path.insert(0, str(ROOT / "resources" / "examples" / "data"))
    from make_samples import drawing  # the example's learnable shapes, one kind per class

    rng = np.random.default_rng(0)
    for i in range(n):
        label = i % 10
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(drawing(label, rng)).save(folder / f"{i:06d}.png")


def plain_images(root: Path, steps: int, batch: int, workers: int, mean, std) -> float:
    """Samples/s of the hand-written loop: ImageFolder's decoding, a flip, normalize."""
    import torch
    from PIL import Image

    from engine.graph import Graph
    from engine.graph.build import build

    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).iterdir())]
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)

    class Folder(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            path, label = files[i]
            with Image.open(path) as im:
                x = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
            return (x - m) / s, label

    torch.manual_seed(0)
    model = build(Graph.from_dict(CNN))
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    loader = torch.utils.data.DataLoader(
        Folder(),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
    )
    done, t0 = 0, None
    while done < steps + 10:
        for x, y in loader:
            if done == 10:
                t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
            done += 1
            if done >= steps + 10:
                break
    return steps * batch / (time.perf_counter() - t0)


def engine_images(root: Path, steps: int, batch: int, workers: int, db: Path) -> tuple[float, dict]:
    """Samples/s of `trainbench run` over the same folder, from its stored per-step stamps."""
    from engine.runner import execute
    from engine.spec import validate_spec
    from engine.store import RunStore

    spec = validate_spec(
        {
            "model": CNN,
            "data": {
                "source": "images",
                "path": str(root),
                "num_workers": workers,
                "val_fraction": 0.05,
                "augment": {"horizontal_flip": True},
            },
            "optim": {"name": "adamw", "lr": 1e-3},
            "train": {"max_steps": steps + 10, "batch_size": batch, "eval_every": 10**6, "eval_batches": 1},
            "checkpoint": {"every": 10**6},
        }
    )
    store = RunStore(db)
    rid, status = execute(store, spec)
    assert status == "completed", store.get_run(rid)["error"]
    steps_, _, walls = store.series(rid, "train/loss")
    order = np.argsort(steps_)
    walls = walls[order]
    return steps * batch / (walls[-1] - walls[9]), store.get_run(rid)["summary"]["dataset"]


def bench_images(args) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - args.workers))
    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        root = work / "images"
        t = time.perf_counter()
        make_images(root, args.images)
        print(f"made {args.images:,} PNGs in {time.perf_counter() - t:.1f} s")
        rates = {"plain": [], "engine": []}
        norm = None
        for r in range(args.repeats):
            rate, ds = engine_images(root, args.steps, args.batch, args.workers, work / f"runs{r}.db")
            rates["engine"].append(rate)
            norm = ds["normalization"]
            rates["plain"].append(
                plain_images(root, args.steps, args.batch, args.workers, norm["mean"], norm["std"])
            )
            print(
                f"  repeat {r + 1}: engine {rates['engine'][-1]:,.0f} samples/s, plain {rates['plain'][-1]:,.0f}"
            )
        e, p = float(np.median(rates["engine"])), float(np.median(rates["plain"]))
        print(
            json.dumps(
                {
                    "case": "images",
                    "images": args.images,
                    "workers": args.workers,
                    "batch": args.batch,
                    "engine_samples_per_s": round(e),
                    "plain_samples_per_s": round(p),
                    "engine_over_plain": round(e / p, 3),
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ tokens


def make_corpus(path: Path, gb: float) -> int:
    """Zipf-distributed pseudo-words in lines and paragraphs, written in 16 MB blocks."""
    rng = np.random.default_rng(0)
    syllables = [
        "ka",
        "lo",
        "mi",
        "ne",
        "ru",
        "ta",
        "so",
        "vi",
        "de",
        "pa",
        "gu",
        "ze",
        "ith",
        "on",
        "ar",
        "el",
    ]
    words = np.array(["".join(rng.choice(syllables, rng.integers(1, 4))) for _ in range(30000)])
    target = int(gb * 2**30)
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            idx = np.minimum(rng.zipf(1.3, 3_000_000) - 1, len(words) - 1)
            text = " ".join(words[idx])
            text = text.replace(" ka ", ".\n").replace(" lo ", ",\n\n", 1)
            fh.write(text + "\n")
            written += len(text) + 1
    return path.stat().st_size


def nanogpt_fetch(data: np.memmap, ctx: int, batch: int, steps: int) -> float:
    """Seconds per batch of nanoGPT's get_batch on a memmap (CPU)."""
    import torch

    t0 = time.perf_counter()
    for _ in range(steps):
        ix = torch.randint(len(data) - ctx, (batch,))
        x = torch.stack([torch.from_numpy((data[i : i + ctx]).astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy((data[i + 1 : i + 1 + ctx]).astype(np.int64)) for i in ix])
        del x, y
    return (time.perf_counter() - t0) / steps


def _vm_hwm_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def bench_tokens(args) -> None:
    import torch

    work = Path(tempfile.mkdtemp(prefix="bench-tokens-", dir=args.dir))
    os.environ["TRAINBENCH_CACHE"] = str(work / "cache")
    try:
        if args.corpus:  # a text file already on disk: kept, whatever --keep says
            corpus = Path(args.corpus).resolve()
            size = corpus.stat().st_size
        else:
            corpus = work / "corpus.txt"
            t = time.perf_counter()
            size = make_corpus(corpus, args.gb)
            print(f"made a {size / 2**30:.2f} GiB corpus in {time.perf_counter() - t:.0f} s")
        section = {
            "source": "text",
            "path": str(corpus),
            "tokenizer": "bpe",
            "vocab_size": args.vocab,
            "context": args.context,
            "val_fraction": 0.01,
        }
        from engine.data import load_dataset
        from engine.fields import check_fields
        from engine.spec import SECTIONS

        data = check_fields(SECTIONS["data"], section, "data", [])
        said = []
        t = time.perf_counter()
        ds = load_dataset(data, log=lambda m: said.append((time.perf_counter(), m)))
        total = time.perf_counter() - t
        trained_at = next((s for s, m in said if m.startswith("tokenizing")), t)
        tokenize_s = t + total - trained_at
        bpe_train_s = trained_at - t
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
        print(
            f"BPE trained in {bpe_train_s:.0f} s; tokenized {size / 2**20:,.0f} MB in {tokenize_s:.0f} s "
            f"({size / 2**20 / tokenize_s:.1f} MB/s), {len(ds.tokens):,} tokens ({ds.tokens.dtype}); "
            f"this process's peak RSS {rss_after:,.0f} MiB"
        )

        # --- batch fetch: the engine's window source against nanoGPT's get_batch, same memmap
        from engine.tasks.batches import BatchPlan, WindowBatches

        assert not ds.resident
        plan = BatchPlan(ds.info().train_samples, args.batch, 1, 0)
        source = WindowBatches(
            ds,
            plan,
            {"train": {"seed": 0, "eval_batch_size": args.batch, "eval_batches": 1}},
            torch.device("cpu"),
        )
        fetch = {"engine": [], "nanogpt": []}
        for r in range(args.repeats):
            t0 = time.perf_counter()
            for step in range(r * 2000, r * 2000 + 2000):
                source.micro_batches(step)
            fetch["engine"].append((time.perf_counter() - t0) / 2000)
            fetch["nanogpt"].append(nanogpt_fetch(ds.tokens, args.context, args.batch, 2000))
        e, n = float(np.median(fetch["engine"])), float(np.median(fetch["nanogpt"]))
        print(
            f"batch fetch ({args.batch} × {args.context}): engine {e * 1e6:.0f} µs, nanoGPT get_batch {n * 1e6:.0f} µs "
            f"({e / n:.2f}×)"
        )

        # --- a GPT run on it, in its own process: peak RSS
        gpt = json.loads((ROOT / "resources" / "templates" / "gpt.json").read_text())
        for node in gpt["nodes"]:
            if node["id"] == "embed":
                node["params"]["num_embeddings"] = args.vocab
            if node["op"] == "Linear" and node["params"].get("out_features") == 256:
                node["params"]["out_features"] = args.vocab
            if node["op"] == "Input":
                node["params"]["shape"] = [args.context]
            if node["op"] == "PositionalEmbedding":
                node["params"]["max_len"] = args.context
        spec = {
            "model": gpt,
            "data": section,
            "train": {
                "max_steps": args.steps,
                "batch_size": args.batch,
                "eval_every": args.steps // 2,
                "eval_batch_size": args.batch,  # nanoGPT's: 512 windows' logits alone are 2 GB at vocab 4096
                "eval_batches": 20,
            },
            "checkpoint": {"every": 10**6},
        }
        (work / "spec.json").write_text(json.dumps(spec))
        env = {**os.environ, "TRAINBENCH_DB": str(work / "runs.db")}
        t = time.perf_counter()
        run = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "run", str(work / "spec.json"), "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        # The run's own high-water mark (VmHWM), read while it lives: RUSAGE_CHILDREN's maxrss
        # would also count this process's memory, which the child's pages shared until exec.
        peak = 0.0
        while run.poll() is None:
            peak = max(peak, _vm_hwm_mib(run.pid))
            time.sleep(0.05)
        out = subprocess.CompletedProcess(run.args, run.returncode, *run.communicate())
        wall = time.perf_counter() - t
        print(out.stdout.strip()[-300:], out.stderr.strip()[-500:])
        print(
            json.dumps(
                {
                    "case": "tokens",
                    "corpus_gib": round(size / 2**30, 2),
                    "tokens": len(ds.tokens),
                    "tokenize_mb_per_s": round(size / 2**20 / tokenize_s, 1),
                    "bpe_train_s": round(bpe_train_s, 1),
                    "fetch_engine_us": round(e * 1e6),
                    "fetch_nanogpt_us": round(n * 1e6),
                    "fetch_ratio": round(e / n, 3),
                    "gpt_run_steps": args.steps,
                    "gpt_run_wall_s": round(wall, 1),
                    "gpt_run_peak_rss_mib": round(peak),
                }
            )
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="case", required=True)
    images = sub.add_parser("images")
    images.add_argument("--images", type=int, default=20_000)
    images.add_argument("--workers", type=int, default=1)
    images.add_argument("--batch", type=int, default=64)
    images.add_argument("--steps", type=int, default=300)
    images.add_argument("--repeats", type=int, default=3)
    tokens = sub.add_parser("tokens")
    tokens.add_argument("--gb", type=float, default=2.0)
    tokens.add_argument("--vocab", type=int, default=4096)
    tokens.add_argument("--context", type=int, default=256)
    tokens.add_argument("--batch", type=int, default=16)
    tokens.add_argument("--steps", type=int, default=40)
    tokens.add_argument("--repeats", type=int, default=3)
    tokens.add_argument("--dir", default=None, help="where the corpus is written (default: the temp folder)")
    tokens.add_argument(
        "--corpus", default=None, help="an existing text file to use instead of generating one"
    )
    tokens.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    (bench_images if args.case == "images" else bench_tokens)(args)


if __name__ == "__main__":
    main()
