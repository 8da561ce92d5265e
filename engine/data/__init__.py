"""Datasets that need no download: scikit-learn's bundled sets, seeded synthetic sets, and the
data users already have on disk — CSV and Parquet tables, image folders, CIFAR binary batches,
MNIST-style IDX files, NumPy arrays, `datasets` folders, and text of any size.

`load_dataset` gives what a run trains on: arrays held whole (`Dataset`), images decoded on
demand (`ImageData`) or a memory-mapped token file (`TokenData`); see `engine.data.sources`.
The loaders import no torch, so the GUI's data preview shares them. Every failure is a
`DataError` naming the file and the reason.

`describe` answers what a model must fit (shapes, classes, sample counts, bytes held) without
loading: built-in sets are known, synthetic ones follow from their fields, and user files are
checked by the same readers the loaders call — headers, a few decoded images, array shapes,
token counts — so `trainbench validate` and a run refuse the same data with the same message.
"""

from __future__ import annotations

from engine.data.dataset import (
    DataInfo,
    Dataset,
    as_info,
    check_objective,
    classification_set,
    split,
    split_sizes,
    standardize,
)

__all__ = [
    "DataInfo",
    "Dataset",
    "as_info",
    "check_objective",
    "classification_set",
    "default_workers",
    "describe",
    "loader_workers",
    "load_dataset",
    "split",
    "split_sizes",
    "standardize",
]

BUILTIN = ("digits", "wine", "breast_cancer", "synthetic_classification", "synthetic_regression")


def load_dataset(data: dict, objective: str = "auto", log=None):
    """Load the validated `data` section of a spec: a `Dataset`, `ImageData` or `TokenData`.
    `log(message)` hears about slow first-time work (tokenizing, caching) and skipped files."""
    from engine.data import builtin, sources

    source = data["source"]
    if source in BUILTIN:
        ds = getattr(builtin, source)(data)
    else:
        ds = sources.load(data, objective, log)
    check_objective(source, ds.objective, objective)
    return ds


def describe(data: dict, objective: str = "auto") -> DataInfo:
    """What `load_dataset(data, objective)` would give, without loading it (see the module
    docstring); raises the DataError the loader would raise."""
    from engine.data import builtin, sources

    source = data["source"]
    info = builtin.describe(data) if source in BUILTIN else sources.describe(data, objective)
    check_objective(source, info.objective, objective)
    return info


def default_workers() -> int:
    """DataLoader workers when data.num_workers is not set: half the cores (the other half
    trains), at least one, at most eight."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores // 2))


def loader_workers(data: dict | None) -> int:
    """The worker processes a run of this data section starts to decode its samples (0 for a
    set held whole), told from the fields and, for tables, their schema — without reading
    the data. The runner leaves these cores to the workers when it sizes torch's threads:
    a training thread spinning on a core a worker needs cost an image run 8× here."""
    from engine.data import sources

    if not data or not sources.streamed(data):
        return 0
    return default_workers() if data.get("num_workers") is None else data["num_workers"]
