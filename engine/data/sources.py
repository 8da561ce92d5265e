"""From a spec's `data` section to what a run trains on, and to what `trainbench validate`
says about it without loading it.

Three kinds of data set come out, and the training loop feeds each its own way
(`engine.tasks.batches`):

  Dataset    arrays held whole (built-in sets, tables, NumPy features, and image arrays or
             cached images without augmentation): copied to the device once and indexed
  ImageData  pictures decoded, augmented and normalized one at a time, in DataLoader workers
  TokenData  a memory-mapped token file: random training windows, a fixed validation tail

Which images are held whole is decided here (`_resident`), once, for both sides: arrays
(CIFAR, IDX, NumPy) and `cache: memory` are held whole unless the training split is augmented;
image files and encoded bytes are decoded as they are needed; `cache: disk` decodes them once
into an 8-bit file in the cache folder that the workers then read.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from engine.data import formats, tables, tokens
from engine.data.augment import check_augment
from engine.data.dataset import DataInfo, Dataset, classification_set, split, split_sizes, standardize
from engine.data.images import (
    DEFAULT_SIZE,
    ArrayImages,
    ImagePipeline,
    ImageSplit,
    bad_files_error,
    channel_stats,
)
from engine.errors import DataError

IMAGES_DECODED = 2  # per class, by `describe`; every file's header is read


class ImageData:
    """Images decoded on demand: the DataLoader's workers call `train.sample(i, rng)`.
    `arrays()` (and `x_train`/`x_val`) decode a whole split, for the tasks that measure on it."""

    objective = "classification"
    input_dtype = "float"
    tokens_per_sample = 0

    def __init__(
        self,
        name: str,
        train: ImageSplit,
        val: ImageSplit,
        classes: list[str],
        description: str,
        skipped: list[str] | None = None,
        held: int = 0,
    ):
        self.name, self.train, self.val, self.classes = name, train, val, classes
        self.description, self.skipped, self.held = description, skipped or [], held
        self._arrays: Dataset | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.train.pipeline.channels, *self.train.pipeline.size)

    @property
    def output_size(self) -> int:
        return len(self.classes)

    def arrays(self) -> Dataset:
        if self._arrays is None:
            xt, yt = _decode_all(self.train)
            xv, yv = _decode_all(self.val)
            self._arrays = Dataset(
                self.name, "classification", xt, yt, xv, yv, self.classes, self.description
            )
        return self._arrays

    x_train = property(lambda self: self.arrays().x_train)
    y_train = property(lambda self: self.arrays().y_train)
    x_val = property(lambda self: self.arrays().x_val)
    y_val = property(lambda self: self.arrays().y_val)

    def info(self) -> DataInfo:
        return DataInfo(
            self.name,
            self.objective,
            self.input_shape,
            "float",
            len(self.classes),
            len(self.train),
            len(self.val),
            self.held,
            list(self.classes),
            self.description,
        )

    def summary(self) -> dict:
        p = self.train.pipeline
        return {
            "dataset": self.name,
            "objective": self.objective,
            "train_samples": len(self.train),
            "val_samples": len(self.val),
            "input_shape": list(self.input_shape),
            "output_size": self.output_size,
            **({"normalization": {"mean": list(p.mean), "std": list(p.std)}} if p.mean else {}),
            **({"skipped_files": len(self.skipped)} if self.skipped else {}),
        }

    def saved(self) -> dict:
        p = self.train.pipeline
        return {"normalization": {"mean": list(p.mean), "std": list(p.std)}} if p.mean else {}


def _decode_all(s: ImageSplit) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a split, without augmentation: vectorised for arrays at their own size."""
    p, images = s.pipeline, s.images
    if isinstance(images, ArrayImages) and images.pixels.shape[1:] == (p.channels, *p.size):
        x = np.asarray(images.pixels[s.indices])
        x = x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
        if p.mean is not None:
            x = (x - np.asarray(p.mean, np.float32)[:, None, None]) / np.asarray(p.std, np.float32)[
                :, None, None
            ]
        return np.ascontiguousarray(x, dtype=np.float32), s.labels.astype(np.int64)
    xs = [s.sample(i)[0] for i in range(len(s))]
    return np.stack(xs).astype(np.float32), s.labels.astype(np.int64)


# ------------------------------------------------------------------ images


