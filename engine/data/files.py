"""User files: CSV tables, image folders (one sub-folder per class) and plain text."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from engine.data import Dataset, classification_set, split, standardize
from engine.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MISSING = {"", "na", "nan", "null", "none", "?"}


def _existing(path: str, kind: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: {kind} not found")
    return p


def read_csv(path: str) -> tuple[list[str], list[list[str]]]:
    p = _existing(path, "CSV file")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a CSV file")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r]
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise DataError(f"{p}: not a readable CSV file ({err})") from None
    if not rows:
        raise DataError(f"{p}: the file is empty")
    header, body = rows[0], rows[1:]
    if not body:
        raise DataError(f"{p}: has a header but no data rows")
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{p}: line {i} has {len(row)} fields, the header has {len(header)}")
    return header, body


def csv_table(data: dict, objective: str) -> Dataset:
    path = data["path"]
    header, rows = read_csv(path)
    target = data["target"] or header[-1]
    if target not in header:
        raise DataError(f"{path}: no column named {target!r} (columns: {', '.join(header)})")
    t = header.index(target)
    features = [c for i, c in enumerate(header) if i != t]
    if not features:
        raise DataError(f"{path}: needs at least one feature column besides the target {target!r}")

    x = np.empty((len(rows), len(features)), dtype=np.float64)
    for r, row in enumerate(rows):
        for c, value in enumerate(v for i, v in enumerate(row) if i != t):
            x[r, c] = _number(value, path, r + 2, features[c])

    raw_y = [row[t].strip() for row in rows]
    for r, v in enumerate(raw_y):
        if v.lower() in MISSING:
            raise DataError(f"{path}: line {r + 2}: the target {target!r} is missing")
    if objective == "auto":
        objective = "classification" if _looks_categorical(raw_y) else "regression"
    if objective == "classification":
        classes = sorted(set(raw_y), key=_class_order)
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[v] for v in raw_y], dtype=np.int64)
        return classification_set(
            Path(path).name,
            x,
            y,
            classes,
            data,
            f"{len(rows)} rows, {len(features)} features, target {target!r}",
        )
    y = np.array([_number(v, path, r + 2, target) for r, v in enumerate(raw_y)], dtype=np.float32).reshape(
        -1, 1
    )
    tr, va = split(len(x), data["val_fraction"], data["split_seed"])
    xt, xv = standardize(x[tr], x[va])
    return Dataset(
        Path(path).name, "regression", xt, y[tr], xv, y[va], [], f"{len(rows)} rows, target {target!r}"
    )


def _number(value: str, path: str, line: int, column: str) -> float:
    v = value.strip()
    if v.lower() in MISSING:
        raise DataError(f"{path}: line {line}: column {column!r} is missing a value")
    try:
        return float(v)
    except ValueError:
        raise DataError(
            f"{path}: line {line}: column {column!r} is not numeric ({value!r}); "
            "features must be numbers (encode categories first, or choose this column as the target)"
        ) from None


def _looks_categorical(values: list[str]) -> bool:
    try:
        nums = [float(v) for v in values]
    except ValueError:
        return True
    return all(n.is_integer() for n in nums) and len(set(nums)) <= 20


def _class_order(c: str):
    try:
        return (0, float(c), c)
    except ValueError:
        return (1, 0.0, c)


def image_folder(data: dict, objective: str) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    root = _existing(data["path"], "image folder")
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder with one sub-folder per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: needs at least two class sub-folders, found {len(classes)}")
    h, w = data["image_size"][:2] if len(data["image_size"]) >= 2 else data["image_size"] * 2
    mode = "L" if data["grayscale"] else "RGB"
    xs, ys = [], []
    for label, cls in enumerate(classes):
        files = sorted(f for f in (root / cls).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{root / cls}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for f in files:
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert(mode).resize((w, h)), dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError) as err:
                raise DataError(f"{f}: cannot decode image ({err})") from None
            xs.append(arr[None] if mode == "L" else arr.transpose(2, 0, 1))
            ys.append(label)
    x = np.stack(xs)
    return classification_set(
        root.name, x, np.array(ys), classes, data, f"{len(xs)} images, {len(classes)} classes", scale=False
    )


def text_file(data: dict, objective: str) -> Dataset:
    """Byte-level language modelling: vocabulary of 256, so any UTF-8 text works unchanged.

    The validation text is the file's tail (not random windows), so no window straddles both.
    """
    p = _existing(data["path"], "text file")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a text file")
    raw = np.frombuffer(p.read_bytes(), dtype=np.uint8).astype(np.int64)
    ctx = data["context"]
    n_val = int(len(raw) * data["val_fraction"])
    need = 2 * (ctx + 1)
    if len(raw) - n_val < ctx + 1 or n_val < ctx + 1:
        raise DataError(
            f"{p}: {len(raw)} bytes is too short for context {ctx} with val_fraction {data['val_fraction']} "
            f"(each split needs at least {ctx + 1} bytes; at least ~{int(need / min(data['val_fraction'], 1 - data['val_fraction']))} in all)"
        )
    train, val = raw[: len(raw) - n_val], raw[len(raw) - n_val :]
    xt, yt = _windows(train, ctx)
    xv, yv = _windows(val, ctx)
    return Dataset(p.name, "language_model", xt, yt, xv, yv, [], f"{len(raw):,} bytes, context {ctx}")


def _windows(tokens: np.ndarray, ctx: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows; targets are inputs shifted by one byte."""
    n = (len(tokens) - 1) // ctx
    x = tokens[: n * ctx].reshape(n, ctx)
    y = tokens[1 : n * ctx + 1].reshape(n, ctx)
    return x, y
