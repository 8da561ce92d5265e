"""A sweep read back from the run store, for the GUI's sweep view and scripts: its trials
(state, values, objective, pruned step), the best so far, the best trial's spec to run again,
and the parameters' importance (Optuna's fANOVA on the finished trials).

Everything but `importance` reads the run store alone (trials are runs; the sweep records
each trial's outcome in its run's summary), so a view of 2,000 trials opens without reading
Optuna's journal or importing Optuna.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from engine import run_table
from engine.store import RunStore

FINISHED = ("complete", "pruned", "failed")


@dataclass
class TrialRow:
    number: int
    run_id: int
    state: str  # complete | pruned | failed, or the run's status while it is not settled
    params: dict
    objective: float | None
    pruned_step: int | None
    steps: int | None
    total_steps: int | None


@dataclass
class SweepResults:
    sweep: dict  # the sweep's run row
    trials: list[TrialRow] = field(default_factory=list)

    @property
    def section(self) -> dict:
        return self.sweep["spec"]["sweep"]

    @property
    def params(self) -> list[str]:
        return list(self.section["params"])

    @property
    def metric(self) -> str:
        return self.section["objective"]["metric"]

    @property
    def maximize(self) -> bool:
        return self.section["objective"]["direction"] == "maximize"

    @property
    def live(self) -> bool:
        return self.sweep["status"] in ("queued", "running")

    def best(self) -> TrialRow | None:
        done = [t for t in self.trials if t.state == "complete" and t.objective is not None]
        if not done:
            return None
        return (max if self.maximize else min)(done, key=lambda t: t.objective)

    def best_so_far(self) -> tuple[list[int], list[float]]:
        """(trial numbers, the best objective of the complete trials up to each)."""
        numbers, values, best = [], [], None
        for t in sorted(self.trials, key=lambda t: t.number):
            if t.state != "complete" or t.objective is None:
                continue
            better = best is None or (t.objective > best if self.maximize else t.objective < best)
            best = t.objective if better else best
            numbers.append(t.number)
            values.append(best)
        return numbers, values

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out


SUMMARY = ("trial", "trial_state", "objective", "pruned_step", "steps", "total_steps")


def load_sweep(store: RunStore, sweep_id: int) -> SweepResults:
    """The sweep and its trials. Only the fields shown are read, in SQL (`run_table`), not
    every trial's whole spec: 2,000 trials' specs take ~0.2 s to parse, their fields ~20 ms."""
    sweep = store.get_run(sweep_id)
    if sweep["kind"] != "sweep":
        raise ValueError(f"run {sweep_id} is a {sweep['kind']} run, not a sweep")
    results = SweepResults(sweep)
    rows = run_table.run_rows(store)
    status = {
        rid: st
        for rid, st, parent in zip(rows["id"], rows["status"], rows["parent_id"], strict=True)
        if parent == sweep_id
    }
    columns = [f"spec:{p}" for p in results.params] + [f"summary:{k}" for k in SUMMARY]
    values = run_table.column_values(store, columns, list(status))
    summary = {k: values.get(f"summary:{k}", {}) for k in SUMMARY}
    for run_id, run_status in status.items():
        if run_id not in summary["trial"]:
            continue  # created by a sweep killed before it numbered the run
        results.trials.append(
            TrialRow(
                number=summary["trial"][run_id],
                run_id=run_id,
                state=summary["trial_state"].get(run_id) or run_status,
                params={p: values.get(f"spec:{p}", {}).get(run_id) for p in results.params},
                objective=summary["objective"].get(run_id),
                pruned_step=summary["pruned_step"].get(run_id),
                steps=summary["steps"].get(run_id),
                total_steps=summary["total_steps"].get(run_id),
            )
        )
    results.trials.sort(key=lambda t: t.number)
    return results


def promoted_spec(store: RunStore, results: SweepResults) -> dict | None:
    """The best trial's spec to run on its own: its values, the sweep's own hardware section
    (the pool's placement and thread share undone) and the sweep's name."""
    best = results.best()
    if best is None:
        return None
    spec = copy.deepcopy(store.get_run(best.run_id)["spec"])
    base = results.sweep["spec"]
    spec["hardware"] = copy.deepcopy(base["hardware"])
    spec["name"] = f"{base['name']}-best"
    return spec


def importance(results: SweepResults) -> dict[str, float]:
    """Each parameter's share of the objective's variance over the complete trials (fANOVA),
    largest first; {} with fewer than two complete trials."""
    import optuna

    from engine.sweep.space import distributions

    done = [t for t in results.trials if t.state == "complete" and t.objective is not None]
    if len(done) < 2:
        return {}
    dists = distributions(results.section["params"])
    study = optuna.create_study(direction=results.section["objective"]["direction"])
    study.add_trials(
        [
            optuna.trial.create_trial(params=t.params, distributions=dists, value=t.objective)
            for t in done
            if all(p in t.params and t.params[p] is not None for p in dists)
        ]
    )
    if len(dists) == 1:
        return {next(iter(dists)): 1.0}
    scores = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    return {k: float(v) for k, v in scores.items() if not math.isnan(v)}
