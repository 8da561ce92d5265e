"""A sweep's search space in Optuna's terms, its sampler and pruner, and the spec of a trial.

The `sweep` section was validated by `engine.spec.check_sweep` (every value within its field's
range), so this module only translates.
"""

from __future__ import annotations

import copy
import math

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from engine.spec import validate_spec

DEFAULT_TRIALS = 20


def distributions(params: dict) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for path, dist in params.items():
        ((name, values),) = dist.items()
        if name == "uniform":
            out[path] = FloatDistribution(values[0], values[1])
        elif name == "log_uniform":
            out[path] = FloatDistribution(values[0], values[1], log=True)
        elif name == "int":
            out[path] = IntDistribution(values[0], values[1])
        else:  # choice, grid
            out[path] = CategoricalDistribution(values)
    return out


def grid_size(params: dict) -> int:
    return math.prod(len(next(iter(d.values()))) for d in params.values())


def budget(sweep: dict) -> int:
    """Trials to run: as given, else every grid point (grid sampler), else DEFAULT_TRIALS."""
    if sweep["sampler"] == "grid":
        return min(sweep["trials"] or grid_size(sweep["params"]), grid_size(sweep["params"]))
    return sweep["trials"] or DEFAULT_TRIALS


def make_sampler(sweep: dict, already: int = 0) -> optuna.samplers.BaseSampler:
    """The sweep's sampler; `already`: trials the study has (a resumed sweep's sampler goes on
    from a seed of its own, since sweep.seed would propose the first trials' values again)."""
    seed = (sweep["seed"] + already) % 2**32
    if sweep["sampler"] == "grid":
        space = {path: next(iter(d.values())) for path, d in sweep["params"].items()}
        return _Grid(space, seed=seed)
    if sweep["sampler"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # The constant liar keeps parallel trials from all sampling the same point before any ends.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=sweep["parallel"] > 1)


class _Grid(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its `study.stop()` once the grid is exhausted, which
    raises outside `Study.optimize` (the sweep asks and tells); `budget` stops at the grid."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def make_pruner(sweep: dict) -> optuna.pruners.BasePruner:
    if sweep["pruner"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, budget(sweep) // 4)))
    if sweep["pruner"] == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def trial_spec(base: dict, params: dict, number: int) -> dict:
    """The run spec of trial `number`: the sweep's spec without its section, the trial's values
    set, named after the sweep, validated again like any spec."""
    doc = copy.deepcopy(base)
    doc.pop("sweep", None)
    for path, value in params.items():
        section, name = path.split(".", 1)
        doc[section][name] = value
    doc["name"] = f"{base['name']} #{number}"
    return validate_spec(doc)
