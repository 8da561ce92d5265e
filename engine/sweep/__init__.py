"""Hyperparameter sweeps: a spec's `sweep` section, run as trials that are ordinary runs.

Optuna samples and prunes (`space`); its study lives in a journal file in the sweep run's
artifact folder, which only the process holding the sweep's claim writes (`study`); trials
are placed on a device pool (`pool`) and run, as children of the sweep run, in warm engine
processes (`trial`, `worker`); `driver` runs the loop and resumes a killed sweep; `results`
reads a sweep back from the run store for the CLI and the GUI.

`start_sweep` and `resume_sweep` are imported on first use, so that a trial worker, which
imports this package, does not import Optuna.
"""

__all__ = ["resume_sweep", "start_sweep"]


def __getattr__(name: str):
    if name in __all__:
        from engine.sweep import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
