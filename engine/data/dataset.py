"""The data set held whole (`Dataset`: numpy arrays, split and scaled) and as the preflight
describes any data set without loading it (`DataInfo`), with the splitting and scaling every
loader shares."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from engine.errors import DataError


@dataclass
class DataInfo:
    """What a model must fit, and what the data set costs in memory once loaded."""

    name: str
    objective: str  # classification | regression | language_model
    input_shape: tuple[int, ...]
    input_dtype: str  # float | long
    output_size: int  # classes, regression targets or vocabulary
    train_samples: int
    val_samples: int
    nbytes: int  # what the run holds in memory (on the device when held whole); 0 when streamed
    classes: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def tokens_per_sample(self) -> int:
        return self.input_shape[0] if self.objective == "language_model" else 0


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
    normalization: dict | None = None  # images: the per-channel mean and std applied

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
        return self.y_train.shape[-1]

    @property
    def tokens_per_sample(self) -> int:
        return self.x_train.shape[1] if self.objective == "language_model" else 0

    def info(self) -> DataInfo:
        arrays = (self.x_train, self.y_train, self.x_val, self.y_val)
        return DataInfo(
            self.name,
            self.objective,
            self.input_shape,
            self.input_dtype,
            self.output_size,
            len(self.x_train),
            len(self.x_val),
            sum(a.nbytes for a in arrays),
            list(self.classes),
            self.description,
        )

    def saved(self) -> dict:
        """What a checkpoint keeps besides the weights for using the model later (images: the
        normalization applied to the inputs)."""
        return {"normalization": self.normalization} if self.normalization else {}

    def summary(self) -> dict:
        return {
            "dataset": self.name,
            "objective": self.objective,
            "train_samples": len(self.x_train),
            "val_samples": len(self.x_val),
            "input_shape": list(self.input_shape),
            "output_size": self.output_size,
            **({"normalization": self.normalization} if self.normalization else {}),
        }


def as_info(data) -> DataInfo:
    """The DataInfo of any data set the loaders give (or of a DataInfo itself)."""
    return data if isinstance(data, DataInfo) else data.info()


def check_objective(source: str, found: str, asked: str) -> None:
    if asked != "auto" and found != asked:
        raise DataError(f"data source {source!r} gives a {found} task, but task.objective is {asked!r}")


def split_sizes(n: int, val_fraction: float) -> tuple[int, int]:
    """(train, validation) sample counts of `split`: at least one sample on each side."""
    if n < 2:
        raise DataError(f"need at least 2 samples to split into train and validation, got {n}")
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    return n - n_val, n_val


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffled split; at least one sample on each side."""
    n_train, _ = split_sizes(n, val_fraction)
    order = np.random.default_rng(seed).permutation(n)
    return order[n - n_train :], order[: n - n_train]


def standardize(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale features by the training split's statistics (validation must not leak in). The
    statistics are taken in float64: float32 squares overflow above ~1e19."""
    stats = x_train.astype(np.float64)
    mean = stats.mean(axis=0)
    std = stats.std(axis=0)
    std[std == 0] = 1.0
    return ((x_train - mean) / std).astype(np.float32), ((x_val - mean) / std).astype(np.float32)


def check_classes(name: str, classes: list, where: str) -> None:
    """A classification target needs two classes: with one, every prediction is right and the
    run would report an accuracy of 1 having learnt nothing."""
    if len(classes) < 2:
        only = f" ({classes[0]!r} in every row)" if classes else ""
        raise DataError(
            f"{name}: {where} has a single class{only}: nothing to classify; for a numeric target, "
            "set task.objective to 'regression'"
        )


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


OPTIONAL = {"pyarrow": "pyarrow", "tokenizers": "tokenizers"}  # module → the package pip installs


def require(module: str, what: str):
    """An optional package's module, or a DataError saying how to install it (the `data`
    extra: `pip install trainbench[data]`)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = OPTIONAL[module.split(".")[0]]
        raise DataError(f"{what} need the {package} package: pip install {package}") from None
