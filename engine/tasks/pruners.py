"""How a prune run removes weights: whole channels (structured, torch-pruning) or single
weights (unstructured, torch.nn.utils.prune). Both prune a live model in steps, and after
each step hand back the graph the model now has, so a pruned model is always a graph plus a
state dict: it rebuilds, saves, reloads and exports like any other, no pickled modules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune as torch_prune

from engine.errors import SpecError, TrainbenchError
from engine.graph import layers
from engine.graph.build import build
from engine.graph.model import Graph
from engine.graph.ops import OPS
from engine.graph.shapes import analyze
from engine.graph.shrink import with_widths
from engine.lineage import state_mismatch

# Global pruning ranks channels across layers; it may thin a layer this far, never empty it.
MAX_LAYER_RATIO = 0.9
SCAN = 9  # budget search: ratios tried before bisecting (every 0.1 up to MAX_LAYER_RATIO)
# Ops structured pruning leaves whole, with every output width coupled to theirs (their inputs
# may still narrow): the registry's `opaque` trait says which and why.
OPAQUE_OPS = frozenset(name for name, op in OPS.items() if "opaque" in op.traits)
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.LSTM, nn.GRU)  # what unstructured pruning thins


class PruneError(TrainbenchError):
    """Pruning that cannot go on: nothing to prune, or a result the graph cannot express."""


def importance(method: str) -> tp.importance.Importance:
    """torch-pruning's channel ranking for a `prune.method`."""
    if method in ("l1", "l2"):
        return tp.importance.MagnitudeImportance(p=1 if method == "l1" else 2)
    if method == "taylor":
        return tp.importance.TaylorImportance()
    return tp.importance.RandomImportance()


class StructuredPruner:
    """Removes whole channels: conv filters, linear units, LSTM hidden units. torch-pruning's
    dependency graph also removes the matching inputs of every consumer (BatchNorm, the next
    conv, a flatten into a linear), so the model stays consistent; layers in `keep` and opaque
    ops lose no outputs. One pruner does all `steps`, each removing an equal share of the
    original channels, so the last step reaches `ratio`."""

    def __init__(
        self,
        model: nn.Module,
        graph: Graph,
        example: torch.Tensor,
        method: str,
        scope: str,
        ratio: float,
        steps: int,
        keep: list[str],
        score: Callable[[nn.Module], None] | None = None,
    ):
        self.model, self.graph, self.method, self.score = model, graph, method, score
        self.original = graph
        ignored = [getattr(model, n) for n in keep if hasattr(model, n)]
        ignored += [getattr(model, n) for n, node in graph.nodes.items() if node.op in OPAQUE_OPS]
        # Tied layers keep their widths: one tensor serves both, and a graph states one width per
        # node, so narrowing them together would need both widths to follow one channel choice.
        ignored += [getattr(model, n) for n in tied_nodes(graph) if hasattr(model, n)]
        unwrapped = [(m.weight, 1) for m in model.modules() if isinstance(m, layers.PositionalEmbedding)]
        was_training = model.training
        model.eval()  # tracing runs a forward: in train mode it would move BatchNorm's statistics
        self.pruner = tp.pruner.MetaPruner(
            model,
            example,
            importance=importance(method),
            global_pruning=scope == "global",
            pruning_ratio=ratio,
            max_pruning_ratio=MAX_LAYER_RATIO,
            iterative_steps=steps,
            ignored_layers=ignored,
            unwrapped_parameters=unwrapped,
        )
        model.train(was_training)

    def step(self) -> Graph:
        if self.method == "taylor":
            self.score(self.model)  # Taylor ranks channels by |weight × gradient|
        self.pruner.step()
        self.model.zero_grad(set_to_none=True)
        self.graph = synced_graph(self.model, self.graph)
        return self.graph

    def describe(self) -> dict:
        return {"widths": changed_widths(self.original, self.graph)}


class UnstructuredPruner:
    """Zeroes the smallest individual weights (L1) of every Conv, Linear and LSTM/GRU layer
    outside `keep`, per tensor or ranked globally, each step reaching an equal share more of
    `ratio`. The zeros are made permanent at once (`prune.remove`), so the state dict keeps its
    plain keys and the model still rebuilds from its unchanged graph.

    They stay zero through fine-tuning because each pruned weight's gradient is masked: with
    a zero gradient from the first step, Adam's moments stay zero, SGD's momentum stays zero
    and decoupled weight decay of zero is zero, so no optimizer in the spec moves them.
    """

    def __init__(self, model: nn.Module, graph: Graph, scope: str, ratio: float, steps: int, keep: list[str]):
        self.graph, self.scope, self.ratio, self.steps = graph, scope, ratio, steps
        # (module, parameter name): matrices and kernels only; biases and norms stay dense
        # A tied weight is one tensor under two names: it is pruned once, for both (the first
        # module that holds it prunes it; the tie keeps the other pointing at the result).
        seen: set[int] = set()
        self.targets = [
            (m, pname)
            for name, m in model.named_modules()
            if isinstance(m, PRUNABLE) and name and name.split(".")[0] not in keep
            for pname, p in m.named_parameters(recurse=False)
            if pname.startswith("weight") and p.dim() >= 2 and not (id(p) in seen or seen.add(id(p)))
        ]
        if not self.targets:
            raise PruneError("no Conv, Linear or LSTM/GRU weights outside prune.keep to prune")
        self.masks: dict[int, torch.Tensor] = {}
        self.done = 0

    def step(self) -> Graph:
        self.done += 1
        share = self.ratio * self.done / self.steps
        if self.scope == "global":
            total = sum(getattr(m, pname).numel() for m, pname in self.targets)
            torch_prune.global_unstructured(
                self.targets, pruning_method=torch_prune.L1Unstructured, amount=round(share * total)
            )
        else:
            for m, pname in self.targets:
                torch_prune.l1_unstructured(m, pname, amount=round(share * getattr(m, pname).numel()))
        for i, (m, pname) in enumerate(self.targets):
            mask = getattr(m, pname + "_mask").detach().clone()
            torch_prune.remove(m, pname)  # the same Parameter object again, now holding zeros
            if i not in self.masks:
                getattr(m, pname).register_hook(lambda grad, i=i: grad * self.masks[i].to(grad.device))
            self.masks[i] = mask
        return self.graph

    def sparsity(self) -> tuple[int, int]:
        """(zero weights, all weights) of the pruned tensors, counted in the tensors themselves."""
        weights = [getattr(m, pname) for m, pname in self.targets]
        return sum(int((w == 0).sum()) for w in weights), sum(w.numel() for w in weights)

    def describe(self) -> dict:
        zeros, total = self.sparsity()
        return {"sparsity": zeros / total, "zero_weights": zeros, "prunable_weights": total}


