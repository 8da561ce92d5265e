"""Multi-process runs for real: CPU processes on gloo, started by torch.distributed's elastic
launcher through `trainbench run` / `trainbench join`, recorded in a real store.

Equality tests train a BatchNorm-free MLP, so a 2-process run must see exactly the global
batches (and produce exactly the losses) of one process with twice the per-device batch.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from engine import checkpoint
from engine.errors import SpecError
from engine.graph.build import build
from engine.graph.model import Graph
from engine.store import RunStore
from tests.conftest import EXAMPLES, ROOT, example, trainbench

SPEC = EXAMPLES / "digits_mlp.json"
STEPS = 8
# Global batch 32 everywhere: one process × 16 × 2 micro-batches, or two processes × 8 × 2.
COMMON = ["train.max_steps=8", "train.grad_accum=2", "checkpoint.every=4", "train.eval_every=4"]
ONE = ["train.batch_size=16"]
TWO = ["train.batch_size=8", "hardware.nproc_per_node=2"]


def _sets(*items: str) -> list[str]:
    return [x for item in items for x in ("--set", item)]


def _run(db, *sets: str, timeout: int = 120):
    out = trainbench("run", SPEC, "--quiet", *_sets(*COMMON, *sets), db=db, timeout=timeout)
    store = RunStore(db)
    run = store.list_runs(limit=1)[0]
    assert out.returncode == 0 and run["status"] == "completed", (out.stderr, run["error"])
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One single-process run and its DDP and FSDP twins, in one store."""
    db = tmp_path_factory.mktemp("dist") / "runs.db"
    single = _run(db, *ONE)
    ddp = _run(db, *TWO, "hardware.strategy=ddp")
    fsdp = _run(db, *TWO, "hardware.strategy=fsdp")
    return db, {"single": single, "ddp": ddp, "fsdp": fsdp}


def _losses(db, run_id: int) -> np.ndarray:
    steps, values, _ = RunStore(db).series(run_id, "train/loss")
    return values[np.argsort(steps, kind="stable")]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_train_exactly_like_one_with_the_same_global_batch(runs, strategy):
    db, by = runs
    one, two = _losses(db, by["single"]["id"]), _losses(db, by[strategy]["id"])
    assert len(one) == len(two) == STEPS
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-5)
    summary = by[strategy]["summary"]
    assert summary["world_size"] == 2 and summary["global_batch"] == 32 and summary["strategy"] == strategy
    assert summary["val/loss"] == pytest.approx(by["single"]["summary"]["val/loss"], abs=1e-5)
    log = (RunStore(db).artifacts_dir(by[strategy]["id"]) / "run.log").read_text()
    assert "global batch 32 (8 × 2 accumulation × 2 process(es))" in log


