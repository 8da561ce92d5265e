"""The training loop's health probe: the measurements `engine.health` describes, taken with
torch on a measured step, handed to the recorder as ordinary series, and judged by
`engine.health.Detector`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from engine.health import DEAD_OPS, HIST_BINS, HIST_EVERY, Detector, Finding, key


def activation_stats(out) -> torch.Tensor | None:
    """[mean, std, dead fraction] of a node's output, as a tensor (read back later, once)."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.numel() == 0:
        return None
    x = out.detach().float()
    std = x.std() if x.numel() > 1 else torch.zeros((), device=x.device)
    if x.dim() >= 2:
        unit = 1 if x.dim() == 4 else x.dim() - 1
        alive = (x.movedim(unit, 0).reshape(x.shape[unit], -1) != 0).any(dim=1)
        dead = 1.0 - alive.float().mean()
    else:
        dead = (x == 0).float().mean()
    return torch.stack([x.mean(), std, dead])


class Health:
    """The training loop's health probe: `watch` (forward hooks on a measured step's first
    micro-batch), `gradients` (before clipping and the step), `record` (after the step). Each
    does nothing on other steps, or when `health.enabled` is off."""

    def __init__(self, config: dict, model: nn.Module, analysis, ctx, scaler=None, sharded: bool = False):
        self.ctx, self.scaler = ctx, scaler
        on = config["enabled"] and ctx.is_main and not sharded
        if config["enabled"] and sharded and ctx.is_main:
            ctx.log("health: not measured under FSDP (parameters are sharded across processes)", "warning")
        self.every = config["every"] if on else 0
        hist_every = config["histogram_every"] or HIST_EVERY * config["every"]
        self.hist_every = hist_every if on and config["histograms"] else 0
        chosen = set(config["nodes"]) if config["nodes"] else None
        modules = dict(model.named_children())
        self.nodes = [
            n
            for n in analysis.order
            if n in modules and analysis.nodes[n].op != "Input" and (chosen is None or n in chosen)
        ]
        params: dict[str, list[nn.Parameter]] = {}
        for name, p in model.named_parameters():
            node = name.split(".", 1)[0]
            if p.requires_grad and node in self.nodes:
                params.setdefault(node, []).append(p)
        self.param_nodes = [n for n in self.nodes if n in params]
        self._params = [p for n in self.param_nodes for p in params[n]]
        # which node each parameter belongs to, to sum per-parameter norms per node in one op
        self._owner = torch.tensor(
            [i for i, n in enumerate(self.param_nodes) for _ in params[n]], dtype=torch.long
        )
        self.modules = {n: modules[n] for n in self.nodes}
        dead = [n for n in self.nodes if analysis.nodes[n].op in DEAD_OPS]
        self.detector = Detector(self.param_nodes, dead)
        self.findings: list[Finding] = []
        self._acts: dict[str, torch.Tensor] = {}
        self._grads: torch.Tensor | None = None
        self._weights: torch.Tensor | None = None
        self._before: list[torch.Tensor] = []
        self._edges: dict[str, torch.Tensor] = {}
        self._told_no_acts = False
        if self.every:
            ctx.log(f"health: measuring {len(self.nodes)} nodes every {self.every} steps")

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def watch(self, step: int, first: bool):
        """Context around a micro-batch's forward: on a measured step's first one, hooks take
        each node's activation statistics."""
        return self._hooked() if first and self.due(step) else nullcontext()

    @contextmanager
    def _hooked(self) -> Iterator[None]:
        self._acts = {}

        def hook(node: str):
            def take(_module, _inputs, out) -> None:
                stats = activation_stats(out)
                if stats is not None:
                    self._acts[node] = stats

            return take

        handles = [m.register_forward_hook(hook(n)) for n, m in self.modules.items()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def gradients(self, step: int) -> None:
        """Before clipping and the optimizer step: gradient and weight norms, and the weights
        the update is measured against."""
        if not self.due(step) or not self._params:
            return
        with torch.no_grad():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params]
            norms = torch.stack(torch._foreach_norm(grads)).float()
            if self.scaler is not None:  # fp16: the gradients are still multiplied by the loss scale
                norms = norms / self.scaler.get_scale()
            self._grads = self._per_node(norms)
            self._before = [p.detach().clone() for p in self._params]
            self._weights = self._per_node(torch.stack(torch._foreach_norm(self._before)).float())

    def _per_node(self, norms: torch.Tensor) -> torch.Tensor:
        owner = self._owner.to(norms.device)
        return torch.zeros(len(self.param_nodes), device=norms.device).index_add_(0, owner, norms**2).sqrt()

    def record(self, step: int) -> list[Finding]:
        """After the optimizer step: update ratios; every value of this step to the recorder
        (one read-back), findings to the log and the run's events, histograms when due."""
        if not self.due(step):
            return []
        parts, acts = [], [n for n in self.nodes if n in self._acts]
        if self.modules and not acts and not self._told_no_acts:
            # torch.compile does not run forward hooks added after compiling (dynamo skips
            # guards on them), so a compiled model's nodes report no activations
            self._told_no_acts = True
            self.ctx.log(
                "health: no activation statistics (forward hooks did not run; a compiled model runs "
                "its nodes inside compiled code): gradient, weight and update series only"
            )
        if self._grads is not None:
            with torch.no_grad():
                delta = torch._foreach_sub([p.detach() for p in self._params], self._before)
                moved = self._per_node(torch.stack(torch._foreach_norm(delta)).float())
                ratio = moved / self._weights.clamp_min(1e-30)
            parts += [self._grads, self._weights, ratio]
        parts += [self._acts[n] for n in acts]  # all on the model's device
        if not parts:
            return []
        flat = torch.cat([p.reshape(-1) for p in parts]).tolist()  # the one read-back
        values: dict[str, float] = {}
        grad: dict[str, float] = {}
        n = len(self.param_nodes) if self._grads is not None else 0
        for i, node in enumerate(self.param_nodes[:n]):
            grad[node] = flat[i]
            values[key(node, "grad_norm")] = flat[i]
            values[key(node, "weight_norm")] = flat[n + i]
            values[key(node, "update_ratio")] = flat[2 * n + i]
        dead: dict[str, float] = {}
        for j, node in enumerate(acts):
            mean, std, dead_share = flat[3 * n + 3 * j : 3 * n + 3 * j + 3]
            values[key(node, "act_mean")], values[key(node, "act_std")] = mean, std
            values[key(node, "dead_fraction")] = dead[node] = dead_share
        self.ctx.log_metrics(step, values)
        if self.hist_every and step % self.hist_every == 0:
            self.ctx.log_histograms(step, self._histograms())
        found = self.detector.check(step, grad, dead)
        for f in found:
            self.ctx.log(f.message, "warning")
            self.ctx.record_event(step, "health", f.as_event())
        self.findings += found
        self._grads = self._weights = None
        self._before, self._acts = [], {}
        return found

    def _histograms(self) -> dict[str, tuple]:
        out = {}
        by_node: dict[str, list[nn.Parameter]] = {}
        for node, p in zip(self._owner.tolist(), self._params, strict=True):
            by_node.setdefault(self.param_nodes[node], []).append(p)
        with torch.no_grad():
            for node, params in by_node.items():
                weights = torch.cat([p.detach().reshape(-1).float() for p in params])
                out[key(node, "weight_hist")] = self._histogram(key(node, "weight_hist"), weights)
                grads = [p.grad.reshape(-1).float() for p in params if p.grad is not None]
                if grads:
                    out[key(node, "grad_hist")] = self._histogram(key(node, "grad_hist"), torch.cat(grads))
        return out

    def _histogram(self, name: str, values: torch.Tensor) -> tuple:
        edges = self._edges.get(name)
        if edges is None:
            edges = self._edges[name] = _edges(float(values.abs().max()) if values.numel() else 0.0)
        lo, hi = float(edges[0]), float(edges[-1])
        finite = values[torch.isfinite(values)]
        # values beyond the edges count in the outermost bins: the range stays fixed over the run
        counts = torch.histc(finite.clamp(lo, hi), bins=HIST_BINS, min=lo, max=hi)
        return edges.numpy(), counts.round().long().cpu().numpy()


def _edges(largest: float) -> torch.Tensor:
    """Symmetric bin edges for a series, fixed by its first histogram: ±twice its largest value,
    rounded up to 1, 2 or 5 × 10^k, so that growth over the run stays inside for a while."""
    span = max(2 * largest, 1e-8)
    decade = 10 ** math.floor(math.log10(span))
    bound = next(m * decade for m in (1, 2, 5, 10) if m * decade >= span)
    return torch.linspace(-bound, bound, HIST_BINS + 1, dtype=torch.float64)
