"""Hyperparameter sweeps: a spec's `sweep` section, run as trials that are ordinary runs.

Optuna samples and prunes (`space`); its study lives in a journal file in the sweep run's
artifact folder, which only the process holding the sweep's claim writes (`study`); trials
are placed on a device pool (`pool`) and each runs as its own engine process (`trial`), child
of the sweep run; `driver` runs the loop and resumes a killed sweep; `results` reads a sweep
back from the run store for the CLI and the GUI.
"""

from engine.sweep.driver import resume_sweep, start_sweep

__all__ = ["resume_sweep", "start_sweep"]
