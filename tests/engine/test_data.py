"""Datasets: built-in sets load without a network; user files fail with the file and reason."""

import numpy as np
import pytest
from PIL import Image

from engine.data import load_dataset
from engine.errors import DataError
from engine.fields import check_fields
from engine.spec import SECTIONS
from tests.conftest import EXAMPLES


def data(**kw):
    return check_fields(SECTIONS["data"], kw, "data", [])


@pytest.mark.parametrize(
    "source, shape, classes",
    [
        ("digits", (1, 8, 8), 10),
        ("wine", (13,), 3),
        ("breast_cancer", (30,), 2),
        ("synthetic_classification", (20,), 3),
    ],
)
def test_builtin_sets(source, shape, classes):
    ds = load_dataset(data(source=source))
    assert ds.input_shape == shape and ds.output_size == classes and ds.objective == "classification"
    assert set(np.unique(ds.y_train)) <= set(range(classes))
    again = load_dataset(data(source=source))
    assert np.array_equal(ds.x_val, again.x_val)  # the split is seeded


def test_split_seed_changes_the_split_and_val_fraction_its_size():
    a = load_dataset(data(source="wine", split_seed=1))
    b = load_dataset(data(source="wine", split_seed=2, val_fraction=0.5))
    assert len(b.x_val) == 89 and not np.array_equal(a.y_val[:20], b.y_val[:20])


def test_regression_targets_are_standardised():
    ds = load_dataset(data(source="synthetic_regression", samples=500, features=5))
    assert ds.objective == "regression" and ds.y_train.shape[1] == 1 and abs(float(ds.y_train.mean())) < 0.1


def write(path, text):
    path.write_text(text)
    return str(path)


def test_csv_classification_with_named_classes(tmp_path):
    rows = "\n".join(f"{i},{i * 2 % 7},{'cat' if i % 2 else 'dog'}" for i in range(40))
    ds = load_dataset(data(source="csv", path=write(tmp_path / "t.csv", "a,b,animal\n" + rows)))
    assert ds.classes == ["cat", "dog"] and ds.input_shape == (2,)
    assert abs(float(ds.x_train.mean())) < 0.2  # standardised by training statistics


def test_csv_numeric_target_becomes_regression(tmp_path):
    rows = "\n".join(f"{i},{i * 0.37:.3f}" for i in range(50))
    ds = load_dataset(data(source="csv", path=write(tmp_path / "r.csv", "x,y\n" + rows)))
    assert ds.objective == "regression"


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "the file is empty"),
        ("a,b,c\n", "has a header but no data rows"),
        ("a,b,c\n1,2,3\n4,5\n", "line 3 has 2 fields, the header has 3"),
        ("a,b,c\n1,x,0\n2,3,1\n", "line 2: column 'b' is not numeric ('x')"),
        ("a,b,c\n1,,0\n2,3,1\n", "missing values in 1 row: column 'b' on line 2; set data.missing"),
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path, content, message):
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(DataError) as err:
        load_dataset(data(source="csv", path=path))
    assert str(err.value).startswith(path) and message in str(err.value)