def tied_nodes(graph: Graph) -> set[str]:
    """Nodes holding a tied parameter, on either side of the tie."""
    return {name.split(".", 1)[0] for pair in graph.tie.items() for name in pair}


def changed_widths(before: Graph, after: Graph) -> dict[str, list[int]]:
    """{node: [width before, width after]} for every layer whose width changed."""
    widths = {}
    for nid, node in after.nodes.items():
        op = OPS[node.op]
        if op.width:
            default = op.field(op.width).default
            old, new = before.nodes[nid].params.get(op.width, default), node.params.get(op.width, default)
            if old != new:
                widths[nid] = [old, new]
    return widths


def synced_graph(model: nn.Module, graph: Graph) -> Graph:
    """`graph` with the widths `model` has now. Raises PruneError unless a model built from
    the new graph has exactly the model's tensors, name for name and shape for shape."""
    widths: dict[str, dict] = {}
    for nid, node in graph.nodes.items():
        op = OPS[node.op]
        if not op.width or node.op in OPAQUE_OPS:
            continue
        module = getattr(model, nid)
        inner = getattr(module, "rnn", module)  # layers.LSTM/GRU wrap torch's
        params = {op.width: getattr(inner, op.width)}
        if hasattr(module, "groups") and module.groups != node.params.get("groups", 1):
            params["groups"] = module.groups
        widths[nid] = params
    new = with_widths(graph, widths)
    problems = analyze(new).problems
    if problems:
        raise PruneError(
            "the pruned widths make an invalid graph: "
            + "; ".join(f"{n}: {m}" for n, m in problems[:3])
            + "; add the layers involved to prune.keep"
        )
    mismatch = state_mismatch(build(new).state_dict(), model.state_dict())
    if mismatch:
        raise PruneError(
            f"pruning changed tensors the graph cannot express: {mismatch}; add the layers involved to prune.keep"
        )
    return new


def search_ratio(
    prune_at: Callable[[float], Graph], count: Callable[[Graph], int], budget: int, where: str
) -> float:
    """The smallest channel ratio whose one-shot pruning meets `budget`. `prune_at(r)` prunes
    a copy and `count` measures its graph. A coarse scan comes first, then bisection between
    the last ratio that missed and the first that met it: the count need not fall steadily
    with the ratio (global ranking skips a layer rather than thin it past MAX_LAYER_RATIO)."""
    lo, best = 0.0, None
    for i in range(1, SCAN + 1):
        ratio = MAX_LAYER_RATIO * i / SCAN
        n = count(prune_at(ratio))
        best = n if best is None else min(best, n)
        if n <= budget:
            hi = ratio
            break
        lo = ratio
    else:
        raise SpecError.at(
            where,
            f"{budget:,} is out of reach: pruning up to {MAX_LAYER_RATIO:.0%} of every prunable layer's "
            f"channels leaves at least {best:,} (kept and opaque layers do not shrink)",
        )
    for _ in range(8):  # a 0.1-wide interval / 2**8: well under one channel of most layers
        mid = (lo + hi) / 2
        if count(prune_at(mid)) <= budget:
            hi = mid
        else:
            lo = mid
    return hi


class BudgetPruner:
    """Structured pruning to a parameter or FLOPs budget, in `steps` steps. Before each step it
    searches the channel ratio that takes the model, as fine-tuned so far, its share of the
    way to the budget (`search_ratio` on copies), then prunes at that ratio: so the last step
    meets the budget however fine-tuning has reordered the channels' importance."""

    def __init__(
        self,
        model: nn.Module,
        graph: Graph,
        make: Callable[[nn.Module, Graph, float], StructuredPruner],
        count: Callable[[Graph], int],
        budget: int,
        steps: int,
        seed: int,
        where: str,
    ):
        self.model, self.graph, self.original, self.make = model, graph, graph, make
        self.count, self.budget, self.steps, self.seed, self.where = count, budget, steps, seed, where
        self.done = 0
        self.ratios: list[float] = []

    def step(self) -> Graph:
        self.done += 1
        start = self.count(self.original)
        target = round(start - (start - self.budget) * self.done / self.steps)
        graph = self.graph

        def prune_at(ratio: float) -> Graph:
            with torch.random.fork_rng():  # a random ranking must not make the search jump
                torch.manual_seed(self.seed)
                return self.make(copy.deepcopy(self.model), graph, ratio).step()

        ratio = search_ratio(prune_at, self.count, target, self.where)
        self.ratios.append(round(ratio, 4))
        self.graph = self.make(self.model, graph, ratio).step()
        return self.graph

    def describe(self) -> dict:
        return {"widths": changed_widths(self.original, self.graph), "step_ratios": self.ratios}
