"""Built-in data sets: scikit-learn's bundled ones (no network) and seeded synthetic ones."""

from __future__ import annotations

import numpy as np

from engine.data import Dataset, classification_set, split, standardize


def digits(data: dict, objective: str) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    # 8×8 grey images with values 0..16, as one channel in [0, 1].
    x = (d.images / 16.0).reshape(-1, 1, 8, 8)
    return classification_set(
        "digits",
        x,
        d.target,
        [str(c) for c in d.target_names],
        data,
        "1,797 handwritten digits, 1×8×8, 10 classes (scikit-learn)",
        scale=False,
    )


def wine(data: dict, objective: str) -> Dataset:
    from sklearn.datasets import load_wine

    d = load_wine()
    return classification_set(
        "wine", d.data, d.target, list(d.target_names), data, "178 wines, 13 features, 3 cultivars"
    )


def breast_cancer(data: dict, objective: str) -> Dataset:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return classification_set(
        "breast_cancer",
        d.data,
        d.target,
        list(d.target_names),
        data,
        "569 tumours, 30 features, malignant/benign",
    )


def synthetic_classification(data: dict, objective: str) -> Dataset:
    from sklearn.datasets import make_classification

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


def synthetic_regression(data: dict, objective: str) -> Dataset:
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
