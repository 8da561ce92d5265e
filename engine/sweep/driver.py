"""The sweep loop: ask Optuna for a trial, run it as a child run on a free slot, report its
evaluations to the pruner, tell Optuna how it ended, until the budget is spent.

The sweep is a run of kind `sweep` whose spec is the whole sweep spec; this process holds its
claim and is the only writer of its study. Every trial is an ordinary run (parent: the sweep)
created `queued` here and run by an engine process (a warm worker per slot, see
`engine.sweep.trial`); the run records which trial it is (`trial` in its summary) before
Optuna learns its id, so a sweep killed anywhere resumes (`resume_sweep`) with every trial
number used once:

  a finished trial          stays as it is (its run, its value)
  a trial that was running  continues: its run resumes from its checkpoint (a kill of the
                            sweep stops it gracefully, see engine.sweep.trial); a run that
                            ended meanwhile, or was being pruned, is settled as it ended
  a trial without a run     (killed between Optuna's ask and the run's creation) gets one

A pruned trial is stopped like any run (SIGTERM: it finishes its step, checkpoints, ends
`stopped`) and marked in Optuna and in its run's summary with the step the pruner judged.
"""

from __future__ import annotations

import math
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from engine.errors import SpecError, StoreError
from engine.preflight import preflight
from engine.store import HEARTBEAT_S, RunStore
from engine.sweep.pool import Slot, plan_slots
from engine.sweep.space import budget, distributions, trial_spec
from engine.sweep.study import open_study
from engine.sweep.trial import TrialProcess, Trials

STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


@dataclass
class TrialRecord:
    """What the sweep knows of one trial (the live table's row)."""

    number: int
    params: dict
    run_id: int | None = None
    state: str = "queued"  # queued | running | stopping | complete | pruned | failed | stopped
    step: int = 0
    total_steps: int | None = None
    objective: float | None = None  # the told value; while running, the last evaluation
    pruned_step: int | None = None
    error: str | None = None


@dataclass
class _Job:
    number: int
    trial_id: int
    params: dict
    run_id: int | None = None


@dataclass
class _Active:
    process: TrialProcess
    trial: optuna.Trial
    record: TrialRecord
    slot: Slot


@dataclass
class SweepState:
    """The sweep as the table and the summary see it."""

    sweep_id: int
    budget: int
    objective: dict
    records: dict[int, TrialRecord] = field(default_factory=dict)
    note: str = ""

    def best(self) -> TrialRecord | None:
        done = [r for r in self.records.values() if r.state == "complete" and r.objective is not None]
        if not done:
            return None
        pick = max if self.objective["direction"] == "maximize" else min
        return pick(done, key=lambda r: r.objective)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records.values():
            out[r.state] = out.get(r.state, 0) + 1
        return out


def start_sweep(store: RunStore, spec: dict, view: Callable[..., None] | None = None) -> tuple[int, str]:
    """Run the sweep of a validated spec with a `sweep` section; returns (sweep run id, final
    status). The base spec is checked as a run would check it before any row exists."""
    base = {k: v for k, v in spec.items() if k != "sweep"}
    preflight(base, store)
    sweep_id = store.create_run(spec, kind="sweep")
    owner = store.start_run(sweep_id)
    return sweep_id, Sweep(store, sweep_id, owner, spec, view).run()


def resume_sweep(store: RunStore, sweep_id: int, view: Callable[..., None] | None = None) -> tuple[int, str]:
    """Continue a stopped or crashed sweep until its budget is spent."""
    run = store.get_run(sweep_id)
    if run["kind"] != "sweep":
        raise StoreError(
            f"run {sweep_id} is a {run['kind']} run, not a sweep (trainbench run --resume continues it)"
        )
    store.reap()  # the sweep's own row and its trials', if their processes died with it
    owner = store.start_run(sweep_id, resumable=True)
    return sweep_id, Sweep(store, sweep_id, owner, run["spec"], view).run()


