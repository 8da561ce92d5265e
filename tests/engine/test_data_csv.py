"""CSV as people write it: detected delimiters, decimal commas, quoting, gzip, encodings,
missing values (error naming every affected column and line, drop, mean), categorical
columns one-hot encoded, and free text refused with a clear line."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from engine.data import describe, load_dataset
from engine.errors import DataError
from tests.engine.test_data_formats import data, mlp, train_once

ROWS = [(i, (i * 7) % 5 + 0.25, "a" if i % 2 else "b") for i in range(30)]


def csv_text(sep: str = ",", decimal: str = ".", header=("x", "y", "t"), rows=ROWS) -> str:
    def cell(v):
        return f"{v}".replace(".", decimal) if isinstance(v, float) else str(v)

    return "\n".join([sep.join(header)] + [sep.join(cell(v) for v in row) for row in rows]) + "\n"


def reference(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text(csv_text())
    return load_dataset(data(source="csv", path=str(path)))


@pytest.mark.parametrize(
    "name, text",
    [
        ("semicolon, decimal comma", csv_text(";", ",")),
        ("tab", csv_text("\t")),
        ("spaces", csv_text("   ")),
        ("pipe", csv_text("|")),
        ("quoted", '"x","y","t"\n' + "".join(f'"{a}","{b}","{c}"\n' for a, b, c in ROWS)),
    ],
)
def test_dialects_read_the_same_numbers(tmp_path, name, text):
    path = tmp_path / "d.csv"
    path.write_text(text)
    ds = load_dataset(data(source="csv", path=str(path)))
    ref = reference(tmp_path)
    assert ds.classes == ["a", "b"] and ds.input_shape == (2,), name
    np.testing.assert_allclose(ds.x_train, ref.x_train, rtol=1e-6)


def test_gzip_and_latin1_files(tmp_path):
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(csv_text(";", ",").encode()))
    assert load_dataset(data(source="csv", path=str(gz))).input_shape == (2,)
    text = csv_text(header=("größe", "y", "t")).replace(",b\n", ",café\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(text.encode("latin-1"))
    with pytest.raises(
        DataError, match=r"latin.csv: not utf-8 text \(invalid .* at byte .*\); set data.encoding"
    ):
        load_dataset(data(source="csv", path=str(latin)))
    ds = load_dataset(data(source="csv", path=str(latin), encoding="latin-1"))
    assert ds.classes == ["a", "café"]


def test_missing_values_every_affected_column_and_line_named(tmp_path):
    rows = [list(r) for r in ROWS]
    for r, c in ((2, 0), (5, 0), (9, 1), (20, 0)):
        rows[r][c] = "" if c else "NA"
    path = tmp_path / "m.csv"
    path.write_text(csv_text(rows=rows))
    with pytest.raises(DataError) as err:
        describe(data(source="csv", path=str(path)))
    assert (
        "missing values in 4 rows: column 'x' on lines 4, 7 and 22; column 'y' on line 11; "
        "set data.missing to 'drop' or 'mean'"
    ) in str(err.value)
    dropped = load_dataset(data(source="csv", path=str(path), missing="drop"))
    assert len(dropped.x_train) + len(dropped.x_val) == 26 and "dropped 4 rows" in dropped.description
    imputed = load_dataset(data(source="csv", path=str(path), missing="mean"))
    assert len(imputed.x_train) + len(imputed.x_val) == 30 and np.isfinite(imputed.x_train).all()
    assert describe(data(source="csv", path=str(path), missing="mean")).train_samples == len(imputed.x_train)


def test_a_missing_target_needs_drop(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[3][2] = ""
    path = tmp_path / "t.csv"
    path.write_text(csv_text(rows=rows))
    with pytest.raises(DataError, match="the target 't' is missing on line 5; set data.missing to 'drop'"):
        load_dataset(data(source="csv", path=str(path), missing="mean"))
    assert len(load_dataset(data(source="csv", path=str(path), missing="drop")).y_val) > 0


def test_categorical_columns_are_one_hot_and_free_text_is_refused(tmp_path, db_path):
    colours = ["red", "green", "blue"]
    rows = [(i, colours[i % 3], f"note number {i}", "yes" if i % 2 else "no") for i in range(40)]
    path = tmp_path / "c.csv"
    path.write_text(csv_text(header=("n", "colour", "note", "label"), rows=rows))
    with pytest.raises(
        DataError,
        match="column 'note' is free text \\(40 distinct values in 40 rows\\): leave it out, or list",
    ):
        describe(data(source="csv", path=str(path)))
    path.write_text(csv_text(header=("n", "colour", "label"), rows=[(a, b, d) for a, b, _, d in rows]))
    info = describe(data(source="csv", path=str(path)))
    assert info.input_shape == (4,) and "one-hot: colour (3)" in info.description
    train_once(db_path, mlp([4], 2), {"source": "csv", "path": str(path)})
    numeric = load_dataset(data(source="csv", path=str(path), categorical=["n"]))
    assert numeric.input_shape == (43,)  # 40 values of n and 3 colours


def test_ragged_and_non_numeric_cells_are_named(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("x;y;t\n1;2;a\n3;b\n" + csv_text(";")[6:])
    with pytest.raises(DataError, match="line 3 has 2 fields, the header has 3 \\(delimiter ';'\\)"):
        load_dataset(data(source="csv", path=str(path)))
    path.write_text("x,y,t\n1,zz,a\n" + csv_text()[6:])
    with pytest.raises(
        DataError, match="line 2: column 'y' is not numeric \\('zz'\\).*features must be numbers"
    ):
        describe(data(source="csv", path=str(path)))
