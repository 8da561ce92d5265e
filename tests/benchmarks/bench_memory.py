"""The memory estimate's calibration table on this CPU: for each case, the estimate (without the
data set, which a CPU holds in numpy arrays outside torch's allocator) against the peak of live
tensor bytes in real training (two steps, the evaluation and the final checkpoint, measured with
the profiler's memory events; `tests/engine/test_memory_calibration.py` holds the same cases to
±15%). DDP and FSDP run in two gloo processes; the busier rank counts.

    python tests/benchmarks/bench_memory.py [--large] [--strategies single,ddp,fsdp]

--large adds GPT-2 small's blocks (12 × 768, context 256, batch 2; the byte corpus's vocabulary of
256, not 50,257) and two of
gpt_1b's blocks (2048 wide, context 512, batch 1), single process: about 4 GB of RAM at their peak.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.engine.test_memory_calibration import (  # noqa: E402
    CASES,
    SMALLEST_BOUND,
    TEMPLATES,
    case_spec,
    estimated,
    gpt,
    measure,
)


def large_cases() -> list[tuple[str, str, dict]]:
    one_b = json.loads((TEMPLATES / "gpt_1b.json").read_text())
    for node in one_b["nodes"]:
        if node["id"] == "blocks":
            node["params"]["times"] = 2
        elif node["id"] == "tokens":
            node["params"]["shape"] = [512]
        elif node["id"] == "pos":
            node["params"]["max_len"] = 512
    small = gpt(256, 256, 12, 768, 12)  # the byte corpus: a vocabulary of 256
    out = []
    for label, model, context, batch in (
        ("GPT-2 small blocks", small, 256, 2),
        ("gpt_1b, 2 blocks", one_b, 512, 1),
    ):
        for suffix, extra in (
            ("", {}),
            (", checkpointing", {"hardware": {"activation_checkpointing": True}}),
        ):
            sections = {
                "model": model,
                "data": {"context": context},
                "train": {"batch_size": batch, "eval_batch_size": batch},
            } | extra
            out.append((label + suffix, "char_gpt", sections))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--strategies", default="single,ddp,fsdp")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'case':<42}{'estimate':>12}{'measured':>12}{'error':>9}")
    worst = 0.0
    for strategy in args.strategies.split(","):
        processes = 1 if strategy == "single" else 2
        cases = CASES + (large_cases() if args.large and strategy == "single" else [])
        specs = [case_spec(example, strategy, processes, **overrides) for _, example, overrides in cases]
        for (label, _, _), spec, real in zip(cases, specs, measure(specs, processes), strict=True):
            est = estimated(spec, processes)
            error = est / real - 1
            held = real >= SMALLEST_BOUND
            worst = max(worst, abs(error)) if held else worst
            note = "" if held else "  (under 1 MiB: not held to the bound)"
            print(
                f"{strategy + ' ' + label:<42}{est / 2**20:>9.2f} MiB{real / 2**20:>9.2f} MiB{error:>+9.1%}{note}",
                flush=True,
            )
    print(f"largest error held to the bound: {worst:.1%}; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
