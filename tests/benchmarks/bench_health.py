"""What per-node health costs, and the cadence that keeps it under 3% of training time.

For the digits CNN and the char-GPT: ms per step with health off, with every step measured
(health.every=1: the whole cost of one measurement), and at the chosen default; the cost of one
measurement c and the smallest cadence E with c / (E × step) <= 3%. Runs alternate; each figure
is the best of --repeats (other processes only ever add time, so on a shared machine the best
run is the closest to the true cost). Step time comes from the stored loss curve's wall clock between step 20 and the last
step (start-up and the final evaluation left out).

    python tests/benchmarks/bench_health.py --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.runner import execute  # noqa: E402
from engine.spec import HEALTH_EVERY, load_spec  # noqa: E402
from engine.store import RunStore  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"
BOUND = 0.03
MODELS = {
    "digits CNN": ("digits_cnn.json", ["train.max_steps=400", "train.eval_every=100000"]),
    "char-GPT": ("char_gpt.json", ["train.max_steps=80", "train.eval_every=100000"]),
}


def ms_per_step(spec_file: str, sets: list[str], health: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        spec = load_spec(EXAMPLES / spec_file, [*sets, "checkpoint.every=100000", *health])
        rid, status = execute(db, spec)
        store = RunStore(db, readonly=True)
        assert status == "completed", store.get_run(rid)["error"]
        steps, _, walls = store.series(rid, "train/loss")
        store.close()
    # walls are stamped when a group of 8 losses is read back: use group boundaries only
    ends = np.flatnonzero(np.diff(walls) > 0)
    first = next(i for i in ends if steps[i] >= 20)
    return 1000 * (walls[ends[-1]] - walls[first]) / (steps[ends[-1]] - steps[first])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady timings on a shared machine)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}, repeats {args.repeats}, default health.every {HEALTH_EVERY}\n")
    print(
        f"| model | off ms/step | every step ms/step | one measurement ms | cadence for 3% | at every={HEALTH_EVERY} |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (spec_file, sets) in MODELS.items():
        runs = {"off": [], "every1": [], "default": []}
        for _ in range(args.repeats):
            runs["off"].append(ms_per_step(spec_file, sets, ["health.enabled=false"]))
            runs["every1"].append(ms_per_step(spec_file, sets, ["health.every=1"]))
            runs["default"].append(ms_per_step(spec_file, sets, []))
        off, every1, default = (min(runs[k]) for k in ("off", "every1", "default"))
        cost = every1 - off
        cadence = max(1, int(np.ceil(cost / (BOUND * off))))
        overhead = cost / HEALTH_EVERY / off
        print(
            f"| {name} | {off:.2f} | {every1:.2f} | {cost:.2f} | {cadence} | "
            f"{default:.2f} ms/step measured ({(default - off) / off:+.1%}); {overhead:.2%} computed |"
        )


if __name__ == "__main__":
    main()
