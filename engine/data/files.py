"""User files: CSV tables, image folders (one sub-folder per class) and plain text.

Each kind has one reader that makes every check (`read_table`, `image_classes` with
`open_image`, `read_text`); the loaders and `describe_*` (what `trainbench validate` reports
without loading) both call them, so a file is refused with the same message either way.
Only regular files are opened: a FIFO or a device named as data is refused, not read.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.dataset import (
    VOCAB,
    DataInfo,
    Dataset,
    check_classes,
    classification_set,
    split,
    split_sizes,
    standardize,
)
from engine.errors import DataError
from engine.fields import listed, shorten, shown
from engine.jsonfile import read_bytes, regular_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MISSING = {"", "na", "nan", "null", "none", "?"}
FLOAT32_MAX = float(np.finfo(np.float32).max)  # samples are float32: larger values become inf
BAD_CELLS_SHOWN = 5  # bad cells named in one message; the rest are counted
IMAGES_DECODED = 2  # per class, by `describe_images`; every file's header is read


# ------------------------------------------------------------------ CSV


def read_csv(path: str) -> tuple[list[str], list[list[str]]]:
    """(header, data rows) of a CSV file with as many fields in every row as in the header."""
    header, rows = _csv_rows(path)
    return header, [row for _, row in rows]


def _csv_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    p = regular_file(path, "CSV file")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [(reader.line_num, r) for r in reader if r]
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise DataError(f"{p}: not a readable CSV file ({shorten(str(err), 200)})") from None
    except OSError as err:
        raise DataError(f"{p}: cannot read the CSV file ({err.strerror or err})") from None
    if not rows:
        raise DataError(f"{p}: the file is empty")
    (_, header), body = rows[0], rows[1:]
    if not body:
        raise DataError(f"{p}: has a header but no data rows")
    ragged = [(line, len(row)) for line, row in body if len(row) != len(header)]
    if ragged:
        shown_lines = "; ".join(f"line {line} has {n} fields" for line, n in ragged[:BAD_CELLS_SHOWN])
        more = f" (and {len(ragged) - BAD_CELLS_SHOWN:,} more lines)" if len(ragged) > BAD_CELLS_SHOWN else ""
        raise DataError(f"{p}: {shown_lines}{more}, the header has {len(header)}")
    return header, body


@dataclass
class Table:
    """A CSV file's features as numbers and its target column as text, every cell checked."""

    path: str
    target: str
    features: list[str]
    x: np.ndarray  # float64, rows × features
    raw_y: list[str]
    objective: str  # classification | regression
    classes: list[str]


def read_table(path: str, target: str | None, objective: str = "auto") -> Table:
    """Parse and check a CSV data set: the target column exists, every feature cell is a finite
    number within float32 range, no target is missing, a classification target has two
    classes or more. Every bad cell is found; the first few are named in the error."""
    header, rows = _csv_rows(path)
    target = target or header[-1]
    if target not in header:
        raise DataError(f"{path}: no column named {shorten(target)!r} (columns: {listed(header)})")
    t = header.index(target)
    features = [c for i, c in enumerate(header) if i != t]
    if not features:
        raise DataError(f"{path}: needs at least one feature column besides the target {target!r}")
    bad: list[str] = []
    x = np.empty((len(rows), len(features)), dtype=np.float64)
    for r, (line, row) in enumerate(rows):
        for c, value in enumerate(v for i, v in enumerate(row) if i != t):
            x[r, c] = _number(value, line, features[c], bad)
    raw_y = [row[t].strip() for _, row in rows]
    for (line, _), v in zip(rows, raw_y, strict=True):
        if v.lower() in MISSING:
            bad.append(f"line {line}: the target {shorten(target)!r} is missing")
    if objective == "auto" and not bad:
        objective = "classification" if _looks_categorical(raw_y) else "regression"
    classes: list[str] = []
    if objective == "classification" and not bad:
        classes = sorted(set(raw_y), key=_class_order)
        check_classes(path, classes, f"the target {target!r}")
    elif objective == "regression":
        for (line, _), v in zip(rows, raw_y, strict=True):
            if v.lower() not in MISSING:
                _number(v, line, target, bad, feature=False)
    if bad:
        more = f" (and {len(bad) - BAD_CELLS_SHOWN:,} more bad cells)" if len(bad) > BAD_CELLS_SHOWN else ""
        hint = (
            "; features must be numbers (encode categories first, or choose such a column as the target)"
            if any("is not numeric (" in b and not b.endswith("target)") for b in bad)
            else ""
        )
        raise DataError(f"{path}: " + "; ".join(bad[:BAD_CELLS_SHOWN]) + more + hint)
    return Table(path, target, features, x, raw_y, objective, classes)


