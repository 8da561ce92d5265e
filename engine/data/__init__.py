"""Datasets that need no download: scikit-learn's bundled sets, seeded synthetic sets, and the
user's CSV files, image folders and text files.

Loaders return numpy arrays (no torch), already split and standardised, so the engine and the
GUI's data preview share them. Every failure is a `DataError` naming the file and the reason.

`describe` answers what a model must fit (shapes, classes, sample counts, bytes) without
loading: built-in sets are known, synthetic ones follow from their fields, and user files are
checked by the same functions the loaders call (`engine.data.files`), so `trainbench
validate` and a run refuse the same data with the same message.
"""

from __future__ import annotations

from engine.data.dataset import (
    VOCAB,
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
    "VOCAB",
    "DataInfo",
    "Dataset",
    "as_info",
    "check_objective",
    "classification_set",
    "describe",
    "load_dataset",
    "split",
    "split_sizes",
    "standardize",
]


def load_dataset(data: dict, objective: str = "auto") -> Dataset:
    """Load the validated `data` section of a spec."""
    from engine.data import builtin, files

    source = data["source"]
    if source == "csv":
        ds = files.csv_table(data, objective)
    else:
        loader = {
            "digits": builtin.digits,
            "wine": builtin.wine,
            "breast_cancer": builtin.breast_cancer,
            "synthetic_classification": builtin.synthetic_classification,
            "synthetic_regression": builtin.synthetic_regression,
            "images": files.image_folder,
            "text": files.text_file,
        }[source]
        ds = loader(data)
    check_objective(source, ds.objective, objective)
    return ds


def describe(data: dict, objective: str = "auto") -> DataInfo:
    """What `load_dataset(data, objective)` would give, without loading it (see the module
    docstring); raises the DataError the loader would raise."""
    from engine.data import builtin, files

    source = data["source"]
    if source in builtin.SHAPES or source in builtin.SYNTHETIC:
        info = builtin.describe(data)
    elif source == "csv":
        info = files.describe_csv(data, objective)
    elif source == "images":
        info = files.describe_images(data)
    else:
        info = files.describe_text(data)
    check_objective(source, info.objective, objective)
    return info