def test_csv_missing_file_and_target(tmp_path):
    with pytest.raises(DataError, match="nope.csv: CSV file not found"):
        load_dataset(data(source="csv", path=str(tmp_path / "nope.csv")))
    path = write(tmp_path / "t.csv", "a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match="no column named 'label' \\(columns: a, b\\)"):
        load_dataset(data(source="csv", path=path, target="label"))


def test_image_folder_and_an_undecodable_image(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("circle", "square"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
                tmp_path / cls / f"{i}.png"
            )
    ds = load_dataset(data(source="images", path=str(tmp_path), image_size=[16, 16], normalize=False))
    assert (
        ds.input_shape == (3, 16, 16)
        and ds.classes == ["circle", "square"]
        and len(ds.x_train) + len(ds.x_val) == 12
    )
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    normalized = load_dataset(data(source="images", path=str(tmp_path), image_size=[16, 16]))
    assert abs(float(normalized.x_train.mean())) < 0.2  # the training split's own statistics
    assert len(normalized.summary()["normalization"]["mean"]) == 3
    (tmp_path / "square" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png: cannot decode image"):
        load_dataset(data(source="images", path=str(tmp_path)))


def test_text_windows_predict_the_next_byte(tmp_path):
    path = write(tmp_path / "t.txt", "hello world, " * 100)
    ds = load_dataset(data(source="text", path=path, context=16, val_fraction=0.1))
    assert ds.objective == "language_model" and ds.input_shape == (16,) and ds.input_dtype == "long"
    assert np.array_equal(ds.x_train[0, 1:], ds.y_train[0, :-1])
    with pytest.raises(DataError, match="too short for context 64"):
        load_dataset(data(source="text", path=write(tmp_path / "s.txt", "tiny"), context=64))


@pytest.mark.parametrize(
    "source, loader",
    [("digits", "load_digits"), ("wine", "load_wine"), ("breast_cancer", "load_breast_cancer")],
)
def test_bundled_files_read_directly_equal_scikit_learns_loaders(source, loader):
    import sklearn.datasets

    ref = getattr(sklearn.datasets, loader)()
    ds = load_dataset(data(source=source, val_fraction=0.5))
    n = len(ds.x_train) + len(ds.x_val)
    assert n == len(ref.target) and sorted(np.concatenate([ds.y_train, ds.y_val])) == sorted(ref.target)
    if source == "digits":
        assert np.array_equal(
            np.sort(np.concatenate([ds.x_train, ds.x_val]).reshape(n, -1).sum(1)),
            np.sort(ref.data.sum(1) / 16),
        )
    else:
        assert ds.classes == list(ref.target_names)


# ------------------------------------------------------------------ what a run would refuse


def test_infinite_and_out_of_range_cells_are_refused_every_one_named(tmp_path):
    rows = "".join(f"{i},{i % 3},{'a' if i % 2 else 'b'}\n" for i in range(20))
    path = write(tmp_path / "bad.csv", "x,y,t\n1,inf,a\n-inf,2,b\n3,1e39,a\n" + "q,1,a\n" * 6 + rows)
    with pytest.raises(DataError) as err:
        load_dataset(data(source="csv", path=path))
    text = str(err.value)
    assert "line 2: column 'y' is not a finite number ('inf')" in text
    assert "line 3: column 'x' is not a finite number ('-inf')" in text
    assert "line 4: column 'y' is beyond float32's range" in text
    assert "(and 4 more bad cells)" in text and "features must be numbers" in text


def test_a_single_class_target_is_an_error_that_suggests_regression(tmp_path):
    path = write(tmp_path / "one.csv", "x,label\n" + "".join(f"{i},7\n" for i in range(20)))
    with pytest.raises(
        DataError, match=r"the target 'label' has a single class \('7' in every row\).*'regression'"
    ):
        load_dataset(data(source="csv", path=path))
    assert load_dataset(data(source="csv", path=path), "regression").objective == "regression"


def test_files_that_are_not_regular_are_refused_without_being_opened(tmp_path):
    import os

    fifo = tmp_path / "data.fifo"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    for source in ("csv", "text"):
        with pytest.raises(DataError, match="not a regular file \\(a FIFO\\)"):
            load_dataset(data(source=source, path=str(fifo)))
        with pytest.raises(DataError, match="not a regular file \\(a character device\\)"):
            load_dataset(data(source=source, path="/dev/zero"))


def test_a_decompression_bomb_is_refused_not_warned_about(tmp_path):
    from tests.engine.test_hostile_inputs import _png

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / cls / "0.png")
    (tmp_path / "b" / "bomb.png").write_bytes(_png(50_000, 50_000, b"\x00" * 8))
    with pytest.raises(DataError, match=r"bomb.png: 2,500,000,000 pixels is more than PIL's limit"):
        load_dataset(data(source="images", path=str(tmp_path)))


def test_text_must_be_utf8(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"hello world " * 40 + b"\xff" + b"more " * 40)
    with pytest.raises(DataError, match="not UTF-8 text .* at byte 480"):
        load_dataset(data(source="text", path=str(path), context=8))


def _images(root):
    rng = np.random.default_rng(1)
    for cls in ("cat", "dog", "eel"):
        (root / cls).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (9, 7, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return str(root)


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: {"source": "digits"},
        lambda tmp: {"source": "wine", "val_fraction": 0.3},
        lambda tmp: {"source": "breast_cancer"},
        lambda tmp: {"source": "synthetic_classification", "samples": 300, "features": 7, "classes": 4},
        lambda tmp: {"source": "synthetic_regression", "samples": 300, "features": 5},
        lambda tmp: {"source": "csv", "path": str(EXAMPLES / "data" / "wine.csv"), "target": "cultivar"},
        lambda tmp: {"source": "images", "path": _images(tmp), "image_size": [6, 5]},
        lambda tmp: {"source": "images", "path": _images(tmp), "grayscale": True},
        lambda tmp: {"source": "text", "path": str(EXAMPLES / "data" / "corpus.txt"), "context": 50},
    ],
)
def test_describe_tells_what_the_loader_gives_without_loading(tmp_path, make):
    from engine.data import describe

    section = data(**make(tmp_path))
    described, loaded = describe(section), load_dataset(section).info()
    for name in (
        "name",
        "objective",
        "input_shape",
        "input_dtype",
        "output_size",
        "train_samples",
        "val_samples",
    ):
        assert getattr(described, name) == getattr(loaded, name), name
    assert described.nbytes == loaded.nbytes  # what the memory estimate counts for the data


def test_synthetic_parameters_scikit_learn_refuses_are_refused_first():
    from engine.data import describe

    for kw, message in (
        ({"classes": 20, "features": 4}, "data.classes: 20 classes need at least 10 features"),
        ({"noise": 2.0}, "data.noise: label noise is the share of labels flipped, at most 1"),
    ):
        section = data(source="synthetic_classification", **kw)
        for read in (describe, load_dataset):
            with pytest.raises(DataError, match=message):
                read(section)