def csv_table(data: dict, objective: str = "auto") -> Dataset:
    table = read_table(data["path"], data["target"], objective)
    x, path, n = table.x, table.path, len(table.raw_y)
    if table.objective == "classification":
        index = {c: i for i, c in enumerate(table.classes)}
        y = np.array([index[v] for v in table.raw_y], dtype=np.int64)
        return classification_set(
            Path(path).name,
            x,
            y,
            table.classes,
            data,
            f"{n} rows, {len(table.features)} features, target {table.target!r}",
        )
    y = np.array([float(v) for v in table.raw_y], dtype=np.float32).reshape(-1, 1)
    tr, va = split(n, data["val_fraction"], data["split_seed"])
    xt, xv = standardize(x[tr], x[va])
    return Dataset(
        Path(path).name, "regression", xt, y[tr], xv, y[va], [], f"{n} rows, target {table.target!r}"
    )


def describe_csv(data: dict, objective: str = "auto") -> DataInfo:
    table = read_table(data["path"], data["target"], objective)
    n, f = table.x.shape
    n_train, n_val = split_sizes(n, data["val_fraction"])
    classify = table.objective == "classification"
    return DataInfo(
        Path(table.path).name,
        table.objective,
        (f,),
        "float",
        len(table.classes) if classify else 1,
        n_train,
        n_val,
        n * (4 * f + (8 if classify else 4)),
        table.classes,
        f"{n} rows, {f} features, target {table.target!r}",
    )


def _number(value: str, line: int, column: str, bad: list[str], feature: bool = True) -> float:
    """The cell as a number; a bad cell is described in `bad` (and 0 returned) so that one pass
    finds them all."""
    v = value.strip()
    where = f"line {line}: column {shorten(column)!r}"
    if v.lower() in MISSING:
        bad.append(f"{where} is missing a value")
        return 0.0
    try:
        number = float(v)
    except ValueError:
        bad.append(f"{where} is not numeric ({shown(value)})" + ("" if feature else " (a regression target)"))
        return 0.0
    if not math.isfinite(number):
        bad.append(f"{where} is not a finite number ({shown(value)})")
        return 0.0
    if abs(number) > FLOAT32_MAX:
        bad.append(f"{where} is beyond float32's range ({shown(value)}; at most ±3.4e38)")
        return 0.0
    return number


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


# ------------------------------------------------------------------ image folders


