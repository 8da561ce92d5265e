"""train.compile: torch.compile (inductor on a CPU, which needs the C++ compiler) trains the small
GPT to eager's curve, and a compile that fails leaves one log line and an uncompiled run.

Compiling takes ~15-20 s of CPU here, so the GPT is tiny (2 blocks, 32 wide, 16 tokens) and each
test compiles at most once; inductor's cache goes to the test's folder, so nothing is reused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.compiler import BACKEND_ENV, Compiler
from engine.graph.build import build
from engine.graph.model import Graph
from engine.runner import execute
from engine.store import RunStore
from tests.conftest import EXAMPLES, trainbench
from tests.engine.test_memory_calibration import case_spec, gpt

TINY = gpt(256, 16, 2, 32, 4)


def tiny_spec(hardware: dict | None = None, **train) -> dict:
    return case_spec(
        "char_gpt",
        model=TINY,
        data={"context": 16},
        train={"max_steps": 12, "batch_size": 8, "eval_every": 0, "seed": 1, **train},
        schedule={"warmup_steps": 2},
        hardware=hardware or {},
    )


def _curve(db, rid) -> np.ndarray:
    return RunStore(db).series(rid, "train/loss")[1]


@pytest.fixture
def inductor_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path / "inductor"


def test_compiled_training_follows_the_eager_curve(db_path, inductor_cache):
    torch.set_num_threads(1)
    eager, status = execute(db_path, tiny_spec())
    assert status == "completed"
    compiled, status = execute(db_path, tiny_spec(compile="default"))
    assert status == "completed"
    np.testing.assert_allclose(_curve(db_path, compiled), _curve(db_path, eager), rtol=1e-4, atol=1e-5)
    log = (RunStore(db_path).artifacts_dir(compiled) / "run.log").read_text()
    assert "torch.compile (default, inductor): 1 module(s)" in log and "compile failed" not in log
    assert any(inductor_cache.rglob("*.py")), "inductor generated no code: nothing was compiled"


def test_a_compile_failure_is_one_log_line_and_the_run_trains_on(tmp_path, inductor_cache, monkeypatch):
    """No working C++ compiler (CXX names one that fails): inductor fails at the first step,
    in a real `trainbench run`, and the run completes uncompiled on the eager curve."""
    db = tmp_path / "runs.db"
    spec_file = tmp_path / "tiny.json"
    spec_file.write_text(json.dumps(tiny_spec(compile="default")))
    monkeypatch.setenv("CXX", "/bin/false")  # read by inductor when the subprocess imports it
    out = trainbench("run", spec_file, "--quiet", db=db)
    assert out.returncode == 0, out.stderr[-2000:]
    store = RunStore(db)
    (run,) = store.list_runs()
    assert run["status"] == "completed"
    log = (store.artifacts_dir(run["id"]) / "run.log").read_text().splitlines()
    failed = [line for line in log if "torch.compile failed" in line]
    assert len(failed) == 1 and "training uncompiled (InductorError: InvalidCxxCompiler" in failed[0]
    eager, _ = execute(db, tiny_spec())
    np.testing.assert_allclose(_curve(db, run["id"]), _curve(db, eager), rtol=1e-5)


def test_an_unknown_backend_falls_back_before_the_first_step(monkeypatch):
    """TRAINBENCH_COMPILE_BACKEND picks the backend (aot_eager, eager to tell dynamo's problems
    from inductor's); one that does not exist is refused by torch.compile itself."""
    monkeypatch.setenv(BACKEND_ENV, "no-such-backend")
    lines = []
    compiler = Compiler("default", lambda message, level="info": lines.append((level, message)))
    model = build(Graph.from_dict(TINY))
    compiler.whole(model)
    assert not compiler.active and "forward" not in model.__dict__
    ((level, message),) = lines
    assert level == "warning" and "torch.compile failed, training uncompiled (InvalidBackend" in message


def test_compiling_keeps_the_modules_names_and_state():
    """The forward is replaced on the instance, so state dicts (and checkpoints) do not change."""
    model = build(Graph.from_dict(TINY))
    names = list(model.state_dict())
    compiler = Compiler("max-autotune")
    compiler.units(model.blocks.blocks)  # as FSDP compiles its units
    assert compiler.active and all("forward" in b.__dict__ for b in model.blocks.blocks)
    assert list(model.state_dict()) == names and "forward" not in model.__dict__
    assert Compiler("off").whole(model) is model and not Compiler("off").compiled


def test_the_examples_say_compile_is_off_by_default():
    spec = json.loads((EXAMPLES / "char_gpt.json").read_text())
    assert "compile" not in spec.get("train", {})
    assert case_spec("char_gpt")["train"]["compile"] == "off"


@pytest.mark.cuda
def test_cuda_compiled_bf16_training_follows_eager(db_path, inductor_cache):
    cuda = {"device": "cuda"}
    eager, _ = execute(db_path, tiny_spec(cuda, precision="bf16"))
    compiled, _ = execute(db_path, tiny_spec(cuda, precision="bf16", compile="default"))
    np.testing.assert_allclose(_curve(db_path, compiled), _curve(db_path, eager), rtol=2e-2)


def test_adam_is_fused_and_the_matmul_precision_reaches_torch():
    from engine.optim import make_optimizer
    from engine.strategies import make_strategy

    spec = tiny_spec({"device": "cpu", "matmul_precision": "medium"})
    optimizer = make_optimizer(build(Graph.from_dict(TINY)), spec["optim"])
    assert all(group["fused"] for group in optimizer.param_groups)  # one kernel per step
    before = torch.get_float32_matmul_precision()
    try:
        make_strategy(spec)
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)
