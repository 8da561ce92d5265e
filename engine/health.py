"""Per-node training health: what goes on inside the model while it trains, and a warning,
naming the node, when it goes wrong there.

Every `health.every` optimizer steps (steps counted from 1), on that step only:

  activations  forward hooks on the step's first micro-batch record each node's output mean,
               standard deviation and dead fraction: the share of its units (channels of a 4-d
               output, else the last axis) that are exactly zero on every sample of the batch
  gradients    per node with parameters, before clipping and with a loss scale removed: the L2
               norm of all its parameters' gradients, and of its weights
  updates      after the optimizer step: ‖Δw‖ / ‖w‖ over the node's parameters

A node is a top-level node of the graph, as the designer shows it (a Repeat counts all its
copies). The values are ordinary metric series, `health/<node>/grad_norm`, `weight_norm`,
`update_ratio`, `act_mean`, `act_std`, `dead_fraction`, stored through the recorder like any
metric; with `health.histograms`, histograms of each node's weights and gradients every
`histogram_every` steps, with bin edges fixed by a series' first histogram (see `_edges`).
Nothing is computed on the other steps, so the cost is the measured step's extra work divided
by `every` (tests/benchmarks/bench_health.py measures it; the README has the figures).

Detection (`Detector`), with these thresholds:

  exploding   a node's gradient norm is not finite, or is over EXPLODE_GROWTH (100×) the median
              of its last BASELINE (10) measurements (at least 2 of them)
  vanishing   a node's gradient norm is below VANISH_RATIO (1/1000) of the median of its
              neighbours' (the nearest nodes with parameters before and after it in the
              graph's order) for VANISH_PATIENCE (5) measurements in a row
  dead units  at least DEAD_SHARE (half) of a ReLU node's units are dead for DEAD_PATIENCE (3)
              measurements in a row

Each finding goes into the run log as a warning with the words "exploding", "vanishing" or
"dead units" and the node id, and into the run's events (store and event stream) at its step;
a node is warned once per kind until the condition clears. Exploding gradients show in the
gradient before the loss: a step with an infinite gradient is taken before the next loss is.

Only the process that records the run measures (rank 0); FSDP shards parameters across
processes, so a node's norm is not known to one process, and health is off under FSDP.
Under `train.compile` the activation statistics are missing (dynamo does not run forward
hooks added after it traced the model; the run log says so once); the other series are kept.

This module is torch-free (the GUI reads the names here); the measuring is
`engine.health_probe.Health`, which the training loop calls.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

STATS = ("grad_norm", "weight_norm", "update_ratio", "act_mean", "act_std", "dead_fraction")
PARAM_STATS = STATS[:3]  # nodes with parameters only

EXPLODE_GROWTH = 100.0
BASELINE = 10
VANISH_RATIO = 1e-3
VANISH_PATIENCE = 5
DEAD_SHARE = 0.5
DEAD_PATIENCE = 3
DEAD_OPS = frozenset({"ReLU"})  # ops whose units die (exactly zero), as opposed to being small
HIST_BINS = 40
HIST_EVERY = 10  # histograms every HIST_EVERY × health.every steps unless histogram_every says


def key(node: str, stat: str) -> str:
    return f"health/{node}/{stat}"


def split_key(k: str) -> tuple[str, str] | None:
    """`health/conv1/grad_norm` → ("conv1", "grad_norm"); None for other metrics."""
    prefix, _, rest = k.partition("/")
    node, _, stat = rest.rpartition("/")
    return (node, stat) if prefix == "health" and node and stat else None


@dataclass(frozen=True)
class Finding:
    kind: str  # exploding | vanishing | dead_units
    node: str
    step: int
    value: float
    message: str

    def as_event(self) -> dict:
        value = self.value if math.isfinite(self.value) else str(self.value)
        return {"kind": self.kind, "node": self.node, "value": value, "message": self.message}


class Detector:
    """Turns measurements into findings; pure Python, so its thresholds are tested on numbers.

    `order` lists the nodes with parameters in graph order (their neighbours for vanishing);
    `dead_nodes` the nodes whose dead fraction is judged (ReLUs)."""

    def __init__(self, order: list[str], dead_nodes: list[str]):
        self.order, self.dead_nodes = list(order), list(dead_nodes)
        self._history: dict[str, deque] = {n: deque(maxlen=BASELINE) for n in order}
        self._low: dict[str, int] = dict.fromkeys(order, 0)
        self._dead: dict[str, int] = dict.fromkeys(dead_nodes, 0)
        self._active: set[tuple[str, str]] = set()  # (kind, node) warned and not cleared

    def check(self, step: int, grad: dict[str, float], dead: dict[str, float]) -> list[Finding]:
        return [*self._exploding(step, grad), *self._vanishing(step, grad), *self._dead_units(step, dead)]

    def _flag(self, kind: str, node: str, on: bool) -> bool:
        """Whether to report now: the condition holds and was not already reported."""
        if not on:
            self._active.discard((kind, node))
            return False
        if (kind, node) in self._active:
            return False
        self._active.add((kind, node))
        return True

    def _exploding(self, step: int, grad: dict[str, float]) -> Iterator[Finding]:
        for node in self.order:
            if node not in grad:
                continue
            v, history = grad[node], self._history[node]
            base = _median(history) if len(history) >= 2 else None
            if not math.isfinite(v):
                why, on = f"its gradient norm is {v}", True
            elif base and v > EXPLODE_GROWTH * base:
                why, on = f"gradient norm {v:.3g}, {v / base:,.0f}× its median of {base:.3g}", True
            else:
                why, on = "", False
                history.append(v)
            if self._flag("exploding", node, on):
                yield Finding(
                    "exploding", node, step, v, f"exploding gradients at node {node}, step {step}: {why}"
                )

    def _vanishing(self, step: int, grad: dict[str, float]) -> Iterator[Finding]:
        for i, node in enumerate(self.order):
            near = [grad.get(n) for n in self.order[max(0, i - 1) : i] + self.order[i + 1 : i + 2]]
            near = [v for v in near if v is not None and math.isfinite(v)]
            v = grad.get(node)
            if v is None or not near or not math.isfinite(v):
                continue
            ref = _median(near)
            self._low[node] = self._low[node] + 1 if ref > 0 and v < VANISH_RATIO * ref else 0
            if self._flag("vanishing", node, self._low[node] >= VANISH_PATIENCE):
                yield Finding(
                    "vanishing",
                    node,
                    step,
                    v,
                    f"vanishing gradients at node {node}, step {step}: gradient norm {v:.3g}, under "
                    f"1/{1 / VANISH_RATIO:,.0f} of its neighbours' ({ref:.3g}) for {self._low[node]} measurements",
                )

    def _dead_units(self, step: int, dead: dict[str, float]) -> Iterator[Finding]:
        for node in self.dead_nodes:
            v = dead.get(node)
            if v is None:
                continue
            self._dead[node] = self._dead[node] + 1 if v >= DEAD_SHARE else 0
            if self._flag("dead_units", node, self._dead[node] >= DEAD_PATIENCE):
                yield Finding(
                    "dead_units",
                    node,
                    step,
                    v,
                    f"dead units at node {node}, step {step}: {v:.0%} of its units output zero on every "
                    f"sample, {self._dead[node]} measurements in a row",
                )


def _median(values) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