def image_classes(path: str) -> list[tuple[str, list[Path]]]:
    """(class name, image files) for every class sub-folder, checked: a folder with two classes
    or more, each with at least one image (hidden files and folders are skipped)."""
    root = Path(path)
    try:
        if not root.exists():
            raise DataError(f"{root}: image folder not found")
        if not root.is_dir():
            raise DataError(f"{root}: expected a folder with one sub-folder per class")
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(classes) < 2:
            raise DataError(f"{root}: needs at least two class sub-folders, found {len(classes)}")
        out = []
        for cls in classes:
            files = sorted(
                f
                for f in (root / cls).iterdir()
                if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
            )
            if not files:
                raise DataError(f"{root / cls}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out.append((cls, files))
    except (OSError, ValueError) as err:  # permissions, a vanished folder, a symlink loop, a NUL
        where = getattr(err, "filename", None) or root
        raise DataError(
            f"{where}: cannot read the image folder ({getattr(err, 'strerror', None) or err})"
        ) from None
    return out


def open_image(f: Path):
    """A PIL image with its header read and checked; the pixels are decoded on first use.

    PIL only warns up to twice its MAX_IMAGE_PIXELS limit; any image above the limit is refused
    here, since a 40,000 × 40,000 PNG of a few KB decodes to gigabytes."""
    from PIL import Image

    regular_file(f, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(f)
    except Image.DecompressionBombError as err:  # over twice the limit: PIL refuses it itself
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels"
        raise DataError(
            f"{f}: {size} is more than PIL's limit of {Image.MAX_IMAGE_PIXELS:,} (a decompression bomb?)"
        ) from None
    except Exception as err:  # noqa: BLE001 - PIL's plugins raise many kinds on bad files
        raise DataError(f"{f}: cannot decode image ({_reason(err)})") from None
    w, h = im.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and w * h > limit:
        im.close()
        raise DataError(
            f"{f}: {w:,}×{h:,} pixels is more than PIL's limit of {limit:,} (a decompression bomb?)"
        )
    if w < 1 or h < 1:
        im.close()
        raise DataError(f"{f}: an empty image ({w}×{h})")
    return im


def decode_image(f: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as a (C, H, W) float32 array in [0, 1], `size` = (height, width)."""
    h, w = size
    with open_image(f) as im:
        try:
            arr = np.asarray(im.convert(mode).resize((w, h)), dtype=np.float32) / 255.0
        except Exception as err:  # noqa: BLE001 - truncated or corrupt data, PIL's many kinds
            raise DataError(f"{f}: cannot decode image ({_reason(err)})") from None
    return arr[None] if mode == "L" else arr.transpose(2, 0, 1)


def image_format(data: dict) -> tuple[str, tuple[int, int]]:
    """(PIL mode, (height, width)) the images are read as."""
    size = data["image_size"]
    h, w = size[:2] if len(size) >= 2 else (size[0], size[0])
    return ("L" if data["grayscale"] else "RGB"), (h, w)


def image_folder(data: dict) -> Dataset:
    root = Path(data["path"])
    mode, size = image_format(data)
    classes = image_classes(data["path"])
    xs, ys = [], []
    for label, (_, files) in enumerate(classes):
        for f in files:
            xs.append(decode_image(f, mode, size))
            ys.append(label)
    names = [c for c, _ in classes]
    return classification_set(
        root.name,
        np.stack(xs),
        np.array(ys),
        names,
        data,
        f"{len(xs)} images, {len(names)} classes",
        scale=False,
    )


def describe_images(data: dict) -> DataInfo:
    """Every image's header is read (its format and size), and a few per class are decoded."""
    mode, size = image_format(data)
    classes = image_classes(data["path"])
    n = 0
    for _, files in classes:
        for i, f in enumerate(files):
            if i < IMAGES_DECODED:
                decode_image(f, mode, (1, 1))
            else:
                open_image(f).close()
        n += len(files)
    channels = 1 if mode == "L" else 3
    n_train, n_val = split_sizes(n, data["val_fraction"])
    names = [c for c, _ in classes]
    return DataInfo(
        Path(data["path"]).name,
        "classification",
        (channels, *size),
        "float",
        len(names),
        n_train,
        n_val,
        n * (4 * channels * size[0] * size[1] + 8),
        names,
        f"{n} images, {len(names)} classes",
    )


# ------------------------------------------------------------------ text


def read_text(path: str) -> bytes:
    """A text data set's bytes: a regular file, not empty, UTF-8 (any UTF-8 text works, since
    the vocabulary is the 256 byte values; other bytes mean the file is not text)."""
    p = Path(path)
    raw = read_bytes(p, "text file")
    if not raw:
        raise DataError(f"{p}: the file is empty")
    _check_utf8(p, raw)
    return raw


def _check_utf8(p: Path, raw: bytes) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    step = 1 << 20
    for start in range(0, len(raw), step):
        try:
            decoder.decode(raw[start : start + step], final=start + step >= len(raw))
        except UnicodeDecodeError as err:
            raise DataError(
                f"{p}: not UTF-8 text ({err.reason} at byte {start + err.start:,}); a text data set must be UTF-8"
            ) from None


def text_windows(p: Path, n_bytes: int, ctx: int, val_fraction: float) -> tuple[int, int]:
    """(train windows, validation windows) of a text of `n_bytes`, or the error if too short."""
    n_val = int(n_bytes * val_fraction)
    if n_bytes - n_val < ctx + 1 or n_val < ctx + 1:
        need = int(2 * (ctx + 1) / min(val_fraction, 1 - val_fraction))
        raise DataError(
            f"{p}: {n_bytes:,} bytes is too short for context {ctx} with val_fraction {val_fraction} "
            f"(each split needs at least {ctx + 1} bytes; at least ~{need:,} in all)"
        )
    return (n_bytes - n_val - 1) // ctx, (n_val - 1) // ctx


def text_file(data: dict) -> Dataset:
    """Byte-level language modelling: vocabulary of 256, so any UTF-8 text works unchanged.

    The validation text is the file's tail (not random windows), so no window straddles both.
    """
    p = Path(data["path"])
    raw = np.frombuffer(read_text(data["path"]), dtype=np.uint8).astype(np.int64)
    ctx = data["context"]
    text_windows(p, len(raw), ctx, data["val_fraction"])
    n_val = int(len(raw) * data["val_fraction"])
    train, val = raw[: len(raw) - n_val], raw[len(raw) - n_val :]
    xt, yt = _windows(train, ctx)
    xv, yv = _windows(val, ctx)
    return Dataset(p.name, "language_model", xt, yt, xv, yv, [], f"{len(raw):,} bytes, context {ctx}")


def describe_text(data: dict) -> DataInfo:
    p = Path(data["path"])
    n = len(read_text(data["path"]))
    ctx = data["context"]
    n_train, n_val = text_windows(p, n, ctx, data["val_fraction"])
    nbytes = (n_train + n_val) * ctx * 8 * 2
    return DataInfo(
        p.name, "language_model", (ctx,), "long", VOCAB, n_train, n_val, nbytes, [], f"{n:,} bytes"
    )


def _windows(tokens: np.ndarray, ctx: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows; targets are inputs shifted by one byte."""
    n = (len(tokens) - 1) // ctx
    x = tokens[: n * ctx].reshape(n, ctx)
    y = tokens[1 : n * ctx + 1].reshape(n, ctx)
    return x, y


def _reason(err: Exception) -> str:
    return shorten(str(err), 200) or type(err).__name__