class Sweep:
    def __init__(self, store: RunStore, sweep_id: int, owner: str, spec: dict, view=None):
        self.store, self.sweep_id, self.owner, self.spec = store, sweep_id, owner, spec
        self.section = spec["sweep"]
        self.metric = self.section["objective"]["metric"]
        self.folder = store.artifacts_dir(sweep_id)
        self.view = view
        self.study = open_study(self.folder, self.section)
        self.distributions = distributions(self.section["params"])
        self.slots, note = plan_slots(spec, self.section["parallel"], self.section["per_gpu"])
        self.inbox: queue.Queue = queue.Queue()
        self.trials = Trials(store.path, self.slots, self.folder, self.inbox)  # their imports take seconds
        self.state = SweepState(sweep_id, budget(self.section), self.section["objective"], note=note)
        self.active: dict[int, _Active] = {}
        self.stopping = False
        self.error: str | None = None
        self._log = open(self.folder / "run.log", "a", encoding="utf-8")  # noqa: SIM115 - closed by run()
        self._asked = 0
        self._shown = 0.0

    # ------------------------------------------------------------ the loop

    def run(self) -> str:
        summary = self.store.get_run(self.sweep_id)["summary"]
        spent_before = summary.get("elapsed_s", 0.0)
        started = time.monotonic()
        previous = {s: signal.signal(s, self._ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        status, error = "failed", None
        try:
            self.log(self.state.note)
            backlog = self._recover()
            free = list(self.slots)
            timeout = self.section["timeout"]
            last_beat = time.monotonic()
            while True:
                while free and not (self.stopping or self.error):
                    out_of_time = timeout is not None and spent_before + time.monotonic() - started >= timeout
                    job = backlog.pop(0) if backlog else None if out_of_time else self._ask()
                    if job is None:
                        break
                    self._launch(job, free)
                if not self.active:
                    break
                try:
                    process, event = self.inbox.get(timeout=HEARTBEAT_S / 2)
                except queue.Empty:
                    pass
                else:
                    active = self.active[process.number]
                    if event is None:
                        self._ended(active)
                        free.append(active.slot)
                    else:
                        self._event(active, event)
                if self.stopping or self.error:
                    for a in self.active.values():
                        a.process.stop()
                        a.record.state = "stopping"
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    self.store.heartbeat(self.sweep_id, self.owner)
                    last_beat = time.monotonic()
                self._show()
            finished = sum(r.state in ("complete", "pruned", "failed") for r in self.state.records.values())
            error = self.error
            status = (
                "failed"
                if error
                else "stopped"
                if self.stopping and finished < self.state.budget
                else "completed"
            )
        except BaseException as err:
            for a in self.active.values():
                a.process.stop()
            error = (
                f"{type(err).__name__}: {err}" if not isinstance(err, SpecError | StoreError) else str(err)
            )
            raise
        finally:
            self.trials.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            if self.view is not None:
                self.view(self.state, final=True)
            summary = {**self._summary(), "elapsed_s": round(spent_before + time.monotonic() - started, 3)}
            self.log(f"sweep {status}" + (f": {error}" if error else ""))
            self.store.finish_run(self.sweep_id, status, summary, error, self.owner)
            self._log.close()
        return status

    def _ask_stop(self, *_):
        self.stopping = True

    def _ask(self) -> _Job | None:
        if self._asked >= self.state.budget:
            return None
        trial = self.study.ask(self.distributions)
        self._asked += 1
        return _Job(trial.number, trial._trial_id, trial.params)

    # ------------------------------------------------------------ trials

    def _launch(self, job: _Job, free: list[Slot]) -> None:
        trial = optuna.Trial(self.study, job.trial_id)
        record = self.state.records.setdefault(job.number, TrialRecord(job.number, job.params))
        if job.run_id is None:
            slot = free[0]
            try:
                spec = preflight(slot.place(trial_spec(self.spec, job.params, job.number)), self.store).spec
            except SpecError as err:  # values the base spec refuses together (a batch past the data)
                record.state, record.error = "failed", str(err)
                self.study.tell(job.number, state=TrialState.FAIL)
                self.log(f"trial {job.number} refused: {err}", "warning")
                return
            job.run_id = self.store.create_run(spec, kind=spec["task"]["kind"], parent_id=self.sweep_id)
            self.store.update_summary(job.run_id, trial=job.number)
            trial.set_user_attr("run_id", job.run_id)
        else:
            spec = self.store.get_run(job.run_id)["spec"]
        slot = free.pop(0)
        record.run_id, record.state = job.run_id, "running"
        process = self.trials.start(job.number, job.run_id, slot, spec, self.store.artifacts_dir(job.run_id))
        self.active[job.number] = _Active(process, trial, record, slot)
        self.log(f"trial {job.number} (run {job.run_id}) on {slot.label}: {_params_text(job.params)}")

    def _event(self, active: _Active, event: dict) -> None:
        record = active.record
        kind = event["event"]
        if kind == "run_started":
            record.total_steps = event["total_steps"]
        elif kind == "progress":
            record.step = event["step"]
        elif kind == "metrics" and self.metric in event["points"]:
            steps, values, _ = event["points"][self.metric]
            for step, value in zip(steps, values, strict=True):
                self._report(active, int(step), value)

    def _report(self, active: _Active, step: int, value) -> None:
        """An evaluation for the pruner; a trial judged hopeless is marked, then stopped."""
        if value is None or not math.isfinite(value) or active.process.stopping:
            return
        active.record.objective = value
        active.trial.report(value, step)
        if self.section["pruner"] != "none" and active.trial.should_prune():
            # Marked before the stop: a sweep killed now still settles the trial as pruned.
            active.trial.set_user_attr("pruned_step", step)
            active.record.pruned_step, active.record.state = step, "stopping"
            active.process.stop()

    def _ended(self, active: _Active) -> None:
        code = active.process.wait()
        del self.active[active.process.number]
        run = self.store.get_run(active.record.run_id)
        if run["status"] == "running":  # the process died without recording its end
            self.store.reap()
            run = self.store.get_run(active.record.run_id)
        if (
            active.record.pruned_step is None
            and run["status"] in ("queued", "stopped", "crashed")
            and self.stopping
        ):
            active.record.state = "stopped"  # the sweep stops: a resume continues (or starts) this trial
            return
        self._settle(active.record, run, exit_code=code, output=active.process.log)

    def _settle(
        self, record: TrialRecord, run: dict, exit_code: int | None = None, output: Path | None = None
    ) -> None:
        """Tell Optuna how a trial's run ended and note it on the run."""
        pruned = record.pruned_step
        if pruned is not None:
            state, value = TrialState.PRUNED, None
        elif run["status"] == "completed":
            value = self._objective(run)
            state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        else:
            state, value = TrialState.FAIL, None
            lines = (run["error"] or "").strip().splitlines()
            printed = f"; what its process printed is in {output}" if output else ""
            record.error = lines[-1] if lines else f"run {run['status']} (exit code {exit_code}{printed})"
        frozen = self.study.tell(record.number, value, state=state, skip_if_finished=True)
        record.state = STATES[frozen.state]
        record.objective = frozen.value if frozen.value is not None else record.objective
        notes = {"trial_state": record.state, "objective": record.objective}
        if pruned is not None:
            notes["pruned_step"] = pruned
        self.store.update_summary(run["id"], **notes)
        self.store.update_summary(self.sweep_id, self.owner, **self._summary())
        self.log(
            f"trial {record.number} (run {run['id']}) {record.state}"
            + (f" at step {pruned}" if pruned is not None else "")
            + (f": {self.metric} {record.objective:.6g}" if record.objective is not None else "")
            + (f" ({record.error})" if record.error else "")
        )

    def _objective(self, run: dict) -> float | None:
        series = self.store.series_summaries(run["id"])
        found = series.get(self.metric)
        if found is None:
            logged = ", ".join(k for k in series if not k.startswith(("perf/", "sys/", "gpu")))
            self.error = (
                f"sweep.objective.metric: run {run['id']} logged no {self.metric!r} (it logged: {logged})"
            )
            return None
        objective = self.section["objective"]
        if objective["value"] == "final":
            value = found["last"]
        else:
            value = found["max"] if objective["direction"] == "maximize" else found["min"]
        return value if value is not None and math.isfinite(value) else None

    # ------------------------------------------------------------ resume

    def _recover(self) -> list[_Job]:
        """The study's trials as records; the running ones to continue, as jobs."""
        children = [r for r in self.store.list_runs() if r["parent_id"] == self.sweep_id]
        by_number = {r["summary"]["trial"]: r for r in children if "trial" in r["summary"]}
        for r in children:
            if "trial" not in r["summary"] and r["status"] == "queued":
                self.store.delete_run(r["id"])  # created, never numbered: its trial gets a new run
        backlog = []
        trials = self.study.get_trials(deepcopy=False)
        self._asked = len(trials)
        for ft in trials:
            run = by_number.get(ft.number)
            record = TrialRecord(ft.number, dict(ft.params), run["id"] if run else None)
            record.pruned_step = ft.user_attrs.get("pruned_step")
            self.state.records[ft.number] = record
            if ft.state in STATES:
                record.state, record.objective = STATES[ft.state], ft.value
                continue
            if ft.state != TrialState.RUNNING:
                continue
            if run is None:
                backlog.append(_Job(ft.number, ft._trial_id, dict(ft.params)))
                continue
            run = self._wait_for(run)
            if record.pruned_step is not None or run["status"] in ("completed", "failed"):
                self._settle(record, run)
            else:  # queued, stopped or crashed: the run continues from its checkpoint
                backlog.append(_Job(ft.number, ft._trial_id, dict(ft.params), run["id"]))
        if trials:
            self.log(f"resumed: {len(trials)} trial(s) so far, {len(backlog)} to continue")
        return backlog

    def _wait_for(self, run: dict) -> dict:
        """A trial's run still running in a live process (it outlived a killed sweep where
        the kernel does not stop children with their parent): wait until it ends."""
        while run["status"] == "running":
            self.store.reap()  # a dead process's run becomes crashed; a live one stays running
            run = self.store.get_run(run["id"])
            if run["status"] == "running":
                self.log(f"waiting for run {run['id']} (pid {run['pid']}), still running from before")
                time.sleep(HEARTBEAT_S)
        return run

    # ------------------------------------------------------------ records

    def _summary(self) -> dict:
        counts = self.state.counts()
        best = self.state.best()
        out = {
            "trials": self.state.budget,
            "trials_done": counts.get("complete", 0) + counts.get("pruned", 0) + counts.get("failed", 0),
            "trials_pruned": counts.get("pruned", 0),
            "trials_failed": counts.get("failed", 0),
        }
        if best is not None:
            out.update(best_trial=best.number, best_run=best.run_id, objective=best.objective)
        return out

    def log(self, message: str, level: str = "info") -> None:
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {level.upper():5} {message}\n")
        self._log.flush()

    def _show(self) -> None:
        if self.view is not None and time.monotonic() - self._shown >= 1.0:
            self._shown = time.monotonic()
            self.view(self.state)


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
