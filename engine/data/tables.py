"""Tables: CSV files as people write them, and Parquet/Arrow tables, into features and a target.

CSV: the delimiter is detected (comma, semicolon, tab, pipe or runs of spaces) from the first
lines unless `data.delimiter` names it; decimal commas are recognised where the delimiter is
not a comma (`1,5;2,25`); quoted fields may hold delimiters and newlines; `.csv.gz` is read
through gzip; `data.encoding` names the text encoding (UTF-8 by default, a BOM accepted).

Every cell is checked in one pass and the problems come in one error: ragged lines, cells that
are not numbers in a numeric column, infinities and values beyond float32. Missing cells (empty,
NA, NaN, null, none, ?) follow `data.missing`: `error` names every affected column with its
lines, `drop` drops those rows, `mean` imputes the training split's mean (the most frequent
value for a categorical column). A column without any number is categorical — one-hot
encoded — when it has few distinct values (or is listed in `data.categorical`), and refused as
free text otherwise.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.dataset import (
    DataInfo,
    Dataset,
    check_classes,
    classification_set,
    require,
    split,
    split_sizes,
    standardize,
)
from engine.errors import DataError
from engine.fields import listed, shorten, shown
from engine.jsonfile import regular_file

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
FLOAT32_MAX = float(np.finfo(np.float32).max)  # samples are float32: larger values become inf
BAD_CELLS_SHOWN = 5  # bad cells named in one message; the rest are counted
LINES_SHOWN = 8  # lines named per column with missing values
MAX_LEVELS = 1000  # one-hot columns one categorical feature may become
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "|": "|"}
_COMMA_DECIMAL = re.compile(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$")
_DOT_DECIMAL = re.compile(r"^[+-]?\d*\.\d+([eE][+-]?\d+)?$")


@dataclass
class Column:
    name: str
    numbers: np.ndarray | None  # float64 with NaN where missing, for a numeric column
    texts: list[str | None] | None  # the cells (None: missing), for a non-numeric column


@dataclass
class RawTable:
    """The cells of a table by column, and what to call each row in a message."""

    where: str
    columns: list[Column]
    rows: list[str]  # "line 5" (CSV) or "row 5" (Parquet)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (row, message): bad number cells


# ------------------------------------------------------------------ reading CSV


def _open_text(p: Path, encoding: str):
    raw = p.open("rb")
    head = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
    enc = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    return io.TextIOWrapper(stream, encoding=enc, newline="")


def _detect_delimiter(sample: str) -> str:
    """The delimiter that splits the first lines into the same number (> 1) of fields most
    often; runs of spaces when none does."""
    lines = [line for line in sample.splitlines()[:100] if line.strip()]
    best, best_score = ",", 0.0
    for d in (",", ";", "\t", "|"):
        counts = [len(r) for r in csv.reader(lines, delimiter=d)]
        if not counts:
            continue
        mode, freq = Counter(counts).most_common(1)[0]
        score = freq / len(counts) if mode > 1 else 0.0
        if score > best_score + 1e-9:
            best, best_score = d, score
    if best_score == 0.0:
        counts = [len(line.split()) for line in lines]
        if counts and counts[0] > 1 and Counter(counts).most_common(1)[0][1] / len(counts) > 0.5:
            return " "
    return best


def csv_rows(
    path: str, encoding: str = "utf-8", delimiter: str = "auto"
) -> tuple[list[str], list[tuple[int, list[str]]], str]:
    """(header, (line, fields) of each data row, the delimiter used), every row as long as
    the header."""
    p = regular_file(path, "CSV file")
    try:
        with _open_text(p, encoding) as fh:
            sample = fh.read(1 << 16)
            fh.seek(0)
            d = DELIMITERS.get(delimiter, " " if delimiter == "space" else None) or _detect_delimiter(sample)
            if d == " ":
                reader = ([c for c in line.split()] for line in fh)
                rows = [(i, r) for i, r in enumerate(reader, 1) if r]
            else:
                reader = csv.reader(fh, delimiter=d)
                rows = [(reader.line_num, r) for r in reader if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as err:
        raise DataError(
            f"{p}: not {encoding} text ({err.reason} at byte {err.start:,}); set data.encoding (e.g. latin-1)"
        ) from None
    except (csv.Error, gzip.BadGzipFile, EOFError) as err:
        raise DataError(f"{p}: not a readable CSV file ({shorten(str(err), 200)})") from None
    except OSError as err:
        raise DataError(f"{p}: cannot read the CSV file ({err.strerror or err})") from None
    if not rows:
        raise DataError(f"{p}: the file is empty")
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    if not body:
        raise DataError(f"{p}: has a header but no data rows")
    ragged = [(line, len(row)) for line, row in body if len(row) != len(header)]
    if ragged:
        shown_lines = "; ".join(f"line {line} has {n} fields" for line, n in ragged[:BAD_CELLS_SHOWN])
        more = f" (and {len(ragged) - BAD_CELLS_SHOWN:,} more lines)" if len(ragged) > BAD_CELLS_SHOWN else ""
        name = {"\t": "tab", " ": "spaces"}.get(d, repr(d))
        raise DataError(f"{p}: {shown_lines}{more}, the header has {len(header)} (delimiter {name})")
    return header, body, d


def read_csv(data: dict) -> RawTable:
    header, body, delimiter = csv_rows(
        data["path"], data.get("encoding", "utf-8"), data.get("delimiter", "auto")
    )
    cells = list(zip(*[row for _, row in body], strict=True))
    comma = delimiter != "," and _decimal_commas(cells)
    rows = [f"line {line}" for line, _ in body]
    table = RawTable(data["path"], [], rows)
    for name, column in zip(header, cells, strict=True):
        table.columns.append(_parse_column(name, column, rows, comma, table.bad))
    return table


def _decimal_commas(cells) -> bool:
    comma = dot = 0
    for column in cells[:200]:
        for v in column[:200]:
            v = v.strip()
            comma += bool(_COMMA_DECIMAL.match(v))
            dot += bool(_DOT_DECIMAL.match(v))
    return comma > 0 and dot == 0


def _parse_column(name: str, cells, rows: list[str], comma: bool, bad: list[tuple[int, str]]) -> Column:
    """A numeric column when any cell is a number (the others are bad cells), else text."""
    values = np.full(len(cells), np.nan)
    wrong = []
    numeric = False
    for r, raw in enumerate(cells):
        v = raw.strip()
        if v.lower() in MISSING:
            continue
        try:
            values[r] = float(v.replace(",", ".") if comma else v)
            numeric = True
        except ValueError:
            wrong.append(r)
    if not numeric:
        return Column(name, None, [None if c.strip().lower() in MISSING else c.strip() for c in cells])
    for r in wrong:
        bad.append((r, f"{rows[r]}: column {shorten(name)!r} is not numeric ({shown(cells[r])})"))
    for r in np.flatnonzero(~np.isfinite(values) & ~np.isnan(values)):
        bad.append((r, f"{rows[r]}: column {shorten(name)!r} is not a finite number ({shown(cells[r])})"))
    for r in np.flatnonzero(np.abs(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)) > FLOAT32_MAX):
        bad.append(
            (
                r,
                f"{rows[r]}: column {shorten(name)!r} is beyond float32's range ({shown(cells[r])}; at most ±3.4e38)",
            )
        )
    for r in wrong:
        values[r] = 0.0  # counted as bad already; not missing
    values[~np.isfinite(values) & ~np.isnan(values)] = 0.0
    return Column(name, values, None)


# ------------------------------------------------------------------ reading Arrow tables


def arrow_table(table, where: str) -> RawTable:
    """A pyarrow Table's columns: numbers as float64 (null → missing), text and booleans as
    text cells; other types (lists, images) are refused by name."""
    pa = require("pyarrow", "Parquet and Arrow files")

    out = RawTable(where, [], [f"row {i + 1}" for i in range(table.num_rows)])
    for name in table.column_names:
        col = table.column(name)
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            values = col.to_numpy(zero_copy_only=False).astype(np.float64)
            out.columns.append(Column(name, values, None))
            for r in np.flatnonzero(np.isinf(values))[:BAD_CELLS_SHOWN]:
                out.bad.append((int(r), f"row {r + 1}: column {shorten(name)!r} is not a finite number"))
        elif (
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_boolean(t)
            or pa.types.is_dictionary(t)
        ):
            cells = [None if v is None else str(v) for v in col.to_pylist()]
            out.columns.append(
                Column(name, None, [None if c is None or c.strip().lower() in MISSING else c for c in cells])
            )
        else:
            out.columns.append(Column(name, None, None))  # refused if used as a feature
    return out


# ------------------------------------------------------------------ features and target


@dataclass
class Table:
    """A table as features (float64, missing values handled, categories one-hot) and a target."""

    where: str
    target: str
    features: list[str]  # after one-hot encoding ("color=red")
    x: np.ndarray
    raw_y: list[str]
    objective: str  # classification | regression
    classes: list[str]
    notes: list[str] = field(default_factory=list)  # what was done: "one-hot: color (3)", "dropped 4 rows"


def build_table(
    raw: RawTable, data: dict, objective: str = "auto", default_target: str | None = None
) -> Table:
    """Features and target of a table, every cell checked; see the module docstring."""
    where = raw.where
    names = [c.name for c in raw.columns]
    target = data.get("target") or default_target or names[-1]
    if target not in names:
        raise DataError(f"{where}: no column named {shorten(target)!r} (columns: {listed(names)})")
    features = [c for c in raw.columns if c.name != target]
    if not features:
        raise DataError(f"{where}: needs at least one feature column besides the target {target!r}")
    t = raw.columns[names.index(target)]
    categorical = set(data.get("categorical") or [])
    unknown = sorted(categorical - set(names))
    bad = [msg for _, msg in sorted(raw.bad, key=lambda b: b[0])]
    if unknown:
        bad.append(f"data.categorical names no column {listed(unknown)} (columns: {listed(names)})")
    kinds = {}
    for c in features:
        if c.numbers is not None and c.name not in categorical:
            kinds[c.name] = "number"
        elif c.texts is None and c.numbers is None:
            bad.append(
                f"column {shorten(c.name)!r} holds neither numbers nor text; leave it out of the table"
            )
        else:
            levels = {v for v in _texts(c) if v is not None}
            if c.name in categorical or len(levels) <= max(2, min(50, len(raw.rows) // 2)):
                kinds[c.name] = "category"
            else:
                bad.append(
                    f"column {shorten(c.name)!r} is free text ({len(levels):,} distinct values in "
                    f"{len(raw.rows):,} rows): leave it out, or list it in data.categorical to one-hot encode it"
                )
    raw_y = [None if v is None else v for v in _texts(t)]
    if t.numbers is not None:
        raw_y = [None if math.isnan(v) else _number_text(v) for v in t.numbers]

    # --- missing values: every affected column named with its lines, or rows dropped, or imputed
    missing_rows = np.zeros(len(raw.rows), dtype=bool)
    by_column: dict[str, list[int]] = {}
    for c in features:
        gaps = (
            np.flatnonzero(np.isnan(c.numbers))
            if c.numbers is not None
            else [i for i, v in enumerate(c.texts or []) if v is None]
        )
        if len(gaps):
            by_column[c.name] = list(gaps)
            missing_rows[gaps] = True
    target_gaps = [i for i, v in enumerate(raw_y) if v is None]
    mode = data.get("missing", "error")
    notes = []
    if target_gaps and mode != "drop":
        bad.append(
            f"the target {shorten(target)!r} is missing on {_rows(raw.rows, target_gaps)}; "
            "set data.missing to 'drop' to leave those rows out"
        )
    if by_column and mode == "error":
        parts = [f"column {shorten(name)!r} on {_rows(raw.rows, gaps)}" for name, gaps in by_column.items()]
        bad.append(
            f"missing values in {int(missing_rows.sum()):,} row{'s' if missing_rows.sum() > 1 else ''}: "
            + "; ".join(parts[:BAD_CELLS_SHOWN])
            + (f" (and {len(parts) - BAD_CELLS_SHOWN} more columns)" if len(parts) > BAD_CELLS_SHOWN else "")
            + "; set data.missing to 'drop' or 'mean'"
        )
    if bad:
        more = f" (and {len(bad) - BAD_CELLS_SHOWN:,} more bad cells)" if len(bad) > BAD_CELLS_SHOWN else ""
        hint = (
            "; features must be numbers (list categorical columns in data.categorical, or choose such a "
            "column as the target)"
            if any("is not numeric (" in b for b in bad)
            else ""
        )
        raise DataError(f"{where}: " + "; ".join(bad[:BAD_CELLS_SHOWN]) + more + hint)
    keep = np.ones(len(raw.rows), dtype=bool)
    if mode == "drop":
        keep = ~missing_rows
        keep[target_gaps] = False
        if (~keep).any():
            notes.append(f"dropped {int((~keep).sum()):,} rows with missing values")
        if keep.sum() < 2:
            raise DataError(
                f"{where}: only {int(keep.sum())} row(s) left after dropping rows with missing values"
            )
    rows = np.flatnonzero(keep)
    y = [raw_y[i] for i in rows]

    # --- the features, in column order; categories one-hot over every value seen
    train_rows = None
    if mode == "mean" and by_column:
        train_rows, _ = split(len(rows), data["val_fraction"], data["split_seed"])
        notes.append(f"imputed missing values in {len(by_column)} column(s) from the training split")
    blocks, names_out = [], []
    for c in features:
        if kinds[c.name] == "number":
            v = c.numbers[rows].copy()
            if np.isnan(v).any():
                fill = np.nanmean(v[train_rows]) if train_rows is not None else 0.0
                v[np.isnan(v)] = 0.0 if np.isnan(fill) else fill
            blocks.append(v[:, None])
            names_out.append(c.name)
            continue
        cells = [_texts(c)[i] for i in rows]
        if any(v is None for v in cells):
            seen = [cells[i] for i in train_rows if cells[i] is not None] if train_rows is not None else []
            fill = Counter(seen).most_common(1)[0][0] if seen else "(missing)"
            cells = [fill if v is None else v for v in cells]
        levels = sorted(set(cells), key=_class_order)
        if len(levels) > MAX_LEVELS:
            raise DataError(
                f"{where}: column {shorten(c.name)!r} has {len(levels):,} categories; at most {MAX_LEVELS:,} are one-hot encoded"
            )
        index = {v: i for i, v in enumerate(levels)}
        onehot = np.zeros((len(rows), len(levels)))
        onehot[np.arange(len(rows)), [index[v] for v in cells]] = 1.0
        blocks.append(onehot)
        names_out += [f"{c.name}={v}" for v in levels]
        notes.append(f"one-hot: {shorten(c.name)} ({len(levels)})")
    x = np.concatenate(blocks, axis=1)

    # --- the target: classes, or numbers for a regression
    if objective == "auto":
        objective = "classification" if _looks_categorical(y) else "regression"
    classes: list[str] = []
    if objective == "classification":
        classes = sorted(set(y), key=_class_order)
        check_classes(where, classes, f"the target {target!r}")
    else:
        wrong = []
        for i, v in zip(rows, y, strict=True):
            try:
                number = float(v.replace(",", ".") if _COMMA_DECIMAL.match(v) else v)
            except ValueError:
                wrong.append(
                    f"{raw.rows[i]}: column {shorten(target)!r} is not numeric ({shown(v)}) (a regression target)"
                )
                continue
            if not math.isfinite(number):
                wrong.append(f"{raw.rows[i]}: column {shorten(target)!r} is not a finite number ({shown(v)})")
        if wrong:
            more = (
                f" (and {len(wrong) - BAD_CELLS_SHOWN:,} more bad cells)"
                if len(wrong) > BAD_CELLS_SHOWN
                else ""
            )
            raise DataError(f"{where}: " + "; ".join(wrong[:BAD_CELLS_SHOWN]) + more)
    return Table(where, target, names_out, x, y, objective, classes, notes)


def _texts(c: Column) -> list[str | None]:
    if c.texts is not None:
        return c.texts
    return [None if math.isnan(v) else _number_text(v) for v in c.numbers]


def _number_text(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _rows(rows: list[str], picks) -> str:
    """'lines 3, 9 and 12' (the first LINES_SHOWN, then a count)."""
    picks = list(picks)
    kind = rows[picks[0]].split()[0]
    nums = [rows[i].split()[1] for i in picks[:LINES_SHOWN]]
    more = f" and {len(picks) - LINES_SHOWN:,} more" if len(picks) > LINES_SHOWN else ""
    if len(nums) == 1 and not more:
        return f"{kind} {nums[0]}"
    body = ", ".join(nums[:-1]) + (f", {nums[-1]}" if more else f" and {nums[-1]}")
    return f"{kind}s {body}{more}"


def _looks_categorical(values: list[str]) -> bool:
    try:
        nums = [float(v) for v in values]
    except ValueError:
        return True
    return all(math.isfinite(n) and n.is_integer() for n in nums) and len(set(nums)) <= 20


def _class_order(c: str):
    try:
        return (0, float(c), c)
    except ValueError:
        return (1, 0.0, c)


# ------------------------------------------------------------------ data sets


def table_dataset(table: Table, data: dict, name: str) -> Dataset:
    x, n = table.x, len(table.raw_y)
    description = f"{n} rows, {len(table.features)} features, target {table.target!r}" + "".join(
        f"; {note}" for note in table.notes
    )
    if table.objective == "classification":
        index = {c: i for i, c in enumerate(table.classes)}
        y = np.array([index[v] for v in table.raw_y], dtype=np.int64)
        return classification_set(name, x, y, table.classes, data, description)
    y = np.array([float(v.replace(",", ".")) for v in table.raw_y], dtype=np.float32).reshape(-1, 1)
    tr, va = split(n, data["val_fraction"], data["split_seed"])
    xt, xv = standardize(x[tr], x[va])
    return Dataset(name, "regression", xt, y[tr], xv, y[va], [], description)


def table_info(table: Table, data: dict, name: str) -> DataInfo:
    n, f = table.x.shape
    n_train, n_val = split_sizes(n, data["val_fraction"])
    classify = table.objective == "classification"
    return DataInfo(
        name,
        table.objective,
        (f,),
        "float",
        len(table.classes) if classify else 1,
        n_train,
        n_val,
        n * (4 * f + (8 if classify else 4)),
        table.classes,
        f"{n} rows, {f} features, target {table.target!r}" + "".join(f"; {note}" for note in table.notes),
    )


def csv_table(data: dict, objective: str = "auto") -> Dataset:
    return table_dataset(build_table(read_csv(data), data, objective), data, Path(data["path"]).name)


def describe_csv(data: dict, objective: str = "auto") -> DataInfo:
    return table_info(build_table(read_csv(data), data, objective), data, Path(data["path"]).name)