def test_auto_explains_its_choice_in_the_run_log(runs):
    db, by = runs
    log = (RunStore(db).artifacts_dir(by["single"]["id"]) / "run.log").read_text()
    assert "auto → single (one device)" in log


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_launched_processes_share_the_cores(runs, strategy):
    from engine.runner import cpu_cores

    db, by = runs
    log = (RunStore(db).artifacts_dir(by[strategy]["id"]) / "run.log").read_text()
    n, cores = max(1, cpu_cores() // 2), cpu_cores()
    assert (
        f"using {n} CPU thread{'s' if n != 1 else ''} ({cores} cores shared by 1 run live on this host "
        "and this run's 2 processes here)"
    ) in log


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_distributed_checkpoint_loads_into_a_single_device_model(runs, strategy):
    db, by = runs
    row = RunStore(db).last_checkpoint(by[strategy]["id"])
    state = checkpoint.load(row["path"])
    model = build(Graph.from_dict(state["graph"]))
    model.load_state_dict(state["model"])  # strict: full, unsharded, unprefixed
    single = checkpoint.load(RunStore(db).last_checkpoint(by["single"]["id"])["path"])
    for key, value in single["model"].items():
        torch.testing.assert_close(state["model"][key], value, atol=1e-5, rtol=0)
    assert set(state["optimizer"]["state"]) == set(single["optimizer"]["state"])  # keyed by name


def test_a_single_device_checkpoint_resumes_under_fsdp(runs):
    """The other direction: a single-process checkpoint continues as a 2-process FSDP run and
    produces the same remaining losses as the single-process run did."""
    db, by = runs
    store = RunStore(db)
    halfway = next(c for c in store.checkpoints(by["single"]["id"]) if c["step"] == STEPS // 2)
    spec = example(
        "digits_mlp",
        train={"max_steps": STEPS, "grad_accum": 2, "eval_every": 4, "batch_size": 8},
        checkpoint={"every": 4},
        hardware={"strategy": "fsdp", "nproc_per_node": 2},
    )
    rid = store.create_run(spec)
    store.add_checkpoint(rid, halfway["step"], halfway["path"], "stop")
    store.finish_run(rid, "stopped")
    out = trainbench("run", "--resume", rid, "--quiet", db=db, timeout=120)
    assert out.returncode == 0, out.stderr
    resumed = _losses(db, rid)
    np.testing.assert_allclose(resumed, _losses(db, by["single"]["id"])[STEPS // 2 :], rtol=0, atol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(db, endpoint: str, *sets: str) -> subprocess.Popen:
    env = {**os.environ, "TRAINBENCH_DB": str(db), "PYTHONUNBUFFERED": "1"}
    args = [
        "join",
        SPEC,
        "--rdzv-endpoint",
        endpoint,
        "--rdzv-id",
        "pair",
        "--nnodes",
        "2",
        "--node-rank",
        "1",
    ]
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", *map(str, args), *_sets(*sets)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_machines_on_localhost_complete_a_run(db_path):
    """nnodes=2, one process each, c10d rendezvous on a loopback port. The joining machine
    starts first, so the rendezvous numbers it rank 0 and the workers renumber themselves."""
    endpoint = f"127.0.0.1:{_free_port()}"
    sets = [*COMMON, "train.batch_size=8"]
    joiner = _join(db_path, endpoint, *sets)
    time.sleep(1.0)
    hw = ["hardware.nnodes=2", f"hardware.rdzv_endpoint={endpoint}", "hardware.rdzv_id=pair"]
    out = trainbench("run", SPEC, "--quiet", *_sets(*sets, *hw), db=db_path, timeout=120)
    _, join_err = joiner.communicate(timeout=60)
    run = RunStore(db_path).list_runs()[0]
    assert out.returncode == 0 and run["status"] == "completed", (out.stderr, join_err, run["error"])
    assert joiner.returncode == 0, join_err
    assert run["summary"]["world_size"] == 2 and run["summary"]["global_batch"] == 32
    assert "trainbench join" in out.stderr and "torchrun --nnodes=2" in out.stderr  # printed for the others
    assert run["summary"]["join_command"].startswith("trainbench join ")


def test_a_machine_with_a_different_spec_fails_the_run_naming_the_field(db_path):
    endpoint = f"127.0.0.1:{_free_port()}"
    joiner = _join(db_path, endpoint, *COMMON, "train.batch_size=4")
    hw = ["hardware.nnodes=2", f"hardware.rdzv_endpoint={endpoint}", "hardware.rdzv_id=pair"]
    out = trainbench(
        "run", SPEC, "--quiet", *_sets(*COMMON, "train.batch_size=8", *hw), db=db_path, timeout=120
    )
    joiner.communicate(timeout=60)
    run = RunStore(db_path).list_runs()[0]
    assert out.returncode == 1 and run["status"] == "failed"
    assert "train.batch_size" in run["error"] and "same spec file" in run["error"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_fails_the_run_naming_its_rank_and_leaves_no_process(db_path):
    env = {**os.environ, "TRAINBENCH_DB": str(db_path)}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", str(SPEC), "--quiet"]
        + _sets("train.max_steps=1000000", *TWO),
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            time.sleep(0.3)
            runs = RunStore(db_path).list_runs() if db_path.exists() else []
            # The launcher claims the run at once; training means its workers are up.
            if runs and runs[0]["status"] == "running" and RunStore(db_path).series_summaries(runs[0]["id"]):
                break
        else:
            pytest.fail("the run never started")
        workers = _children(launcher.pid)
        ranks = {}
        for pid in workers:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env_vars = dict(v.split(b"=", 1) for v in fh.read().split(b"\0") if b"=" in v)
            ranks[int(env_vars[b"LOCAL_RANK"])] = pid
        assert set(ranks) == {0, 1}
        os.kill(ranks[1], signal.SIGKILL)
        _, err = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    run = RunStore(db_path).get_run(runs[0]["id"])
    assert launcher.returncode == 1
    assert run["status"] == "failed" and run["error"].startswith(
        f"rank 1 (pid {ranks[1]}) was killed by SIGKILL"
    )
    assert "rank 1" in err
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)]


# ------------------------------------------------------------------ in-process pieces


def test_ddp_outside_a_launched_process_is_a_spec_error(db_path):
    from engine.strategies import make_strategy

    with pytest.raises(SpecError, match="started by `trainbench run`"):
        make_strategy(example("digits_mlp", hardware={"strategy": "ddp"}))


def test_plan_world_picks_and_explains_the_strategy():
    from engine.strategies.world import plan_world

    one = plan_world(example("digits_mlp", hardware={"device": "cpu"}))
    assert (one.strategy, one.world_size, one.launched, one.backend) == ("single", 1, False, "gloo")
    two = plan_world(example("digits_mlp", hardware={"device": "cpu", "nproc_per_node": 2}))
    assert two.strategy == "ddp" and two.launched and "auto → ddp (2 CPU processes)" == two.reason
    nodes = plan_world(
        example("digits_mlp", hardware={"nnodes": "1:3", "rdzv_endpoint": "h:1", "device": "cpu"})
    )
    assert (nodes.min_nodes, nodes.max_nodes, nodes.world_size, nodes.strategy) == (1, 3, 3, "ddp")
    explicit = plan_world(example("digits_mlp", hardware={"strategy": "fsdp", "device": "cpu"}))
    assert explicit.strategy == "fsdp" and explicit.launched  # one process, still launched


@pytest.mark.parametrize(
    "hardware, path",
    [
        ({"strategy": "single", "nproc_per_node": 2}, "hardware.strategy"),
        ({"nnodes": 2}, "hardware.rdzv_endpoint"),
        ({"nnodes": "two"}, "hardware.nnodes"),
        ({"nnodes": "3:2"}, "hardware.nnodes"),
        ({"node_rank": 1}, "hardware.node_rank"),
        ({"cpu_offload": True}, "hardware.cpu_offload"),
        ({"fsdp_sharding": "no_shard"}, "hardware.fsdp_sharding"),
        ({"device": "cpu", "gpus": [0]}, "hardware.gpus"),
        ({"gpus": [0], "nproc_per_node": 2}, "hardware.nproc_per_node"),
    ],
)
def test_hardware_mistakes_name_their_field(hardware, path):
    with pytest.raises(SpecError) as err:
        example("digits_mlp", hardware=hardware)
    assert path in [p for p, _ in err.value.problems]


def test_join_commands_repeat_the_overrides_and_the_rendezvous():
    from engine.strategies.launch import join_commands

    spec = example("digits_mlp", hardware={"nnodes": 2, "rdzv_endpoint": "10.0.0.5:29400"})
    line, torchrun = join_commands(
        spec, "trainbench-run-7", "spec.json", ["train.epochs=3", "hardware.nnodes=2"]
    )
    assert line == (
        "trainbench join spec.json --rdzv-endpoint 10.0.0.5:29400 --rdzv-id trainbench-run-7 "
        "--nnodes 2 --node-rank 1 --set train.epochs=3"
    )
    assert torchrun.startswith("torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d ")
    assert "--rdzv-endpoint=10.0.0.5:29400 --rdzv-id=trainbench-run-7" in torchrun
    assert "-m engine.cli worker --spec spec.json --node-rank 1 --set train.epochs=3" in torchrun


def test_join_print_shows_the_torchrun_line(capsys):
    from engine.cli import main

    code = main(
        [
            "join",
            str(SPEC),
            "--rdzv-endpoint",
            "10.0.0.5:29400",
            "--rdzv-id",
            "r1",
            "--nnodes",
            "2",
            "--print",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("torchrun --nnodes=2 ") and "--node-rank 1" in out


def test_activation_checkpointing_and_fsdp_units_follow_repeat_and_blocks():
    from engine.graph.layers import Repeat, TransformerBlock
    from engine.strategies.fsdp import shard_units
    from engine.strategies.single import enable_checkpointing

    model = build(Graph.from_dict(example("char_gpt")["model"]))
    assert enable_checkpointing(model) == 1  # the Repeat; its blocks are not checkpointed twice
    assert [m.checkpointing for m in model.modules() if isinstance(m, Repeat | TransformerBlock)] == [
        True
    ] + [False] * 4
    units = shard_units(model)
    assert len(units) == 4 and all(any(isinstance(m, TransformerBlock) for m in u.modules()) for u in units)
