"""Live control of a running run: pause and continue, set or scale the learning rate, extend or
shorten the run, evaluate or checkpoint now — without restarting it.

The channel is a file, `control.jsonl` in the run's artifacts folder: `send` (what
`trainbench control RUN ...` and the monitor's buttons call) appends one JSON line per command,
and the run's process reads the lines added since it started. A file works for every run,
whoever started it: one the GUI launched, one started from a terminal, one the GUI reattached
to after a restart (a pipe to the process's stdin would reach only the first).

The loop calls `Control.at(step)` after every step. Commands are read at steps every process
agrees on (every `every` steps, the loop's read-back cadence) and broadcast from rank 0, so
all processes of a DDP run change together. Each applied change is an event stored with the
run at its step (`run_events`, kind `control`: the command, its id, and its result — the LR
scale or the new total), listed by `trainbench show` and drawn as a marker on the monitor's
curves. A resumed run replays the recorded changes: those up to its checkpoint set the LR
scale and the length it continues with, later ones are applied again at the same steps, so a
resume is the run it continues.

Meanings:
  pause / resume   the loop waits between two steps (the step counter holds, the heartbeat
                   goes on, the paused time does not count as training time); other commands
                   still apply while paused, and a stop (SIGINT/SIGTERM) ends the pause
  lr=VALUE         scale the schedule so that the LR of the next step is VALUE; the schedule
                   keeps its shape from there (a cosine goes on decaying, from VALUE)
  lr*=FACTOR       multiply the LR (and the rest of the schedule) by FACTOR
  steps=N          the run ends at step N (a total below the current step ends it now); the
                   schedule is recomputed for the new length, so a cosine ends at the new end
  epochs=N         the same, in epochs
  eval             evaluate on the validation split now
  checkpoint       save a checkpoint now (tag `manual`, not counted against checkpoint.keep)

The learning rates of a distillation's own projection are not changed. A paused run of several
processes keeps them waiting in a broadcast, which times out with the process group (30 min).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from engine.errors import TrainbenchError
from engine.fields import Field, shown
from engine.schedule import lr_factor
from engine.spec import MAX_STEPS

FILE = "control.jsonl"
POLL_S = 0.2  # how often a paused run looks for new commands
WAIT_S = 30.0  # how long `send` waits, by default, for the run to apply a command
REPLAYED = ("lr", "lr_scale", "steps", "epochs", "eval", "checkpoint")  # what a resume repeats
USAGE = "pause | resume | lr=VALUE | lr*=FACTOR | steps=N | epochs=N | eval | checkpoint"

_VALUES = {
    "lr": Field("lr", "float", min=0, max=10, min_exclusive=True),
    "lr_scale": Field("lr*", "float", min=0, max=1000, min_exclusive=True),
    "steps": Field("steps", "int", min=1, max=MAX_STEPS),
    "epochs": Field("epochs", "int", min=1, max=100000),
}
_WORDS = {
    "pause": "pause",
    "resume": "resume",
    "continue": "resume",
    "eval": "eval",
    "checkpoint": "checkpoint",
}


class ControlError(TrainbenchError):
    """A command that cannot be sent: misspelt, out of range, or the run is not running."""


def parse(text: str) -> dict:
    """`lr=0.01` → {"command": "lr", "value": 0.01}; raises ControlError with the usage."""
    raw = str(text).strip()
    word = raw.lower()
    if word in _WORDS:
        return {"command": _WORDS[word]}
    name, sep, value = word.partition("=")
    name = name.strip()
    if name.endswith("*"):
        name = name[:-1].strip() + "_scale"
    if not sep or name not in _VALUES:
        raise ControlError(f"unknown command {shown(raw)}; commands: {USAGE}")
    number = _number(value.strip())
    return check({"command": name, "value": number})


def _number(text: str):
    """`3` → 3, `0.5` → 0.5, anything else as the text (the field's check says what is wrong)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check(doc) -> dict:
    """A command as a JSON object, checked: what `parse` makes, and what the run accepts from
    its control file (anyone may write that file, so every line is checked again)."""
    if not isinstance(doc, dict):
        raise ControlError(f"a command must be a JSON object, got {shown(doc)}")
    cmd = doc.get("command")
    if cmd in _WORDS.values():
        return {"command": cmd}
    field = _VALUES.get(cmd) if isinstance(cmd, str) else None
    if field is None:
        raise ControlError(f"unknown command {shown(cmd)}; commands: {USAGE}")
    value, err = field.check(doc.get("value"))
    if err:
        raise ControlError(f"{field.name}= {err}")
    return {"command": cmd, "value": value}


def describe(data: dict) -> str:
    """A change in words, for the run log, `trainbench show` and the monitor."""
    cmd, value = data.get("command"), data.get("value")
    if cmd == "lr":
        return f"learning rate set to {value:g} (×{data.get('scale', 1):.3g} of the schedule)"
    if cmd == "lr_scale":
        return f"learning rate scaled by {value:g} (×{data.get('scale', 1):.3g} of the schedule)"
    if cmd in ("steps", "epochs"):
        return f"length set to {value:,} {cmd} (the run ends at step {data.get('total', 0):,})"
    if cmd == "ignored":
        return f"ignored {data.get('asked', '?')}: {data.get('why', '')}"
    return {
        "pause": "paused",
        "resume": "continued",
        "eval": "evaluated",
        "checkpoint": "checkpoint saved",
    }.get(cmd, str(cmd))


def control_file(artifacts_dir: str | Path) -> Path:
    return Path(artifacts_dir) / FILE


def send(store, run_id: int, text: str, wait_s: float = WAIT_S) -> dict:
    """Send one command to running run `run_id`; returns its event once the run applied it
    (within `wait_s`; 0: do not wait), else {"id", "data", "step": None}: sent, not yet applied."""
    command = parse(text)
    store.reap()  # a run whose process died is not running, whatever its row said
    run = store.get_run(run_id)
    if run["status"] != "running":
        raise ControlError(f"run {run_id} is {run['status']}; only a running run takes commands")
    command["id"] = uuid.uuid4().hex
    command["t"] = time.time()
    path = control_file(store.artifacts_root / f"run-{run_id}")
    line = (json.dumps(command) + "\n").encode()
    try:  # one write of one line with O_APPEND: concurrent senders never interleave
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as err:
        raise ControlError(f"cannot write {path}: {err.strerror}") from None
    deadline = time.monotonic() + wait_s
    while wait_s > 0:
        for event in store.run_events(run_id, "control"):
            if event["data"].get("id") == command["id"]:
                return event
        if time.monotonic() >= deadline or store.get_run(run_id)["status"] != "running":
            break
        time.sleep(0.1)
    return {"id": None, "step": None, "kind": "control", "data": command}


class Control:
    """The training loop's side: reads commands at agreed steps, applies them, records them,
    and on a resume replays the run's recorded changes (see the module docstring)."""

    def __init__(
        self,
        ctx,
        strategy,
        optimizer,
        scheduler,
        schedule: dict,
        total_steps: int,
        steps_per_epoch: int,
        start_step: int,
        every: int,
        evaluate: Callable[[], dict],
        checkpoint: Callable[[str], None],
        flush: Callable[[], None],
    ):
        self.ctx, self.strategy = ctx, strategy
        self.optimizer, self.scheduler, self.schedule = optimizer, scheduler, schedule
        self.total, self.steps_per_epoch, self.every = total_steps, steps_per_epoch, every
        self.evaluate, self.checkpoint, self.flush = evaluate, checkpoint, flush
        self.scale = 1.0
        self.paused = False
        self.paused_s = 0.0  # time spent paused: not training time
        self.file: Path | None = ctx.control_file if ctx.is_main else None
        # commands written before this attempt began were for an earlier one (or for nobody)
        self._offset = self.file.stat().st_size if self.file is not None and self.file.exists() else 0
        self._partial = b""
        self._replay: dict[int, list[dict]] = {}
        recorded = ctx.run_events("control") if ctx.resume and ctx.is_main else []
        recorded = strategy.broadcast(recorded) if strategy.world_size > 1 else recorded
        for event in recorded or []:
            if event["data"].get("command") not in REPLAYED:
                continue
            if event["step"] <= start_step:
                self._restore(event["data"])
            else:
                self._replay.setdefault(event["step"], []).append(event["data"])
        if self.scale != 1.0 or self.total != total_steps:
            self._retarget(start_step)
            ctx.update_summary(total_steps=self.total)

    # ------------------------------------------------------------ the loop's call

    def at(self, step: int) -> int:
        """After step `step`: replay what the run recorded for this step, apply new commands
        (at agreed steps), wait while paused; returns the run's total steps."""
        for data in self._replay.pop(step, []):
            self._apply(step, data, replayed=True)
        if self.every and step % self.every == 0:
            for data in self._receive():
                self._apply(step, data)
        while self.paused:
            t0 = time.monotonic()
            time.sleep(POLL_S)
            for data in self._receive(stopping=self.ctx.stop_requested):
                self._apply(step, data)
            self.paused_s += time.monotonic() - t0
        return self.total

    def _receive(self, stopping: bool = False) -> list[dict]:
        """New commands, the same on every process (rank 0 reads and broadcasts them)."""
        commands = self._read() if self.file is not None else []
        if stopping and self.paused:  # a stop while paused: continue, so the loop can stop
            commands.append({"command": "resume", "why": "stop requested"})
        return self.strategy.broadcast(commands) if self.strategy.world_size > 1 else commands

    def _read(self) -> list[dict]:
        try:
            with self.file.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return []
        self._offset += len(data)
        data = self._partial + data
        lines, _, self._partial = data.rpartition(b"\n")  # a line being written waits for its end
        out = []
        for raw in lines.splitlines():
            try:
                doc = json.loads(raw)
                out.append({**check(doc), "id": doc.get("id")})
            except (ValueError, TrainbenchError) as err:
                self.ctx.log(f"control: ignored a line of {self.file.name}: {err}", "warning")
        return out

    # ------------------------------------------------------------ applying

    def _apply(self, step: int, data: dict, replayed: bool = False) -> None:
        cmd = data["command"]
        result = dict(data)
        if cmd == "pause":
            self.paused = True
            self.flush()  # the curve a reader sees while paused ends at the step it holds
        elif cmd == "resume":
            self.paused = False
        elif cmd in ("lr", "lr_scale", "steps", "epochs"):
            if replayed:
                self._restore(data)
            elif not self._change(step, result):
                return
            self._retarget(step)
            if "total" in result:
                self.ctx.update_summary(total_steps=self.total)
        elif cmd == "eval":
            self.evaluate()
        elif cmd == "checkpoint":
            self.checkpoint("manual")
        if replayed:
            self.ctx.log(f"control: replayed at step {step}: {describe(result)}")
            return
        self.ctx.log(f"control: {describe(result)} at step {step}")
        self.ctx.record_event(step, "control", result)

    def _change(self, step: int, result: dict) -> bool:
        """Work out a change's effect into `result` (recorded, so a resume repeats it exactly);
        False, with an `ignored` event, when it cannot apply."""
        cmd, value = result["command"], result["value"]
        if cmd == "lr":
            scheduled = self._scheduled(step)
            if scheduled <= 0:
                self._ignore(step, result, "the schedule's learning rate is 0 here")
                return False
            self.scale = value / scheduled
        elif cmd == "lr_scale":
            self.scale *= value
        else:
            total = value if cmd == "steps" else value * self.steps_per_epoch
            self.total = max(step, min(total, MAX_STEPS))
            result["total"] = self.total
        result["scale"] = self.scale
        return True

    def _ignore(self, step: int, data: dict, why: str) -> None:
        ignored = {"command": "ignored", "asked": data["command"], "why": why, "id": data.get("id")}
        self.ctx.log(f"control: {describe(ignored)} (step {step})", "warning")
        self.ctx.record_event(step, "control", ignored)

    def _restore(self, data: dict) -> None:
        """A recorded change's result, as it was worked out when it was made."""
        if "scale" in data:
            self.scale = data["scale"]
        if "total" in data:
            self.total = data["total"]

    def _scheduled(self, step: int) -> float:
        """The learning rate the schedule alone gives the next step (before any scale)."""
        return self.scheduler.base_lrs[0] * lr_factor(self.schedule, step, self.total)

    def _retarget(self, step: int) -> None:
        """Make the scheduler follow the scale and total from now on, and the next step's LR."""
        schedule = self.schedule

        def factor(s: int) -> float:
            return lr_factor(schedule, s, self.total) * self.scale

        self.scheduler.lr_lambdas = [factor] * len(self.optimizer.param_groups)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * factor(self.scheduler.last_epoch)
