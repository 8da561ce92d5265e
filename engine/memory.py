"""Memory-fit estimator: the bytes one device needs for a spec, before anything is launched.

The estimate follows one training step the way autograd spends memory, node by node, from the
graph analysis and the op registry's declarations (`OpDef.keeps`, `OpDef.autocast`, the
activation rules), with block copies unrolled:

  resident     fp32 weights (4 B per parameter), the optimizer's state (adam/adamw: two fp32
               moments, 8 B; sgd with momentum 4 B, plain sgd 0), the data set (the training
               loop holds it on the device) and the micro-batch
  forward      each node's output, where a consumer keeps it for backward (a Linear keeps its
               input, a ReLU its result, an Add nothing; a view shares its input's memory), and
               a block's internals; under bf16/fp16 autocast matrix products give 2-byte
               outputs, embeddings and residual sums stay fp32, a kept fp32 input of a matrix
               product is its 2-byte copy, and each such layer's weights get a 2-byte copy
               ("casts") that backward needs too
  loss         the fp32 log-softmax the loss keeps, and at backward's start its gradient and
               the log-softmax's (12 B per logit)
  backward     from the top: a node's kept tensors are freed after its backward, its
               parameters' gradients (fp32) appear, and it holds its output's and inputs'
               gradients meanwhile; with activation checkpointing only each unit's input is
               kept and a unit's internals are recomputed while its backward runs
  step         weights, gradients and state (fused AdamW needs no temporaries)
  evaluation   under no_grad, the most one node holds at once, for a validation batch

The peak is the largest of these moments: on a wide, shallow model that is often backward's
start, on a large-vocabulary one the loss, on a parameter-heavy one the optimizer step.
`per-sample` terms scale with the micro-batch, so `misfit` can say which batch fits.

Strategies: DDP replicates everything and allocates every gradient up front (its buckets are
the gradients, `gradient_as_bucket_view`). FSDP full_shard divides weights, gradients and
optimizer state by the world size, gathers one unit (a Repeat copy or TransformerBlock) at a
time plus the next one prefetched, keeps the root's own parameters (embeddings, head) gathered
from forward to backward, and reduce-scatters each unit's gradients after its backward;
shard_grad_op keeps every gathered parameter from forward to backward; no_shard replicates.
CPU offload keeps the shards in CPU memory. On a CPU, FSDP's full checkpoint is gathered on
rank 0 in the same memory (weights and optimizer state, unsharded), which is counted.

Measured against the tensors a real step allocates (`tests/benchmarks/bench_memory.py` prints
the table): within ±15 % for the examples and the GPT templates, single, DDP and FSDP, fp32
and bf16, with and without checkpointing. Not counted: the CUDA context and kernels (~0.3–1 GiB
per GPU, outside torch's allocator), cuDNN/cuBLAS workspaces, allocator fragmentation, and the
Python/torch process itself on CPU (~0.3–0.5 GiB RSS); the fit check adds a fixed allowance.
"""

from __future__ import annotations

import math
import os
import platform
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.graph.model import Graph
from engine.graph.ops import OPS, numel
from engine.graph.shapes import Analysis, analyze

GIB = 2**30
# Outside torch's tensors: the CUDA context (or, on CPU, the interpreter and torch itself).
RUNTIME_ALLOWANCE = {"cuda": int(0.75 * GIB), "cpu": int(0.5 * GIB), "mps": int(0.5 * GIB)}
LOSS_KEPT = 4  # bytes per logit: the fp32 log-softmax the loss keeps for backward
LOSS_BACKWARD = 12  # bytes per logit at backward's start: that, and its and the loss's gradients


@dataclass
class Moment:
    """Bytes on one device at one moment of a step: `fixed` plus `per_sample` × the batch (the
    training micro-batch, or the validation batch for evaluation)."""

    name: str
    fixed: int
    per_sample: int
    batch: int

    @property
    def total(self) -> int:
        return self.fixed + self.per_sample * self.batch


