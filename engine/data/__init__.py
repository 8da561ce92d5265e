"""Datasets that need no download: scikit-learn's bundled sets, seeded synthetic sets, and the
user's CSV files, image folders and text files.

Loaders return numpy arrays (no torch), already split and standardised, so the engine and the
GUI's data preview share them. Every failure is a `DataError` naming the file and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.errors import DataError


@dataclass
class Dataset:
    name: str
    objective: str  # classification | regression | language_model
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list[str] = field(default_factory=list)  # class names, for classification
    description: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def input_dtype(self) -> str:
        return "long" if self.x_train.dtype.kind in "iu" else "float"

    @property
    def output_size(self) -> int:
        """Width the model's last axis must have: classes, regression targets or vocabulary."""
        if self.objective == "classification":
            return len(self.classes)
        if self.objective == "language_model":
            return 256
        return self.y_train.shape[-1]

    @property
    def tokens_per_sample(self) -> int:
        return self.x_train.shape[1] if self.objective == "language_model" else 0

    def summary(self) -> dict:
        return {
            "dataset": self.name,
            "objective": self.objective,
            "train_samples": len(self.x_train),
            "val_samples": len(self.x_val),
            "input_shape": list(self.input_shape),
            "output_size": self.output_size,
        }


def load_dataset(data: dict, objective: str = "auto") -> Dataset:
    """Load the validated `data` section of a spec."""
    from engine.data import builtin, files

    source = data["source"]
    loader = {
        "digits": builtin.digits,
        "wine": builtin.wine,
        "breast_cancer": builtin.breast_cancer,
        "synthetic_classification": builtin.synthetic_classification,
        "synthetic_regression": builtin.synthetic_regression,
        "csv": files.csv_table,
        "images": files.image_folder,
        "text": files.text_file,
    }[source]
    ds = loader(data, objective)
    if objective != "auto" and ds.objective != objective:
        raise DataError(
            f"data source {source!r} gives a {ds.objective} task, but task.objective is {objective!r}"
        )
    return ds


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffled split; at least one sample on each side."""
    if n < 2:
        raise DataError(f"need at least 2 samples to split into train and validation, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    return order[n_val:], order[:n_val]


def standardize(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale features by the training split's statistics (validation must not leak in)."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    return ((x_train - mean) / std).astype(np.float32), ((x_val - mean) / std).astype(np.float32)


def classification_set(name, x, y, classes, data, description="", scale=True) -> Dataset:
    tr, va = split(len(x), data["val_fraction"], data["split_seed"])
    x = x.astype(np.float32)
    if scale:
        xt, xv = standardize(x[tr], x[va])
    else:
        xt, xv = x[tr], x[va]
    return Dataset(
        name, "classification", xt, y[tr].astype(np.int64), xv, y[va].astype(np.int64), classes, description
    )