def _size(data: dict, native) -> tuple[int, int]:
    size = data.get("image_size")
    if size:
        return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])
    return tuple(native) if native else DEFAULT_SIZE


def _count(labels) -> int:
    return labels if isinstance(labels, int) else len(labels)


def _streams_files(src: formats.ImageSource) -> bool:
    return not isinstance(src.train, ArrayImages)


def streamed(data: dict) -> bool:
    """Whether a run decodes this data set's samples in DataLoader workers (`_resident`'s rule,
    from the fields and a table's schema alone)."""
    source = data.get("source")
    augmented = bool(check_augment(data.get("augment"), []))
    if source in ("cifar", "idx", "numpy"):
        return augmented
    if source == "images":
        return augmented or data.get("cache") != "memory"
    if source in ("parquet", "hf_disk"):
        try:
            has_images = formats.has_image_column(data)
        except (DataError, OSError, ValueError):
            return False
        return has_images and (augmented or data.get("cache") != "memory")
    return False


def _resident(data: dict, src: formats.ImageSource) -> bool:
    """Whether the images are decoded once and held whole (see the module docstring)."""
    if check_augment(data.get("augment"), []):
        return False
    return not _streams_files(src) or data.get("cache") == "memory"


def _splits(data: dict, src: formats.ImageSource) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train indices, train labels, val indices, val labels) into src.train / src.val."""
    if src.val is not None:
        return np.arange(len(src.train)), src.train_labels, np.arange(len(src.val)), src.val_labels
    tr, va = split(len(src.train), data["val_fraction"], data["split_seed"])
    return tr, src.train_labels[tr], va, src.train_labels[va]


def image_data(data: dict, src: formats.ImageSource, log=None) -> ImageData | Dataset:
    log = log or (lambda msg: None)
    size = _size(data, src.native_size)
    skip = data.get("on_bad_file", "fail") == "skip"
    tr, ytr, va, yva = _splits(data, src)
    val_set = src.val if src.val is not None else src.train
    bad = src.train.check(range(len(src.train))) + (
        [] if src.val is None else [(i + len(src.train), m) for i, m in src.val.check(range(len(src.val)))]
    )
    skipped = []
    if bad and not skip:
        raise bad_files_error(bad, len(src.train) + (0 if src.val is None else len(src.val)))
    if bad:
        drop = {i for i, _ in bad}
        skipped = [m.partition(": ")[0] for _, m in bad]
        keep_tr = np.array([i not in drop for i in tr], dtype=bool)
        offset = 0 if src.val is None else len(src.train)
        keep_va = np.array([i + offset not in drop for i in va], dtype=bool)
        tr, ytr, va, yva = tr[keep_tr], ytr[keep_tr], va[keep_va], yva[keep_va]
        log(
            f"skipped {len(bad):,} images that cannot be decoded: "
            + ", ".join(skipped[:20])
            + (f" (and {len(skipped) - 20:,} more)" if len(skipped) > 20 else "")
        )
    augment = check_augment(data.get("augment"), [])
    plain = ImagePipeline(
        size, data.get("resize", "stretch"), data.get("grayscale", False) or src.one_channel
    )
    train = ImageSplit(src.train, tr, ytr, plain, skip)
    val = ImageSplit(val_set, va, yva, plain, skip)
    if data.get("cache") in ("memory", "disk") and _streams_files(src):
        train, val = _cached(data, src, train, val, log)
    mean, std = data.get("mean"), data.get("std")
    if data.get("normalize", True):
        if mean is None or std is None:
            computed = channel_stats(train)
            mean, std = mean or computed[0], std or computed[1]
        mean, std = (
            _per_channel(mean, plain.channels, "data.mean"),
            _per_channel(std, plain.channels, "data.std"),
        )
    else:
        mean = std = None
    pipeline = ImagePipeline(size, plain.resize, plain.grayscale, augment, mean, std)
    train = train.with_pipeline(pipeline)
    val = val.with_pipeline(ImagePipeline(size, plain.resize, plain.grayscale, {}, mean, std))
    resident = _resident(data, src)
    held = len(train) + len(val)
    held *= (
        (4 * math.prod((plain.channels, *size)) + 8)
        if resident
        else (math.prod((plain.channels, *size)) if data.get("cache") == "memory" else 0)
    )
    out = ImageData(src.name, train, val, src.classes, src.description, skipped, held)
    return out.arrays() if resident else out


def _per_channel(values, channels: int, where: str) -> tuple[float, ...]:
    values = list(values)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise DataError(f"{where}: {len(values)} values for {channels} channel(s)")
    return tuple(float(v) for v in values)


def _cached(data: dict, src, train: ImageSplit, val: ImageSplit, log) -> tuple[ImageSplit, ImageSplit]:
    """Every image decoded once at its final size, 8-bit: in memory, or in a file of the cache
    folder keyed by the files' names, sizes and mtimes and the decoding fields."""
    p = train.pipeline
    images = src.train if src.val is None else None
    if images is None:  # separate test images: cache each split on its own
        return _cached_split(data, train, log, "train"), _cached_split(data, val, log, "val")
    order = np.concatenate([train.indices, val.indices])
    whole = ImageSplit(images, order, np.concatenate([train.labels, val.labels]), p, train.skip)
    pixels = _pixels(data, whole, log, "all")
    arr = ArrayImages(pixels, images.name(0))
    n = len(train)
    return (
        ImageSplit(arr, np.arange(n), train.labels, p),
        ImageSplit(arr, np.arange(n, len(order)), val.labels, p),
    )


