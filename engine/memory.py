"""Memory-fit estimator: the bytes one device needs for a spec, before anything is launched.

Counted per device (one process), from the graph analysis and the spec:

  parameters   fp32 master weights, 4 B each (autocast keeps weights fp32); under bf16/fp16
               autocast also the 2-byte copies autocast caches during a forward ("casts")
  gradients    4 B per parameter
  optimizer    adam/adamw: two fp32 moments (8 B per parameter); sgd with momentum: 4 B; sgd: 0;
               the step itself briefly needs one parameter-sized temporary (foreach kernels)
  activations  what one micro-batch saves for backward: every node's output × batch × element
               size (2 B under autocast, 4 B in fp32, 8 B for token ids), with the internals of
               composite layers (a TransformerBlock saves ~(9 + 2·mlp_ratio)·T·D per sample),
               the loss's fp32 log-softmax, and 2 × the largest activation as backward's
               working memory. With activation checkpointing only the inputs of each Repeat copy
               and TransformerBlock stay, plus one unit's internals while it is recomputed.
  data         the whole data set: the training loop holds it on the device and indexes it

Strategies: DDP replicates everything (its gradient buckets are the gradients,
`gradient_as_bucket_view`). FSDP full_shard divides parameters, gradients and optimizer state
by the world size but gathers one unit (plus the next, prefetched) at a time; shard_grad_op
keeps every gathered parameter from forward to backward; no_shard replicates like DDP. CPU
offload keeps the shards in CPU memory. Peak = parameters + optimizer + data + casts +
max(gradients + activations, evaluation, optimizer step): conservative, since backward frees
activations as gradients appear.

Not counted: the CUDA context and kernels (~0.3–1 GiB per GPU, outside torch's allocator),
allocator fragmentation, and the Python/torch process itself on CPU (~0.3–0.5 GiB RSS), which
the fit check adds as a fixed allowance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.graph.model import Graph
from engine.graph.shapes import Analysis, NodeInfo, analyze

GIB = 2**30
# Outside torch's tensors: the CUDA context (or, on CPU, the interpreter and torch itself).
RUNTIME_ALLOWANCE = {"cuda": int(0.75 * GIB), "cpu": int(0.5 * GIB), "mps": int(0.5 * GIB)}


@dataclass
class MemoryEstimate:
    strategy: str
    world_size: int
    precision: str
    batch_size: int
    checkpointing: bool
    parameters: int
    casts: int
    gradients: int
    optimizer: int
    step_temporary: int
    activations: int  # with the spec's checkpointing setting
    activations_plain: int  # without checkpointing
    activations_checkpointed: int  # with checkpointing
    evaluation: int
    data: int | None
    device_type: str = "cpu"
    device: str = ""
    capacity: int | None = None  # bytes this process may use on its device; None: unknown
    notes: list[str] = field(default_factory=list)

    @property
    def peak(self) -> int:
        """Estimated peak of torch's allocator on one device (what `max_memory_allocated` reports)."""
        resident = self.parameters + self.optimizer + (self.data or 0) + self.casts
        return resident + max(
            self.gradients + self.activations, self.evaluation, self.gradients + self.step_temporary
        )

    @property
    def required(self) -> int:
        """The peak plus the runtime allowance: what must be free for the run to fit."""
        return self.peak + RUNTIME_ALLOWANCE.get(self.device_type, 0)

    @property
    def fits(self) -> bool | None:
        return None if self.capacity is None else self.required <= self.capacity

    def as_dict(self) -> dict:
        keys = (
            "strategy world_size precision batch_size checkpointing parameters casts gradients optimizer "
            "step_temporary activations activations_plain activations_checkpointed evaluation data device_type "
            "device capacity notes"
        ).split()
        return {
            **{k: getattr(self, k) for k in keys},
            "peak": self.peak,
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
        rows.append(f"  peak         {_size(self.peak)}")
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


def _size(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# ------------------------------------------------------------------ activations


@dataclass
class _Acts:
    plain: int = 0  # elements saved without checkpointing
    kept: int = 0  # elements saved with checkpointing (outside units, plus unit inputs)
    unit_max: int = 0  # the largest unit's internals, recomputed one unit at a time
    largest: int = 0  # the largest single tensor's elements (backward's working memory)
    live: int = 0  # the most elements one node holds at once without autograd (evaluation)
    units: list[int] = field(default_factory=list)  # parameters of each sharding unit


def _internal(info: NodeInfo) -> int:
    """Elements one sample of this node saves for backward (inputs of its inner ops included)."""
    out = math.prod(info.out.shape) if info.out else 0
    p = info.params
    if info.op == "TransformerBlock":
        t, d = info.inputs[0].shape[-2], info.inputs[0].shape[-1]
        return (9 + 2 * p["mlp_ratio"]) * t * d  # LN, QKV, attention, projection, LN, MLP in and out
    if info.op == "MultiheadSelfAttention":
        return 6 * out  # input, Q/K/V, attention output (saved twice: by SDPA and the projection)
    if info.op in ("LSTM", "GRU"):
        gates = 4 if info.op == "LSTM" else 3
        return (gates + 2) * out * p["num_layers"]
    return out


def _largest_tensor(info: NodeInfo) -> int:
    out = math.prod(info.out.shape) if info.out else 0
    if info.op == "TransformerBlock":
        return info.params["mlp_ratio"] * out  # the MLP's hidden layer
    if info.op in ("MultiheadSelfAttention", "LSTM", "GRU"):
        return 4 * out  # Q/K/V together; the gates
    return out


def _live(info: NodeInfo) -> int:
    """Elements one sample of this node holds at once under no_grad: its input, output and the
    widest intermediate."""
    out = math.prod(info.out.shape) if info.out else 0
    if info.op == "TransformerBlock":
        t, d = info.inputs[0].shape[-2], info.inputs[0].shape[-1]
        return (2 + 2 * info.params["mlp_ratio"]) * t * d  # residual, input and the MLP's hidden layer twice
    if info.op == "MultiheadSelfAttention":
        return 5 * out
    if info.op in ("LSTM", "GRU"):
        return (4 if info.op == "LSTM" else 3) * out + 2 * out
    return sum(math.prod(t.shape) for t in info.inputs) + out


def _walk(analysis: Analysis, acts: _Acts) -> None:
    for nid in analysis.order:
        info = analysis.nodes[nid]
        if info.out is None:
            continue
        if info.op == "Repeat":
            body = analyze(Graph.from_dict(info.params["body"]), info.inputs[0])
            inner = _Acts()
            _walk(body, inner)
            times = info.params["times"]
            boundary = math.prod(info.inputs[0].shape)
            acts.plain += times * inner.plain
            acts.kept += times * boundary
            acts.unit_max = max(acts.unit_max, inner.plain)
            acts.largest = max(acts.largest, inner.largest)
            acts.live = max(acts.live, inner.live)
            acts.units.extend([body.total_params] * times)
            continue
        n = _internal(info)
        acts.plain += n
        acts.largest = max(acts.largest, _largest_tensor(info))
        acts.live = max(acts.live, _live(info))
        if info.op == "TransformerBlock":
            acts.kept += math.prod(info.inputs[0].shape)
            acts.unit_max = max(acts.unit_max, n)
            acts.units.append(info.n_params)
        else:
            acts.kept += n


# ------------------------------------------------------------------ the estimate


def estimate_memory(spec: dict, analysis: Analysis | None = None, data=None, plan=None) -> MemoryEstimate:
    """Per-device memory of `spec`. `plan` (a `WorldPlan`) may describe a hypothetical device
    set (the GUI's device choice); by default it is this machine's. `data` (a `Dataset`) adds
    the data set's bytes; without it they are left out and a note says so."""
    from engine.strategies.world import plan_world

    analysis = analysis or analyze(Graph.from_dict(spec["model"]))
    plan = plan or plan_world(spec)
    hw, train = spec["hardware"], spec["train"]
    world, strategy = plan.world_size, plan.strategy
    low = train["precision"] in ("bf16", "fp16")
    elem = 2 if low else 4
    batch = train["batch_size"]
    notes: list[str] = []

    n_params = analysis.total_params
    states = {"adam": 2, "adamw": 2, "sgd": 1 if spec["optim"]["momentum"] > 0 else 0}[spec["optim"]["name"]]

    acts = _Acts()
    _walk(analysis, acts)
    in_t = analysis.input_type
    input_elem = 8 if in_t is not None and in_t.dtype == "long" else elem
    out_n = math.prod(analysis.output_type.shape) if analysis.output_type else 0
    loss = out_n * 4 * (2 if low else 1)  # fp32 log-softmax (and the fp32 copy of low-precision logits)

    def activation_bytes(saved: int) -> int:
        inputs = math.prod(in_t.shape) * input_elem if in_t else 0
        return batch * (saved * elem + inputs + loss + 2 * acts.largest * elem)

    plain = activation_bytes(acts.plain)
    checkpointed = activation_bytes(acts.kept + acts.unit_max)
    eval_batch = (
        min(train["eval_batch_size"], len(data.x_val)) if data is not None else train["eval_batch_size"]
    )
    evaluation = eval_batch * (acts.live * elem + 2 * out_n * 4)

    param_b, grad_b, optim_b = 4 * n_params, 4 * n_params, 4 * states * n_params
    step_tmp = 4 * n_params if states else 0
    if strategy == "fsdp" and hw["fsdp_sharding"] != "no_shard":
        unit = max(acts.units, default=0)
        root = n_params - sum(acts.units)
        gathered = 4 * (root + 2 * unit)  # the root, the unit at work and the one prefetched
        if hw["fsdp_sharding"] == "shard_grad_op":
            gathered = 4 * n_params  # every unit stays gathered from its forward to its backward
        shard = math.ceil(n_params / world)
        offload = hw["cpu_offload"] and plan.device_type == "cuda"
        param_b = (0 if offload else 4 * shard) + gathered
        grad_b = (0 if offload else 4 * shard) + 4 * max(unit, root)
        optim_b = 0 if offload else 4 * states * shard
        step_tmp = 0 if offload else 4 * shard if states else 0
        if offload:
            notes.append(
                f"cpu_offload keeps {_size(4 * (2 + states) * shard)} of shards per process in CPU memory"
            )
    casts = 2 * n_params if low else 0

    data_b = None
    if data is not None:
        data_b = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_val, data.y_val))
    else:
        notes.append("the data set is not counted (not loaded)")

    device, capacity = _capacity(plan)
    return MemoryEstimate(
        strategy=strategy if strategy != "fsdp" else f"fsdp {hw['fsdp_sharding']}",
        world_size=world,
        precision=train["precision"],
        batch_size=batch,
        checkpointing=hw["activation_checkpointing"],
        parameters=param_b,
        casts=casts,
        gradients=grad_b,
        optimizer=optim_b,
        step_temporary=step_tmp,
        activations=checkpointed if hw["activation_checkpointing"] else plain,
        activations_plain=plain,
        activations_checkpointed=checkpointed,
        evaluation=evaluation,
        data=data_b,
        device_type=plan.device_type,
        device=device,
        capacity=capacity,
        notes=notes,
    )


def _capacity(plan) -> tuple[str, int | None]:
    """(device description, bytes one process may use): the least free memory among the
    selected GPUs; on CPU (and MPS's unified memory) the available RAM shared by this machine's
    processes."""
    if plan.device_type == "cuda":
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
