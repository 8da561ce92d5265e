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
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from engine.graph.model import Graph
from engine.graph.ops import OPS
from engine.graph.shapes import Analysis, analyze

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

    def misfit(self) -> tuple[str, str] | None:
        """(spec path, message) when the run does not fit: the largest memory term, by how much,
        and what would make it fit; None when it fits or the free memory is unknown."""
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
        if term == "activations":
            per_sample = self.activations / self.batch_size
            room = self.capacity - (self.required - self.activations)
            fits_at = int(room // per_sample) if per_sample else 0
            ways = [f"lower train.batch_size to {fits_at:,} or less"] if fits_at >= 1 else []
            if not self.checkpointing and self.activations_checkpointed < self.activations_plain:
                ways.append("set hardware.activation_checkpointing")
            if self.precision == "fp32":
                ways.append("train in bf16 (train.precision)")
            path = "train.batch_size"
            advice = " or ".join(ways) or "make the model's layers narrower"
        elif term == "evaluation":
            path, advice = "train.eval_batch_size", "lower train.eval_batch_size"
        elif term.startswith("the data"):
            path, advice = "data", "use fewer or smaller samples"
        else:
            path = "model"
            advice = "make the model smaller" + (
                "" if self.strategy.startswith("fsdp") else ", or shard it with fsdp"
            )
        return path, f"{head}: {advice} (--force starts it anyway)"


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
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


def _walk(analysis: Analysis, acts: _Acts) -> None:
    """Add up what each node saves, by the op registry's activation rules. A block op's copies
    and `unit` ops are what checkpointing recomputes and FSDP shards one at a time."""
    for nid in analysis.order:
        info = analysis.nodes[nid]
        if info.out is None:
            continue
        op = OPS[info.op]
        if info.body is not None:
            inner = _Acts()
            _walk(info.body, inner)
            copies = info.params[op.copies] if op.copies else 1
            acts.plain += copies * inner.plain
            acts.kept += copies * math.prod(info.inputs[0].shape)
            acts.unit_max = max(acts.unit_max, inner.plain)
            acts.largest = max(acts.largest, inner.largest)
            acts.live = max(acts.live, inner.live)
            acts.units.extend([info.body.total_params] * copies)
            continue
        use = op.activation_use(info.params, info.inputs, info.out)
        acts.plain += use.saved
        acts.largest = max(acts.largest, use.largest)
        acts.live = max(acts.live, use.live)
        if "unit" in op.traits:
            acts.kept += math.prod(info.inputs[0].shape)
            acts.unit_max = max(acts.unit_max, use.saved)
            acts.units.append(info.n_params)
        else:
            acts.kept += use.saved


# ------------------------------------------------------------------ the estimate


def estimate_memory(spec: dict, analysis: Analysis | None = None, data=None, plan=None) -> MemoryEstimate:
    """Per-device memory of `spec`. `plan` (a `WorldPlan`, or a `DevicePlan`) may describe a
    hypothetical device set (the GUI's device choice); by default it is this machine's, told
    without torch where `device_plan` can (so the GUI and `trainbench validate` never import
    it), else by `plan_world`. `data` (a `Dataset`, or the `DataInfo` the preflight describes
    without loading) adds the data set's bytes; without it they are left out and a note says so."""
    from engine.data import as_info

    analysis = analysis or analyze(Graph.from_dict(spec["model"]))
    if plan is None:
        plan = device_plan(spec)
    if plan is None:
        from engine.strategies.world import plan_world

        plan = plan_world(spec)
    data = as_info(data) if data is not None else None
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
        min(train["eval_batch_size"], data.val_samples) if data is not None else train["eval_batch_size"]
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
        data_b = data.nbytes
    else:
        notes.append("the data set is not counted (not loaded)")

    device, capacity = _capacity(plan)
    if capacity is None and plan.device_type == "cuda":
        notes.append("the GPUs' free memory needs NVML (pip install nvidia-ml-py) or validate --measure")
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
