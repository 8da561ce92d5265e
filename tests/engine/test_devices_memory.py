"""Device discovery, resource samplers and the memory-fit estimator (on real graphs and real
models), plus the CUDA paths that run only where a GPU is present."""

from __future__ import annotations

import json
import math
import weakref
from contextlib import nullcontext

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from engine.data import load_dataset
from engine.graph.build import build
from engine.graph.model import Graph
from engine.memory import estimate_memory
from engine.optim import make_optimizer
from engine.strategies.single import enable_checkpointing
from engine.strategies.world import WorldPlan
from engine.tasks.objectives import Objective
from tests.conftest import EXAMPLES, example, trainbench

EXAMPLE_NAMES = ["digits_mlp", "digits_cnn", "wine_csv", "char_gpt"]


def _cpu_plan(strategy="single", nproc=1) -> WorldPlan:
    return WorldPlan("cpu", strategy, nproc, 1, 1, None, strategy)


def _trained_one_step(spec: dict):
    """A built model and its optimizer after one real step, so every state exists."""
    data = load_dataset(spec["data"], spec["task"]["objective"])
    model = build(Graph.from_dict(spec["model"]))
    optimizer = make_optimizer(model, spec["optim"])
    x, y = torch.as_tensor(data.x_train[:4]), torch.as_tensor(data.y_train[:4])
    Objective(data.objective).loss(model(x), y).backward()
    optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
@pytest.mark.parametrize("optim, states", [({"name": "adamw"}, 2), ({"name": "sgd", "momentum": 0.9}, 1)])
def test_parameters_gradients_and_optimizer_match_a_built_model_exactly(name, optim, states):
    spec = example(name, optim=optim)
    model, optimizer = _trained_one_step(spec)
    est = estimate_memory(spec, plan=_cpu_plan())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters())
    moments = sum(
        t.numel() * t.element_size()
        for st in optimizer.state.values()
        for k, t in st.items()
        if k != "step"  # a scalar per parameter
    )
    assert est.parameters == params and est.gradients == grads and est.optimizer == moments
    assert moments == states * params


def test_plain_sgd_keeps_no_optimizer_state():
    assert (
        estimate_memory(
            example("digits_mlp", optim={"name": "sgd", "momentum": 0.0}), plan=_cpu_plan()
        ).optimizer
        == 0
    )


def test_fsdp_full_shard_divides_the_resident_state_by_the_world_size():
    spec = example("char_gpt", hardware={"strategy": "fsdp", "nproc_per_node": 4})
    single = estimate_memory(example("char_gpt"), plan=_cpu_plan())
    sharded = estimate_memory(spec, plan=_cpu_plan("fsdp", 4))
    n = single.parameters // 4
    assert sharded.optimizer == 2 * 4 * math.ceil(n / 4)  # two moments of a quarter of the parameters
    assert single.parameters / 4 < sharded.parameters < single.parameters  # a shard plus gathered units
    assert sharded.gradients < single.gradients and sharded.activations == single.activations
    spec["hardware"]["fsdp_sharding"] = "shard_grad_op"  # every parameter stays gathered
    assert estimate_memory(spec, plan=_cpu_plan("fsdp", 4)).parameters > single.parameters
    spec["hardware"]["fsdp_sharding"] = "no_shard"
    replicated = estimate_memory(spec, plan=_cpu_plan("fsdp", 4))
    assert (replicated.parameters, replicated.optimizer) == (single.parameters, single.optimizer)


def test_checkpointing_and_low_precision_shrink_activations():
    spec = example("char_gpt")
    data = load_dataset(spec["data"], spec["task"]["objective"])  # its small validation split
    gpt = estimate_memory(spec, data=data, plan=_cpu_plan())
    assert gpt.activations_checkpointed < 0.6 * gpt.activations_plain
    ckpt = estimate_memory(
        example("char_gpt", hardware={"activation_checkpointing": True}), data=data, plan=_cpu_plan()
    )
    assert ckpt.activations == gpt.activations_checkpointed and ckpt.peak < gpt.peak
    mlp = estimate_memory(example("digits_mlp"), plan=_cpu_plan())
    assert mlp.activations_checkpointed == mlp.activations_plain  # nothing to checkpoint
    bf16 = estimate_memory(example("char_gpt", train={"precision": "bf16"}), plan=_cpu_plan())
    assert bf16.activations < 0.7 * gpt.activations
    assert 0 < bf16.casts < gpt.parameters // 2  # 2-byte copies of the matrix products' weights only


class LiveBytes(TorchDispatchMode):
    """Peak bytes of live tensor storages: CPU has no allocator statistics, so count every
    storage an op creates until it is freed (plus a starting figure for the weights)."""

    def __init__(self, start: int = 0, existing=()):
        super().__init__()
        self.live = self.peak = start
        self.refs: dict[int, object] = {
            t.untyped_storage().data_ptr(): None for t in existing
        }  # views of these are free

    def _freed(self, key: int, n: int) -> None:
        self.live -= n
        self.refs.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, n = storage.data_ptr(), storage.nbytes()
                if key and key not in self.refs:
                    self.refs[key] = weakref.ref(storage, lambda _, k=key, n=n: self._freed(k, n))
                    self.live += n
                    self.peak = max(self.peak, self.live)
        return out


