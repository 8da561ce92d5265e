"""Built-in data sets: scikit-learn's bundled ones (no network) and seeded synthetic ones."""

from __future__ import annotations

import gzip
import importlib.util
import math
from pathlib import Path

import numpy as np

from engine.data.dataset import DataInfo, Dataset, classification_set, split, split_sizes, standardize
from engine.errors import DataError

# The bundled sets as the loaders give them: (samples, sample shape, classes, description).
SHAPES = {
    "digits": (1797, (1, 8, 8), 10, "1,797 handwritten digits, 1×8×8, 10 classes (scikit-learn)"),
    "wine": (178, (13,), 3, "178 wines, 13 features, 3 cultivars"),
    "breast_cancer": (569, (30,), 2, "569 tumours, 30 features, malignant/benign"),
}
SYNTHETIC = ("synthetic_classification", "synthetic_regression")


def describe(data: dict) -> DataInfo:
    """A built-in set's shapes and bytes, known without reading a file."""
    source = data["source"]
    if source in SHAPES:
        n, shape, classes, text = SHAPES[source]
        names, objective, out, y_bytes = [], "classification", classes, 8
    else:
        check_synthetic(data)
        n, shape, text = data["samples"], (data["features"],), f"{data['samples']} samples (seeded)"
        if source == "synthetic_classification":
            names = [str(i) for i in range(data["classes"])]
            objective, out, y_bytes = "classification", data["classes"], 8
        else:
            names, objective, out, y_bytes = [], "regression", 1, 4
    n_train, n_val = split_sizes(n, data["val_fraction"])
    nbytes = n * (4 * math.prod(shape) + y_bytes)
    return DataInfo(source, objective, shape, "float", out, n_train, n_val, nbytes, names, text)


def check_synthetic(data: dict) -> None:
    """What scikit-learn's generators refuse, refused first with the spec's field names."""
    if data["source"] != "synthetic_classification":
        return
    informative = max(2, data["features"] // 2)
    if data["classes"] > 2**informative:
        raise DataError(
            f"data.classes: {data['classes']} classes need at least {math.ceil(math.log2(data['classes'])) * 2} "
            f"features (data.features is {data['features']}): synthetic classes sit on the corners of a "
            "cube spanned by half the features"
        )
    if data["noise"] > 1:
        raise DataError(
            f"data.noise: label noise is the share of labels flipped, at most 1, got {data['noise']:g}"
        )


def _bundled(name: str) -> tuple[list[str], np.ndarray]:
    """Rows of a data file that ships inside scikit-learn, read without importing it: importing
    sklearn.datasets costs over a second of start-up, for three small CSV files."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the built-in data set needs scikit-learn (pip install scikit-learn) for {name}")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    with gzip.open(path, "rt") if name.endswith(".gz") else path.open() as fh:
        header = [] if name.endswith(".gz") else fh.readline().strip().split(",")
        return header, np.loadtxt(fh, delimiter=",")


def digits(data: dict) -> Dataset:
    _, table = _bundled("digits.csv.gz")
    # 8×8 grey images with values 0..16, as one channel in [0, 1].
    x = (table[:, :-1] / 16.0).reshape(-1, 1, 8, 8)
    return classification_set(
        "digits",
        x,
        table[:, -1].astype(np.int64),
        [str(c) for c in range(10)],
        data,
        SHAPES["digits"][3],
        scale=False,
    )


def wine(data: dict) -> Dataset:
    header, table = _bundled("wine_data.csv")  # header: n_samples, n_features, class names
    return classification_set(
        "wine",
        table[:, :-1],
        table[:, -1].astype(np.int64),
        header[2:],
        data,
        SHAPES["wine"][3],
    )


def breast_cancer(data: dict) -> Dataset:
    header, table = _bundled("breast_cancer.csv")
    return classification_set(
        "breast_cancer",
        table[:, :-1],
        table[:, -1].astype(np.int64),
        header[2:],
        data,
        SHAPES["breast_cancer"][3],
    )


def synthetic_classification(data: dict) -> Dataset:
    from sklearn.datasets import make_classification

    check_synthetic(data)
    n_inf = max(2, data["features"] // 2)
    x, y = make_classification(
        n_samples=data["samples"],
        n_features=max(data["features"], n_inf),
        n_informative=n_inf,
        n_redundant=0,
        n_classes=data["classes"],
        n_clusters_per_class=1,
        flip_y=data["noise"],
        random_state=data["split_seed"],
    )
    return classification_set(
        "synthetic_classification",
        x,
        y,
        [str(i) for i in range(data["classes"])],
        data,
        f"{data['samples']} samples, {data['features']} features, {data['classes']} classes (seeded)",
    )


def synthetic_regression(data: dict) -> Dataset:
    from sklearn.datasets import make_regression

    x, y = make_regression(
        n_samples=data["samples"],
        n_features=data["features"],
        noise=data["noise"],
        random_state=data["split_seed"],
    )
    tr, va = split(len(x), data["val_fraction"], data["split_seed"])
    xt, xv = standardize(x[tr], x[va])
    y = (y - y[tr].mean()) / (y[tr].std() or 1.0)  # unit-scale targets so losses are comparable
    y = y.astype(np.float32).reshape(-1, 1)
    return Dataset(
        "synthetic_regression",
        "regression",
        xt,
        y[tr],
        xv,
        y[va],
        [],
        f"{data['samples']} samples, {data['features']} features, 1 target (seeded)",
    )
