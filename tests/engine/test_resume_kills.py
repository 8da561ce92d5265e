"""A run SIGKILLed again and again and resumed each time ends with exactly the curve of a run
that was never interrupted: every step's loss stored once, in order, equal to the reference.

The kills land at random moments — while the process starts (importing, claiming, loading
the checkpoint), while it trains, and in the middle of checkpoint saves (the test watches the
checkpoint folder for a save's temporary file and kills at once). The moments come from a
seeded generator; the seed is printed, and TRAINBENCH_KILL_SEED=<seed> replays them.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import sys
import threading
import time

import numpy as np
import pytest

from engine.events import parse_events
from engine.runner import execute
from engine.spec import validate_spec
from engine.store import RunStore
from tests.conftest import TEMPLATES, start_run

STEPS = 500  # more than the kills can reach: each lets a run go at most ~25 steps on
CHECKPOINT_EVERY = 5  # not a multiple of the loop's 8-step loss read-back: losses are pending at saves
KILLS = 11
HANG_S = 120  # a segment that shows no sign of life this long has hung


def _spec() -> dict:
    return {
        "name": "kill-resume",
        "model": str(TEMPLATES / "mlp.json"),
        "data": {"source": "digits"},
        "train": {"max_steps": STEPS, "batch_size": 16, "eval_every": 50},
        "checkpoint": {"every": CHECKPOINT_EVERY, "keep": 2},
        "hardware": {"threads": 1},  # the same arithmetic in the reference and the resumed run
    }


class Segment:
    """One `trainbench run` process, its event stream read on a thread (the pipe never fills)."""

    def __init__(self, *args, db):
        self.proc = start_run(*args, db=db, PYTHONFAULTHANDLER="1")
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for ev in parse_events(self.proc.stdout):
            self.events.put(ev)
        self.events.put(None)

    def wait_for(self, predicate, timeout: float = HANG_S, hang: bool = True) -> dict | None:
        """The first event (from now on) matching `predicate`; None if the stream ended first
        or, unless a wait this long means a `hang`, when `timeout` passed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                if not hang:
                    return None
                self.proc.send_signal(signal.SIGABRT)  # the faulthandler prints every thread's stack
                self.proc.wait(HANG_S)
                raise AssertionError(
                    f"no event for {timeout} s: the run hangs\n{self.proc.stderr.read()[-6000:]}"
                ) from None
            if ev is None:
                return None
            self.seen.append(ev)
            if predicate(ev):
                return ev

    def kill(self) -> bool:
        """SIGKILL; False if the process had already ended."""
        if self.proc.poll() is not None:
            return False
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(HANG_S)
        return True

    def finish(self) -> int:
        self.wait_for(lambda e: e["event"] == "run_ended")
        return self.proc.wait(HANG_S)


def _kill_mid_save(seg: Segment, folder, rng: random.Random) -> None:
    """Kill as soon as a save's temporary file appears (after the run has started, which
    cleared the files an earlier kill left, and after a few whole saves)."""
    seg.wait_for(lambda e: e["event"] == "run_started")
    for _ in range(rng.randint(0, 3)):
        seg.wait_for(lambda e: e["event"] == "checkpoint")
    deadline = time.monotonic() + HANG_S
    while seg.proc.poll() is None and time.monotonic() < deadline:
        if folder.is_dir() and any(p.suffix == ".tmp" for p in folder.iterdir()):
            break
        time.sleep(0.0002)
    seg.kill()


def _reference(tmp_path):
    rid, status = execute(tmp_path / "ref.db", validate_spec(_spec()))
    assert status == "completed"
    return RunStore(tmp_path / "ref.db").series(rid, "train/loss")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL and /proc")
def test_random_kills_and_resumes_keep_every_step_once_and_the_same_curve(tmp_path, db_path):
    seed = int(os.environ.get("TRAINBENCH_KILL_SEED", random.SystemRandom().randrange(2**32)))
    print(f"kill moments seeded with TRAINBENCH_KILL_SEED={seed}")
    rng = random.Random(seed)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(_spec()))
    modes = ["train"] + rng.sample(["start"] * 3 + ["train"] * 4 + ["save"] * 3, KILLS - 1)
    log, mid_save = [], 0

    first = Segment(spec_file, db=db_path)
    run_id = first.wait_for(lambda e: e["event"] == "run_started")["run_id"]
    folder = RunStore(db_path).artifacts_dir(run_id) / "checkpoints"
    seg = first
    i = 0
    while i < len(modes) or (not mid_save and len(modes) < KILLS + 5):
        if i == len(modes):  # a save takes milliseconds: every "save" kill came late; try again
            modes.append("save")
        mode = modes[i]
        left = set(folder.glob("*.tmp")) if folder.is_dir() else set()  # by earlier kills
        if i:
            seg = Segment("--resume", run_id, db=db_path)
        if mode == "start":  # importing, claiming or loading the checkpoint: before training
            seg.wait_for(lambda e: e["event"] == "run_started", timeout=rng.uniform(0.0, 3.0), hang=False)
            seg.kill()
        elif mode == "train":
            for _ in range(rng.randint(1, 4)):
                assert seg.wait_for(lambda e: e["event"] == "checkpoint"), seg.proc.stderr.read()[-2000:]
            time.sleep(rng.uniform(0.0, 0.03))
            assert seg.kill(), f"the run ended before kill {i} (seed {seed})"
        else:
            _kill_mid_save(seg, folder, rng)
        partial = sorted(p.name for p in set(folder.glob("*.tmp")) - left) if folder.is_dir() else []
        mid_save += bool(partial)  # this kill interrupted a save
        log.append((mode, partial))
        i += 1
    print("kills:", log)

    last = Segment("--resume", run_id, db=db_path)
    assert last.finish() == 0, last.proc.stderr.read()[-2000:]
    store = RunStore(db_path)
    assert store.get_run(run_id)["status"] == "completed"

    steps, losses, _ = store.series(run_id, "train/loss")
    assert steps.tolist() == list(range(1, STEPS + 1)), f"seed {seed}: lost, repeated or backwards steps"
    _, ref_losses, _ = _reference(tmp_path)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4, atol=1e-4, err_msg=f"seed {seed}")
    val_steps = store.series(run_id, "val/loss")[0].tolist()
    assert val_steps == sorted(set(val_steps)), f"seed {seed}: evaluations repeated"
    assert mid_save >= 1, f"seed {seed}: no kill landed during a checkpoint save ({log})"
    assert not list(folder.glob("*.tmp")), "temporary files of interrupted saves were left behind"