@dataclass
class MemoryEstimate:
    strategy: str
    world_size: int
    precision: str
    batch_size: int
    checkpointing: bool
    parameters: int  # weights on the device (a shard plus the gathered units under FSDP)
    casts: int  # the 2-byte weight copies autocast keeps through a step
    gradients: int  # at most at once
    optimizer: int
    step_temporary: int
    activations: int  # kept for backward by one micro-batch, with the spec's checkpointing setting
    activations_plain: int  # without checkpointing
    activations_checkpointed: int  # with checkpointing
    evaluation: int  # what a validation batch holds at most, beyond the weights
    data: int | None
    device_type: str = "cpu"
    device: str = ""
    capacity: int | None = None  # bytes this process may use on its device; None: unknown
    notes: list[str] = field(default_factory=list)
    moments: list[Moment] = field(default_factory=list)  # with the spec's checkpointing setting
    advice: list[str] = field(default_factory=list)  # settings that would make a misfit fit

    @property
    def peak_moment(self) -> Moment:
        return max(self.moments, key=lambda m: m.total)

    @property
    def peak(self) -> int:
        """Estimated peak of torch's allocator on one device (what `max_memory_allocated` reports),
        with the data set (which a CPU run holds in numpy arrays beside torch's tensors)."""
        return self.peak_moment.total + (self.data or 0)

    @property
    def required(self) -> int:
        """The peak plus the runtime allowance: what must be free for the run to fit."""
        return self.peak + RUNTIME_ALLOWANCE.get(self.device_type, 0)

    @property
    def fits(self) -> bool | None:
        return None if self.capacity is None else self.required <= self.capacity

    def fitting_batch(self) -> int | None:
        """The largest micro-batch that fits the free memory (0: none does); None when unknown."""
        if self.capacity is None:
            return None
        room = self.capacity - RUNTIME_ALLOWANCE.get(self.device_type, 0) - (self.data or 0)
        best = None
        for m in self.moments:
            if m.batch != self.batch_size or m.per_sample == 0:  # evaluation: not the training batch's
                if m.total > room:
                    return 0
                continue
            fits = max(0, (room - m.fixed) // m.per_sample)
            best = fits if best is None else min(best, fits)
        return best

    def as_dict(self) -> dict:
        keys = (
            "strategy world_size precision batch_size checkpointing parameters casts gradients optimizer "
            "step_temporary activations activations_plain activations_checkpointed evaluation data device_type "
            "device capacity notes advice"
        ).split()
        return {
            **{k: getattr(self, k) for k in keys},
            "peak": self.peak,
            "peak_at": self.peak_moment.name,
            "required": self.required,
            "fits": self.fits,
        }

    def lines(self) -> list[str]:
        """A short table for `trainbench validate` and the GUI."""
        ckpt = "with" if self.checkpointing else "without"
        other = self.activations_plain if self.checkpointing else self.activations_checkpointed
        rows = [
            f"memory per device ({self.strategy}, {self.world_size} process(es), {self.precision}, "
            f"batch {self.batch_size} per device):",
            f"  parameters   {_size(self.parameters)}"
            + (f"  (+{_size(self.casts)} autocast copies)" if self.casts else ""),
            f"  gradients    {_size(self.gradients)}",
            f"  optimizer    {_size(self.optimizer)}",
            f"  activations  {_size(self.activations)} {ckpt} activation checkpointing "
            f"({_size(other)} {'without' if self.checkpointing else 'with'})",
        ]
        if self.data is not None:
            rows.append(f"  data         {_size(self.data)}")
        rows.append(f"  peak         {_size(self.peak)} (at {self.peak_moment.name})")
        if self.capacity is None:
            rows.append(f"  fit          unknown: no free-memory figure for {self.device}")
        else:
            verdict = "fits" if self.fits else "does NOT fit"
            rows.append(
                f"  fit          {verdict}: needs ~{_size(self.required)} with the runtime, "
                f"{_size(self.capacity)} free on {self.device}"
            )
        rows.extend(f"  note: {n}" for n in self.notes)
        return rows

    def misfit(self) -> tuple[str, str] | None:
        """(spec path, message) when the run does not fit: the largest memory term, by how much,
        and what would make it fit (each alternative estimated); None when it fits or the free
        memory is unknown."""
        if self.fits is not False:
            return None
        terms = {
            "activations": self.activations,
            "the parameters with their gradients and optimizer state": self.parameters
            + self.casts
            + self.gradients
            + self.optimizer,
            "the data set, held in memory": self.data or 0,
            "evaluation": self.evaluation,
        }
        term = max(terms, key=terms.get)
        head = (
            f"needs ~{_size(self.required)} but {_size(self.capacity)} is free on {self.device}; "
            f"the largest part is {term} ({_size(terms[term])})"
        )
        ways = list(self.advice)
        fits_at = self.fitting_batch()
        if term == "activations" and fits_at:
            ways.insert(0, f"lower train.batch_size to {fits_at:,} or less")
        path = {
            "activations": "train.batch_size",
            "evaluation": "train.eval_batch_size",
            "the data set, held in memory": "data",
        }.get(term, "model")
        if term == "evaluation":
            ways.insert(0, "lower train.eval_batch_size")
        elif term.startswith("the data"):
            ways.insert(0, "use fewer or smaller samples")
        elif term.startswith("the parameters"):
            ways.append("make the model smaller")
        if not ways:
            ways = ["make the model's layers narrower"]
        return path, f"{head}: {' or '.join(ways)} (--force starts it anyway)"


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


# ------------------------------------------------------------------ the model, node by node


@dataclass
class _Layer:
    """One node of the model (block copies unrolled) as a training step's memory sees it.
    Bytes per sample, except `params`."""

    kept: int = 0  # created here and kept until its backward (output, internals)
    recompute: int = 0  # under checkpointing: what its unit re-creates in backward instead
    forward: int = 0  # held while it computes, beyond what it keeps
    backward: int = 0  # held while its backward runs: its output's and inputs' gradients, more
    live: int = 0  # held at once under no_grad (evaluation)
    params: int = 0
    lowered: bool = False  # a matrix product: autocast copies its weights to 2 bytes
    unit: int | None = None  # the checkpointing / FSDP unit it belongs to


class _Tensor:
    """A node's output while the walk decides who keeps it (at its own precision, or only as the
    2-byte copy a matrix product makes of an fp32 input)."""

    def __init__(self, n: int, elem: int, layer: _Layer | None, unit: int | None):
        self.n, self.elem, self.layer, self.unit = n, elem, layer, unit
        self.full = self.cast = False
        self.unit_input = False  # checkpointing keeps it as a unit's input
        self.escapes = unit is None  # read outside the unit that made it


class _Walk:
    """Unrolls the analysis into `_Layer`s. `low`: autocast's element size (None in fp32)."""

    def __init__(self, low: int | None, cuda: bool, checkpointing: bool):
        self.low, self.cuda, self.checkpointing = low, cuda, checkpointing
        self.layers: list[_Layer] = []
        self.tensors: list[_Tensor] = []
        self.units = 0

    def graph(self, analysis: Analysis, first: _Tensor | None, unit: int | None, outer: int = 0):
        """Walk one graph level; `outer`: bytes per sample of the enclosing levels' values that
        stay alive meanwhile (a skip connection around a block). Returns the output tensor."""
        values: dict[str, _Tensor] = {}
        last_use = {s: i for i, nid in enumerate(analysis.order) for s in analysis.nodes[nid].sources}
        for i, nid in enumerate(analysis.order):
            info = analysis.nodes[nid]
            op = OPS[info.op]
            if info.op == "Input":
                if first is None:  # the model's own input: the batch, counted apart
                    elem = 8 if info.out.dtype == "long" else 4
                    first = _Tensor(numel(info.out.shape), elem, None, None)
                values[nid] = first
                continue
            ins = [values[s] for s in info.sources]
            # values made earlier and read later, beside this node (GraphModule frees at last use)
            carried = outer + sum(
                t.n * t.elem
                for v, t in values.items()
                if last_use.get(v, -1) > i and v not in info.sources and t.layer is not None
            )
            if op.body is not None:
                values[nid] = self.block(info, op, ins[0], unit, carried)
            else:
                values[nid] = self.node(info, op, ins, unit, carried)
        return values.get(analysis.output)

    def block(self, info, op, x: _Tensor, unit: int | None, carried: int) -> _Tensor:
        first = x
        for c in range(info.params[op.copies] if op.copies else 1):
            own = unit if unit is not None else self._new_unit(x)
            held = first.n * first.elem if c and first.layer is not None else 0  # the block's input
            x = self.graph(info.body, x, own, carried + held)
        return x

    def node(self, info, op, ins: list[_Tensor], unit: int | None, carried: int) -> _Tensor:
        if unit is None and "unit" in op.traits:
            unit = self._new_unit(ins[0])
        for t in ins:
            t.escapes = t.escapes or t.unit != unit
        low = self.low
        widest = max(t.elem for t in ins)
        if op.autocast == "low":
            elem = low or 4
        elif op.autocast == "fp32":
            elem = 4
        elif op.autocast == "fp32_cuda" and self.cuda and low:
            elem = 4
        else:
            elem = widest
        compute = low or 4
        use = op.activation_use(info.params, info.inputs, info.out)
        n = numel(info.out.shape)
        # autocast copies the weights of matrix products, and of blocks made of them
        lowered = op.autocast == "low" or "deep" in op.traits
        layer = _Layer(params=info.n_params, lowered=lowered, unit=unit)
        layer.kept = (use.saved - use.residual) * compute + use.residual * ins[0].elem + use.index_bytes
        temporaries = max(0, use.live - n - sum(t.n for t in ins))
        layer.forward = n * elem + temporaries * compute + carried
        layer.backward = n * elem + sum(t.n * t.elem for t in ins) + use.grad * compute
        # a block: its inner products at their precision, its residual stream at the input's
        if use.live_residual:
            layer.live = (use.live - use.live_residual) * compute + use.live_residual * ins[0].elem + carried
        else:
            layer.live = use.live * max(elem, widest if widest < 8 else 4) + carried
        self.layers.append(layer)
        if op.keeps == "view":
            return ins[0]
        if op.keeps == "input":
            for t in ins:
                if op.autocast == "low" and low and t.elem > low:
                    t.cast = True
                else:
                    t.full = True
        out = _Tensor(n, elem, layer, unit)
        if op.keeps == "output":
            out.full = True
        self.tensors.append(out)
        return out

    def _new_unit(self, x: _Tensor) -> int:
        self.units += 1
        if self.checkpointing:
            x.unit_input = True
        return self.units

    def finish(self) -> list[_Layer]:
        """Give each kept tensor's bytes to the layer that made it; under checkpointing what a
        unit makes is recomputed in its backward, but for the unit inputs checkpointing keeps."""
        for layer in self.layers:
            if self.checkpointing and layer.unit is not None:
                layer.recompute, layer.kept = layer.kept, 0
        for t in self.tensors:
            size = (t.n * t.elem if t.full or t.unit_input else 0) + (t.n * self.low if t.cast else 0)
            if self.checkpointing and not t.escapes and not t.unit_input:
                t.layer.recompute += size
            else:
                t.layer.kept += size
        return self.layers


# ------------------------------------------------------------------ the estimate


def estimate_memory(
    spec: dict, analysis: Analysis | None = None, data=None, plan=None, capacity: int | None = None
) -> MemoryEstimate:
    """Per-device memory of `spec`. `plan` (a `WorldPlan`, or a `DevicePlan`) may describe a
    hypothetical device set (the GUI's device choice); by default it is this machine's, told
    without torch where `device_plan` can (so the GUI and `trainbench validate` never import
    it), else by `plan_world`. `data` (a `Dataset`, or the `DataInfo` the preflight describes
    without loading) adds the data set's bytes; without it they are left out and a note says so.
    `capacity`: the bytes free per device to fit into (default: the plan's devices' free memory).
    A misfit's `advice` estimates each setting that would shrink the need."""
    from engine.data import as_info

    analysis = analysis or analyze(Graph.from_dict(spec["model"]))
    if plan is None:
        plan = device_plan(spec)
    if plan is None:
        from engine.strategies.world import plan_world

        plan = plan_world(spec)
    data = as_info(data) if data is not None else None
    est = _estimate(spec, analysis, data, plan, capacity)
    if est.fits is False:
        est.advice = _advice(spec, analysis, data, plan, est)
    return est


def _estimate(spec: dict, analysis: Analysis, data, plan, capacity: int | None = None) -> MemoryEstimate:
    hw, train = spec["hardware"], spec["train"]
    world, strategy = plan.world_size, plan.strategy
    cuda = plan.device_type == "cuda"
    low = 2 if train["precision"] in ("bf16", "fp16") else None
    batch = train["batch_size"]
    notes: list[str] = []
    n_params = analysis.total_params
    optim = spec["optim"]
    states = {"adam": 2, "adamw": 2, "sgd": 1 if optim["momentum"] > 0 else 0}[optim["name"]]
    step_tmp = 4 * n_params if optim["name"] == "sgd" and optim["weight_decay"] > 0 else 0

    runs = {}
    for ckpt in (False, True):
        walk = _Walk(low, cuda, ckpt)
        out = walk.graph(analysis, None, None)
        runs[ckpt] = walk.finish(), out
    layers, out = runs[hw["activation_checkpointing"]]

    in_t = analysis.input_type
    out_n = out.n if out is not None else 0
    language_model = analysis.output_type is not None and len(analysis.output_type.shape) == 2
    if data is not None:
        language_model = data.objective == "language_model"
    targets = 8 * (out_n // analysis.output_type.shape[-1] if language_model else 1) if out_n else 0
    if data is not None and data.objective == "regression":
        targets = 4 * out_n
    inputs = (numel(in_t.shape) * (8 if in_t.dtype == "long" else 4) if in_t else 0) + targets
    eval_batch = (
        min(train["eval_batch_size"], data.val_samples) if data is not None else train["eval_batch_size"]
    )

    sharded = strategy == "fsdp" and hw["fsdp_sharding"] != "no_shard"
    offload = sharded and hw["cpu_offload"] and cuda
    unit_size: dict[int, int] = {}  # parameters of each unit
    for layer in layers:
        if layer.unit is not None:
            unit_size[layer.unit] = unit_size.get(layer.unit, 0) + layer.params
    units = list(unit_size.values())
    root = n_params - sum(units)
    shard = math.ceil(n_params / world) if sharded else n_params
    resident_params = 0 if offload else 4 * shard
    optimizer = 0 if offload else 4 * states * shard
    step_tmp = 0 if offload else step_tmp * shard // max(n_params, 1)
    if offload:
        notes.append(
            f"cpu_offload keeps {_size(4 * (2 + states) * shard)} of shards per process in CPU memory"
        )
    ddp_buckets = 4 * n_params if strategy == "ddp" else 0
    order = 8 * data.train_samples if data is not None else 0  # the epoch's shuffled sample order
    accumulating = train["grad_accum"] > 1
    data_b = data.nbytes if data is not None else None
    if data is None:
        notes.append("the data set is not counted (not loaded)")

    def moments(layers: list[_Layer]) -> list[Moment]:
        fixed = resident_params + optimizer + ddp_buckets + order
        # shard_grad_op: every parameter stays gathered from its forward to its backward
        all_gathered = 4 * n_params if sharded and hw["fsdp_sharding"] == "shard_grad_op" else 0
        grads_all = 4 * shard if sharded else 4 * n_params
        if accumulating and not ddp_buckets:
            fixed += grads_all  # gradients of the earlier micro-batches wait for the step
        casts = [2 * layer.params if low and layer.lowered else 0 for layer in layers]
        unit_of = [layer.unit for layer in layers]
        recompute: dict[int, int] = {}
        for layer in layers:
            if layer.unit is not None:
                recompute[layer.unit] = recompute.get(layer.unit, 0) + layer.recompute

        def gathered(i: int, step: int = 1) -> int:
            """FSDP: the parameters gathered around layer i, its unit's (or the root's) and the
            next unit's in the direction of travel (`step`), prefetched; in forward the
            all-gather's output stays beside the parameters copied out of it."""
            if not sharded:
                return 0
            u = unit_of[i]
            own = unit_size[u] if u is not None else root
            ahead = unit_size.get(u + step, 0) if u is not None else 0
            return (all_gathered or 4 * (own + ahead)) + (4 * own if step > 0 else 0)

        out_moments: list[Moment] = []
        kept = 0
        cast_sum = 0
        for i, layer in enumerate(layers):
            cast_sum += casts[i]
            out_moments.append(
                Moment("forward", fixed + cast_sum + gathered(i), inputs + kept + layer.forward, batch)
            )
            kept += layer.kept
        end = fixed + cast_sum + all_gathered
        out_moments.append(
            Moment("the loss", end, inputs + kept + out_n * (LOSS_KEPT + 4 + (low or 0)), batch)
        )
        out_moments.append(Moment("backward's start", end, inputs + kept + out_n * LOSS_BACKWARD, batch))
        # backward, from the top: gradients appear (sharded after each unit under FSDP)
        grads = 0
        done_units: set[int] = set()
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            u = unit_of[i]
            if sharded:
                if u is None:
                    grads += 4 * layer.params  # the root's gradients stay whole until its end
                elif u not in done_units:
                    done_units.add(u)
                    grads += 4 * math.ceil(unit_size[u] / world)
                unsharded = 4 * unit_size[u] if u is not None else 0
            else:
                grads += 4 * layer.params
                unsharded = 0
            held = 0 if ddp_buckets or accumulating else grads
            again = recompute.get(u, 0) if u is not None else 0
            out_moments.append(
                Moment(
                    "backward",
                    fixed + cast_sum + gathered(i, -1) + held + unsharded,
                    inputs + kept + again + layer.backward,
                    batch,
                )
            )
            cast_sum -= casts[i]
            kept -= layer.kept
        step_grads = 0 if ddp_buckets or accumulating else grads_all
        out_moments.append(Moment("the optimizer step", fixed + step_grads + step_tmp, inputs, batch))
        # no_grad: the busiest node, or the loss (the logits, their fp32 copy, the log-softmax)
        widest = max([layer.live for layer in layers] + [out_n * ((low or 4) + (4 if low else 0) + 4)])
        # autocast's weight copies one layer at a time under no_grad
        eval_fixed = resident_params + optimizer + ddp_buckets + max(casts, default=0)
        eval_fixed += max((gathered(i) for i in range(len(layers))), default=0)
        out_moments.append(Moment("evaluation", eval_fixed, widest, eval_batch))
        if sharded and plan.device_type == "cpu":
            # rank 0 gathers the full checkpoint (weights and optimizer state) in the same memory
            full = 4 * (1 + states) * n_params
            out_moments.append(Moment("the checkpoint", fixed + full, inputs, batch))
        return out_moments

    plain = sum(layer.kept for layer in runs[False][0]) + out_n * LOSS_KEPT
    checkpointed = (
        sum(layer.kept for layer in runs[True][0])
        + out_n * LOSS_KEPT
        + max(
            (
                sum(x.recompute for x in runs[True][0] if x.unit == u)
                for u in {x.unit for x in runs[True][0]}
                if u
            ),
            default=0,
        )
    )
    chosen = moments(layers)
    gradients = (4 * shard + 4 * max([*units, root], default=0)) if sharded else 4 * n_params
    if offload:
        gradients = 4 * max([*units, root], default=0)
    device, free = _capacity(plan)
    capacity = free if capacity is None else capacity
    if capacity is None and cuda:
        notes.append("the GPUs' free memory needs NVML (pip install nvidia-ml-py) or validate --measure")
    evaluation = next(m for m in chosen if m.name == "evaluation")
    return MemoryEstimate(
        strategy=strategy if strategy != "fsdp" else f"fsdp {hw['fsdp_sharding']}",
        world_size=world,
        precision=train["precision"],
        batch_size=batch,
        checkpointing=hw["activation_checkpointing"],
        parameters=resident_params
        + (4 * (root + 2 * max(units, default=0)) if sharded else 0)
        + (4 * sum(units) if sharded and hw["fsdp_sharding"] == "shard_grad_op" else 0),
        casts=sum(2 * x.params for x in layers if low and x.lowered),
        gradients=gradients,
        optimizer=optimizer,
        step_temporary=step_tmp,
        activations=batch * (checkpointed if hw["activation_checkpointing"] else plain),
        activations_plain=batch * plain,
        activations_checkpointed=batch * checkpointed,
        evaluation=evaluation.per_sample * evaluation.batch,
        data=data_b,
        device_type=plan.device_type,
        device=device,
        capacity=capacity,
        notes=notes,
        moments=chosen,
    )


def _advice(spec: dict, analysis: Analysis, data, plan, est: MemoryEstimate) -> list[str]:
    """Settings that change the estimate, each estimated: checkpointing, bf16, sharding."""
    hw, train = spec["hardware"], spec["train"]
    tries = []
    if not hw["activation_checkpointing"]:
        tries.append(
            ("set hardware.activation_checkpointing", {"hardware": {"activation_checkpointing": True}})
        )
    if train["precision"] == "fp32":
        tries.append(("train in bf16 (train.precision)", {"train": {"precision": "bf16"}}))
    if len(tries) == 2:
        tries.append(
            (
                "both",
                {"hardware": {"activation_checkpointing": True}, "train": {"precision": "bf16"}},
            )
        )
    if plan.world_size > 1 and plan.strategy != "fsdp":
        tries.append(
            (
                f"shard over the {plan.world_size} processes with hardware.strategy fsdp",
                {"hardware": {"strategy": "fsdp"}},
            )
        )
    out = []
    for words, change in tries:
        other = {**spec, **{k: {**spec[k], **v} for k, v in change.items()}}
        other_plan = (
            replace(plan, strategy=other["hardware"]["strategy"])
            if "strategy" in change.get("hardware", {})
            else plan
        )
        alt = _estimate(other, analysis, data, other_plan, est.capacity)
        verdict = "fits" if alt.fits else "still too much"
        out.append(f"{words} (needs ~{_size(alt.required)}: {verdict})")
    if plan.device_type == "cuda" and plan.world_size == 1:  # a model too large for one GPU
        sharded = {**spec, "hardware": {**hw, "strategy": "fsdp"}}
        for n in (2, 4, 8):
            alt = _estimate(
                sharded, analysis, data, replace(plan, strategy="fsdp", nproc_per_node=n), est.capacity
            )
            if alt.fits:
                out.append(
                    f"shard it with fsdp over {n} GPUs like this one (needs ~{_size(alt.required)}: fits)"
                )
                break
    return out


# ------------------------------------------------------------------ the devices, without torch


@dataclass(frozen=True)
class DevicePlan:
    """What the estimate reads of a `WorldPlan` (engine.strategies.world), worked out without
    importing torch: `device_plan` makes one for `trainbench validate`, which must answer in
    well under a second (importing torch takes seconds)."""

    device_type: str
    strategy: str
    nproc_per_node: int
    max_nodes: int
    gpus: tuple[int, ...] | None

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.max_nodes


def device_plan(spec: dict) -> DevicePlan | None:
    """This machine's plan for `spec` without torch, or None when only torch can tell (then
    call `plan_world`). Raises SpecError where a run would: CUDA or MPS asked for and absent."""
    from engine.errors import SpecError
    from engine.spec import parse_nnodes

    hw = spec["hardware"]
    want = hw["device"]
    gpus = _cuda_gpus() if want in ("auto", "cuda") else []
    if gpus is None:
        return None
    if want == "auto":
        want = "cuda" if gpus else "cpu"
    if want == "cuda" and not gpus:
        raise SpecError.at(
            "hardware.device", "cuda was asked for but no CUDA GPU is visible (see `trainbench devices`)"
        )
    if want == "mps":
        if platform.system() == "Darwin":
            return None  # only torch knows whether this Mac's Metal backend is there
        raise SpecError.at("hardware.device", "mps was asked for but Apple's Metal backend is not available")
    selected = tuple(hw["gpus"]) if hw["gpus"] and want == "cuda" else None
    if want == "cuda":
        nproc = hw["nproc_per_node"] or (len(selected) if selected else len(gpus))
    else:
        nproc = hw["nproc_per_node"] or 1
    _, max_nodes = parse_nnodes(hw["nnodes"])
    strategy = hw["strategy"]
    if strategy == "auto":  # as world.choose_strategy: single on one process, DDP on several
        strategy = "single" if nproc * max_nodes == 1 else "ddp"
    return DevicePlan(want, strategy, nproc, max_nodes, selected)


def _cuda_gpus() -> list[int] | None:
    """Indices of the CUDA GPUs torch would see, told without importing it; None when unsure.

    torch sees none when its build has no CUDA (read from torch/version.py), when the NVIDIA
    driver is absent (Linux: /proc/driver/nvidia), or when CUDA_VISIBLE_DEVICES hides them."""
    # Found on sys.path by hand: even importlib's find_spec would run the import machinery
    # (and its hooks) for torch.
    found = [p / "torch" / "version.py" for p in map(Path, filter(None, sys.path))]
    version = next((v for v in found if v.is_file()), None)
    if version is None:
        return []  # no torch: a run could not start, but that is not the device's to say
    try:
        text = version.read_text()
    except OSError:
        return None
    build = dict(re.findall(r"^(cuda|hip)\b[^=]*=\s*(.+?)\s*$", text, re.M))
    if build.get("hip", "None") != "None":
        return None  # ROCm: torch.cuda drives AMD GPUs, which NVML does not see
    if build.get("cuda") == "None":
        return []  # a CPU build
    count = _nvml_count()
    if count is None:
        if platform.system() != "Linux":
            return None
        gpus = Path("/proc/driver/nvidia/gpus")
        count = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        shown = []
        for item in (v.strip() for v in visible.split(",")):
            if not item.lstrip("-").isdigit():
                return None if item else []  # GPU UUIDs, MIG names: torch's to resolve
            if item.startswith("-"):
                break  # CUDA stops at the first invalid index
            shown.append(item)
        count = min(count, len(shown))
    return list(range(count))


def _nvml():
    from engine.devices import _nvml as nvml

    return nvml()


def _nvml_count() -> int | None:
    nv = _nvml()
    if nv is None:
        return None
    try:
        return int(nv.nvmlDeviceGetCount())
    except Exception:  # noqa: BLE001 - a driver that fails to answer: unknown
        return None


def _capacity(plan) -> tuple[str, int | None]:
    """(device description, bytes one process may use): the least free memory among the
    selected GPUs; on CPU (and MPS's unified memory) the available RAM shared by this machine's
    processes. A `DevicePlan` asks NVML for the GPUs (or says unknown); a `WorldPlan` asks torch."""
    if plan.device_type == "cuda":
        if isinstance(plan, DevicePlan):
            return _nvml_capacity(plan)
        import torch

        if not torch.cuda.is_available():
            return "cuda", None
        gpus = list(plan.gpus) if plan.gpus else list(range(torch.cuda.device_count()))
        gpus = gpus[: plan.nproc_per_node]
        free = min(torch.cuda.mem_get_info(i)[0] for i in gpus)
        return f"cuda:{','.join(map(str, gpus))}", free
    from engine.devices import cpu_info

    available = cpu_info()["available_bytes"]
    share = f" (÷{plan.nproc_per_node} processes)" if plan.nproc_per_node > 1 else ""
    return f"{plan.device_type}{share}", available // plan.nproc_per_node if available else None


def _nvml_capacity(plan: DevicePlan) -> tuple[str, int | None]:
    gpus = list(plan.gpus) if plan.gpus else list(range(_nvml_count() or 0))
    gpus = gpus[: plan.nproc_per_node]
    where = f"cuda:{','.join(map(str, gpus))}"
    nv = _nvml()
    if nv is None or not gpus:
        return where, None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    physical = [int(v) for v in visible.split(",") if v.strip().isdigit()] if visible else None
    try:
        free = [
            nv.nvmlDeviceGetMemoryInfo(nv.nvmlDeviceGetHandleByIndex(physical[g] if physical else g)).free
            for g in gpus
        ]
    except Exception:  # noqa: BLE001 - an index NVML does not know, a driver that fails: unknown
        return where, None
    return where, int(min(free))