def _cached_split(data: dict, s: ImageSplit, log, tag: str) -> ImageSplit:
    pixels = _pixels(data, s, log, tag)
    return ImageSplit(ArrayImages(pixels, s.images.name(0)), np.arange(len(s)), s.labels, s.pipeline)


def _pixels(data: dict, s: ImageSplit, log, tag: str) -> np.ndarray:
    def decode() -> np.ndarray:
        out = np.empty((len(s), s.pipeline.channels, *s.pipeline.size), np.uint8)
        for i in range(len(s)):
            out[i] = np.clip(np.round(s.sample(i)[0] * 255), 0, 255)
        return out

    if data.get("cache") != "disk":
        log(f"decoding {len(s):,} images into memory")
        return decode()
    key = hashlib.blake2b(digest_size=16)
    key.update(repr((tag, s.pipeline.size, s.pipeline.resize, s.pipeline.grayscale)).encode())
    for i in s.indices:
        name = s.images.name(int(i))
        try:
            st = os.stat(name)
            key.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            key.update(name.encode())
    path = tokens.cache_dir() / "images" / f"{Path(data['path']).name}-{key.hexdigest()}.npy"
    if not path.exists():
        log(f"decoding {len(s):,} images into the cache file {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, decode())
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r", allow_pickle=False)


def describe_images(data: dict, src: formats.ImageSource) -> DataInfo:
    """Shapes and counts of an image source: every file's header is read, and a few images per
    class are decoded (the rest decode during the run)."""
    size = _size(data, src.native_size)
    channels = 1 if data.get("grayscale") or src.one_channel else 3
    n_train_all = _count(src.train_labels)
    if src.val is not None:
        n_train, n_val = n_train_all, _count(src.val_labels)
    else:
        n_train, n_val = split_sizes(n_train_all, data["val_fraction"])
    if _streams_files(src):
        bad = src.train.check(range(len(src.train))) + (
            [] if src.val is None else src.val.check(range(len(src.val)))
        )
        if bad and data.get("on_bad_file", "fail") == "fail":
            raise bad_files_error(bad, n_train_all + (0 if src.val is None else n_val))
        drop = {i for i, _ in bad}
        plain = ImagePipeline(size, data.get("resize", "stretch"), channels == 1)
        per_class: dict[int, int] = {}
        for i, label in enumerate(src.train_labels):
            if i in drop or per_class.get(int(label), 0) >= IMAGES_DECODED:
                continue
            per_class[int(label)] = per_class.get(int(label), 0) + 1
            with src.train.image(i) as im:
                plain.array(im, None, src.train.name(i))
        if drop:  # skipped: the counts the run will have
            kept = n_train_all - len(drop)
            n_train, n_val = split_sizes(kept, data["val_fraction"]) if src.val is None else (n_train, n_val)
    resident = _resident(data, src)
    per = (
        (4 * channels * size[0] * size[1] + 8)
        if resident
        else (channels * size[0] * size[1] if data.get("cache") == "memory" else 0)
    )
    return DataInfo(
        src.name,
        "classification",
        (channels, *size),
        "float",
        len(src.classes),
        n_train,
        n_val,
        (n_train + n_val) * per,
        list(src.classes),
        src.description,
    )


# ------------------------------------------------------------------ the per-source entry points


def load(data: dict, objective: str, log=None):
    source = data["source"]
    if source == "csv":
        return tables.csv_table(data, objective)
    if source == "images":
        return image_data(data, formats.image_folder(data), log)
    if source == "cifar":
        return image_data(data, formats.cifar(data), log)
    if source == "idx":
        return image_data(data, formats.idx(data), log)
    if source == "numpy":
        arrays = formats.numpy_arrays(data)
        if formats.numpy_is_images(arrays):
            return image_data(data, formats.numpy_images(arrays), log)
        return numpy_table(data, arrays, objective)
    if source in ("parquet", "hf_disk"):
        kind, value = _arrow(data, objective)
        if kind == "images":
            return image_data(data, value, log)
        if kind == "text":
            return tokens.text_data(data, log)
        return tables.table_dataset(value, data, Path(data["path"]).name)
    return tokens.text_data(data, log)


def describe(data: dict, objective: str) -> DataInfo:
    source = data["source"]
    if source == "csv":
        return tables.describe_csv(data, objective)
    if source == "images":
        return describe_images(data, formats.image_folder(data))
    if source == "cifar":
        return describe_images(data, formats.cifar(data, headers_only=True))
    if source == "idx":
        return describe_images(data, formats.idx(data, headers_only=True))
    if source == "numpy":
        arrays = formats.numpy_arrays(data)
        if formats.numpy_is_images(arrays):
            return describe_images(data, formats.numpy_images(arrays))
        return numpy_table(data, arrays, objective).info()
    if source in ("parquet", "hf_disk"):
        kind, value = _arrow(data, objective)
        if kind == "images":
            return describe_images(data, value)
        if kind == "text":
            return tokens.describe_text(data)
        return tables.table_info(value, data, Path(data["path"]).name)
    return tokens.describe_text(data)


def _arrow(data: dict, objective: str):
    """("images", ImageSource) | ("text", None) | ("table", Table) for a Parquet file or a
    `datasets` folder: images when a column holds image bytes, text for a language model (a
    text column and task.objective language_model), else a table of features."""
    if data["source"] == "parquet":
        table = formats.parquet_table(data)
        splits, features = {"train": table}, {}
    else:
        splits, features = formats.hf_splits(data)
    src = formats.arrow_images(splits, features, data, data["path"])
    if src is not None:
        return "images", src
    first = next(iter(splits.values()))
    target = data.get("target") or ("label" if "label" in first.column_names else None)
    field = data.get("text_field") or "text"
    if objective == "language_model" or (target is None and field in first.column_names):
        return "text", None
    raw = tables.arrow_table(splits.get("train", first), data["path"])
    default = "label" if "label" in first.column_names else None
    return "table", tables.build_table(raw, data, objective, default)


def numpy_table(data: dict, a: formats.NumpyArrays, objective: str) -> Dataset:
    """Features × samples from NumPy: integer targets are classes (unless task.objective says
    regression), float targets regression targets; features are standardized."""
    x = np.asarray(a.x, dtype=np.float64)
    y = np.asarray(a.y)
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, c = bad[0]
        raise DataError(
            f"{a.where}: x has {len(bad):,} values that are not finite numbers (first: sample {r}, feature {c})"
        )
    if objective == "auto":
        objective = "classification" if np.issubdtype(y.dtype, np.integer) and y.ndim == 1 else "regression"
    name = Path(a.where).name
    if objective == "classification":
        classes, labels = formats._labels(y.reshape(-1), a.where)
        from engine.data.dataset import check_classes

        check_classes(a.where, classes, "y")
        return classification_set(
            name, x, labels, classes, data, f"{len(x):,} samples, {x.shape[1]} features"
        )
    y = y.astype(np.float32).reshape(len(y), -1)
    if not np.isfinite(y).all():
        raise DataError(f"{a.where}: y has values that are not finite numbers")
    tr, va = split(len(x), data["val_fraction"], data["split_seed"])
    xt, xv = standardize(x[tr], x[va])
    return Dataset(
        name,
        "regression",
        xt,
        y[tr],
        xv,
        y[va],
        [],
        f"{len(x):,} samples, {x.shape[1]} features, {y.shape[1]} target(s)",
    )