@pytest.mark.parametrize(
    "name, hardware, train",
    [
        ("digits_mlp", {}, {}),
        ("digits_cnn", {}, {}),
        ("char_gpt", {}, {}),
        ("char_gpt", {"activation_checkpointing": True}, {}),
        ("char_gpt", {}, {"precision": "bf16"}),
    ],
)
def test_estimate_is_within_40_percent_of_the_measured_cpu_peak(name, hardware, train):
    """Two training steps and an evaluation, every tensor counted; the data set lives outside
    the measurement, so it is left out of the estimate too."""
    spec = example(name, hardware=hardware, train=train)
    data = load_dataset(spec["data"], spec["task"]["objective"])
    torch.manual_seed(0)
    model = build(Graph.from_dict(spec["model"]))
    if hardware.get("activation_checkpointing"):
        enable_checkpointing(model)
    optimizer = make_optimizer(model, spec["optim"])
    objective = Objective(data.objective)
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if train.get("precision") else nullcontext
    )
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    xv, yv = torch.as_tensor(data.x_val), torch.as_tensor(data.y_val)
    b = spec["train"]["batch_size"]
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    meter = LiveBytes(start=weights, existing=(x, y, xv, yv))
    with meter:
        for step in range(2):
            idx = torch.arange(step * b, (step + 1) * b)  # a copy, as the loop's index tensors make
            with autocast():
                loss = objective.loss(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        objective.evaluate(model, xv, yv, spec["train"]["eval_batch_size"], autocast)
    est = estimate_memory(spec, data=data, plan=_cpu_plan())
    est.data = None
    assert 0.6 * meter.peak <= est.peak <= 1.4 * meter.peak, (est.peak / 2**20, meter.peak / 2**20)


def test_fit_check_uses_available_memory():
    small = estimate_memory(example("digits_mlp"), plan=_cpu_plan())
    assert small.fits is True and small.capacity > small.required
    huge = estimate_memory(example("char_gpt", train={"batch_size": 1_000_000}), plan=_cpu_plan())
    assert huge.fits is False and any("does NOT fit" in line for line in huge.lines())
    shared = estimate_memory(example("digits_mlp"), plan=_cpu_plan("ddp", 2))
    assert shared.capacity == pytest.approx(small.capacity / 2, rel=0.05)  # two processes share the RAM


def test_validate_prints_the_estimate_and_json_carries_it():
    out = trainbench("validate", EXAMPLES / "char_gpt.json")
    assert out.returncode == 0, out.stderr
    assert "memory per device (single, 1 process(es), fp32, batch 32 per device)" in out.stdout
    assert "activations" in out.stdout and "fits:" in out.stdout
    doc = json.loads(trainbench("validate", EXAMPLES / "char_gpt.json", "--json").stdout)
    assert doc["memory"]["fits"] is True and doc["memory"]["peak"] > doc["memory"]["parameters"] > 0


# ------------------------------------------------------------------ devices and samplers


def test_devices_report_cpu_memory_and_nvml_presence():
    from engine.devices import report

    rep = report()
    assert rep["cpu"]["cores"] >= 1 and rep["cpu"]["available_bytes"] <= rep["cpu"]["memory_bytes"]
    assert isinstance(rep["nvml"], bool) and isinstance(rep["cuda"], list)


def test_cpu_runs_sample_their_resident_memory():
    from engine.devices import resource_samplers

    samplers = resource_samplers(_cpu_plan())
    values = {k: v for s in samplers for k, v in s().items()}
    assert set(values) == {"sys/rss_mb"} and values["sys/rss_mb"] > 10


def test_samplers_are_recorded_as_metrics(db_path, monkeypatch):
    import engine.runner
    from engine.runner import execute
    from engine.store import RunStore

    monkeypatch.setattr(engine.runner, "SAMPLE_S", 0.05)
    calls = []
    rid, status = execute(
        db_path,
        example("digits_mlp", train={"max_steps": 30}),
        samplers=[lambda: calls.append(1) or {"sys/gpu0_util": 50.0, "sys/gpu0_mem_mb": 123.0}],
    )
    assert status == "completed" and calls
    assert RunStore(db_path).series(rid, "sys/gpu0_mem_mb")[1][-1] == 123.0


# ------------------------------------------------------------------ CUDA (skipped without a GPU)


def _cuda_spec(name, **sections):
    return example(name, hardware={"device": "cuda", **sections.pop("hardware", {})}, **sections)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_low_precision_trains(db_path, precision):
    from engine.runner import execute
    from engine.store import RunStore

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    rid, status = execute(db_path, _cuda_spec("digits_cnn", train={"precision": precision, "epochs": 2}))
    run = RunStore(db_path).get_run(rid)
    assert status == "completed", run["error"]
    assert run["summary"]["val/accuracy"] > 0.8


@pytest.mark.cuda
def test_cuda_runs_record_gpu_memory_metrics(db_path, monkeypatch):
    import engine.runner
    from engine.devices import resource_samplers
    from engine.runner import execute
    from engine.store import RunStore
    from engine.strategies.world import plan_world

    monkeypatch.setattr(engine.runner, "SAMPLE_S", 0.05)
    spec = _cuda_spec("digits_mlp", train={"max_steps": 200}, hardware={"gpus": [0]})
    rid, status = execute(db_path, spec, samplers=resource_samplers(plan_world(spec)))
    assert status == "completed"
    keys = RunStore(db_path).series_summaries(rid)
    assert "sys/gpu0_mem_mb" in keys and keys["sys/gpu0_mem_mb"]["max"] > 0


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn", "char_gpt"])
def test_cuda_estimate_against_measured_peak(name):
    """The estimate against torch.cuda.max_memory_allocated over two steps and an evaluation;
    prints the error for the docs."""
    spec = _cuda_spec(name)
    data = load_dataset(spec["data"], spec["task"]["objective"])
    device = torch.device("cuda", 0)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    model = build(Graph.from_dict(spec["model"])).to(device)
    optimizer = make_optimizer(model, spec["optim"])
    objective = Objective(data.objective)
    x, y = torch.as_tensor(data.x_train, device=device), torch.as_tensor(data.y_train, device=device)
    b = spec["train"]["batch_size"]
    for step in range(2):
        objective.loss(model(x[step * b : (step + 1) * b]), y[step * b : (step + 1) * b]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    xv, yv = torch.as_tensor(data.x_val, device=device), torch.as_tensor(data.y_val, device=device)
    objective.evaluate(model, xv, yv, spec["train"]["eval_batch_size"], nullcontext)
    measured = torch.cuda.max_memory_allocated(device) - base
    est = estimate_memory(spec, data=data)
    print(
        f"{name}: estimate {est.peak / 2**20:.1f} MiB, measured {measured / 2**20:.1f} MiB, error {est.peak / measured - 1:+.0%}"
    )
    assert 0.5 * measured <= est.peak <= 1.6 * measured
    assert est.capacity is not None and est.fits


@pytest.mark.cuda
def test_nccl_ddp_matches_one_gpu(tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    from engine.store import RunStore

    db = tmp_path / "runs.db"
    common = ["--set", "train.max_steps=8", "--set", "hardware.device=cuda", "--quiet"]
    one = trainbench(
        "run",
        EXAMPLES / "digits_mlp.json",
        *common,
        "--set",
        "train.batch_size=32",
        "--set",
        "hardware.gpus=[0]",
        db=db,
    )
    two = trainbench(
        "run",
        EXAMPLES / "digits_mlp.json",
        *common,
        "--set",
        "train.batch_size=16",
        "--set",
        "hardware.gpus=[0,1]",
        db=db,
    )
    assert one.returncode == 0 and two.returncode == 0, (one.stderr, two.stderr)
    store = RunStore(db)
    a, b = (store.series(r["id"], "train/loss")[1] for r in reversed(store.list_runs()))
    assert store.list_runs()[0]["summary"]["world_size"] == 2
    assert abs(a - b).max() < 1e-3  # NCCL reduction order differs from one GPU's


# ------------------------------------------------------------------ the fit verdict, without torch


@pytest.mark.parametrize(
    "hardware",
    [
        {},
        {"device": "cpu"},
        {"device": "cpu", "nproc_per_node": 2},
        {"strategy": "fsdp", "nproc_per_node": 2},
        {"nnodes": "1:3", "rdzv_endpoint": "h:1"},
    ],
)
def test_the_torch_free_device_plan_is_torchs(hardware):
    from engine.memory import device_plan
    from engine.strategies.world import plan_world

    spec = example("digits_mlp", hardware=hardware)
    mine, torchs = device_plan(spec), plan_world(spec)
    assert mine is not None
    for attr in ("device_type", "strategy", "nproc_per_node", "world_size", "gpus"):
        assert getattr(mine, attr) == getattr(torchs, attr), attr


def test_a_misfit_names_its_largest_term_and_a_batch_that_fits():
    spec = example("char_gpt", train={"batch_size": 1 << 20})
    est = estimate_memory(spec, plan=_cpu_plan())
    path, message = est.misfit()
    assert path == "train.batch_size" and "the largest part is activations" in message
    fits_at = int(message.split("lower train.batch_size to ")[1].split()[0].replace(",", ""))
    assert estimate_memory(example("char_gpt", train={"batch_size": fits_at}), plan=_cpu_plan()).fits
    assert not estimate_memory(
        example("char_gpt", train={"batch_size": 2 * fits_at + 64}), plan=_cpu_plan()
    ).fits
    assert estimate_memory(example("digits_mlp"), plan=_cpu_plan()).misfit() is None
