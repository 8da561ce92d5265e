"""The reference for Trainbench's GPU throughput: the same model and settings in a plain PyTorch
loop, started by torchrun, with nothing around it (no store, no recorder, no loss read back but
at the end).

The model is the template's own module (`engine.graph.build`), so both sides run the same
layers; data, optimizer, autocast, compile, activation checkpointing and DDP/FSDP2 are plain
torch. It prints one JSON line: tokens/s over the steps after the warm-up, peak allocated MiB.

    torchrun --standalone --nproc-per-node 1 tests/benchmarks/torchrun_gpt.py \
        --model resources/templates/gpt_1b.json --context 2048 --batch 4 --steps 30 \
        [--compile] [--checkpointing] [--fsdp]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.graph.build import build  # noqa: E402
from engine.graph.model import Graph  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a graph file (a GPT template)")
    ap.add_argument("--context", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True, help="per process")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--fsdp", action="store_true")
    args = ap.parse_args()

    distributed = "RANK" in os.environ
    cuda = torch.cuda.is_available()  # a CPU only to try the script out
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.set_float32_matmul_precision("high")
    torch.manual_seed(0)

    graph = Graph.from_dict(json.loads(Path(args.model).read_text()))
    model = build(graph).to(device)
    blocks = [m for m in model.modules() if type(m).__name__ == "TransformerBlock"]
    if args.checkpointing:
        from torch.utils.checkpoint import checkpoint

        for block in blocks:
            forward = block.forward
            block.forward = lambda *a, _f=forward: checkpoint(_f, *a, use_reentrant=False)
    if args.compile:
        for block in blocks if args.fsdp else [model]:
            block.forward = torch.compile(block.forward)
    if args.fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in blocks:  # fp32 shards under autocast, as Trainbench's FSDP runs bf16
            fully_shard(block)
        fully_shard(model)
    elif distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=cuda)

    vocab = next(n for n in graph.nodes.values() if n.op == "Linear" and n.id == graph.output).params[
        "out_features"
    ]
    gen = torch.Generator(device=device).manual_seed(rank)
    data = torch.randint(0, vocab, (args.steps, args.batch, args.context + 1), device=device, generator=gen)
    sync = torch.cuda.synchronize if cuda else lambda device: None
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = None
    for step in range(args.steps):
        if step == args.warmup:
            sync(device)
            start = time.perf_counter()
        x, y = data[step, :, :-1], data[step, :, 1:]
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    spent = time.perf_counter() - start
    tokens = (args.steps - args.warmup) * args.batch * args.context
    world = dist.get_world_size() if distributed else 1
    if rank == 0:
        print(
            json.dumps(
                {
                    "tokens_per_s": tokens * world / spent,
                    "peak_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
                    "loss": loss.item(),
                }
            )
        )
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
