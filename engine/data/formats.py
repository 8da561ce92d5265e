"""The formats users already have on disk, read without a download and without unpickling:
image folders, MNIST-style IDX files (plain or .gz), the CIFAR-10/100 binary batches, NumPy
.npy/.npz (`allow_pickle=False`), Parquet tables and Hugging Face `datasets` folders written
by `save_to_disk` (Arrow files, read with pyarrow: `datasets` itself is not imported).

Each reader returns an `ImageSource` (pictures and labels, decoded later, see
`engine.data.images`), a `RawTable` of features (see `engine.data.tables`) or, for text in a
`datasets` folder, the Arrow table its corpus reads. `describe`-side callers pass
`headers_only`: sizes and shapes come from headers, file sizes and metadata, not the pixels.
"""

from __future__ import annotations

import gzip
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.dataset import require
from engine.data.images import IMAGE_SUFFIXES, ArrayImages, EncodedImages, FileImages, ImageSet
from engine.errors import DataError
from engine.fields import listed, shorten
from engine.jsonfile import regular_file


@dataclass
class ImageSource:
    """Pictures with labels: one set split by val_fraction, or a train set and a test set."""

    name: str
    classes: list[str]
    train: ImageSet
    train_labels: np.ndarray
    val: ImageSet | None = None  # the format's own test split, used for validation
    val_labels: np.ndarray | None = None
    native_size: tuple[int, int] | None = None  # (height, width) of array formats
    description: str = ""

    @property
    def one_channel(self) -> bool:
        """Arrays of one channel (IDX, grayscale NumPy) stay one channel; files become RGB
        unless data.grayscale says otherwise."""
        return (
            isinstance(self.train, ArrayImages)
            and self.train.pixels.ndim == 4
            and self.train.pixels.shape[1] == 1
        )


def _folder(p: Path, what: str) -> Path:
    try:
        if not p.exists():
            raise DataError(f"{p}: {what} not found")
        if not p.is_dir():
            raise DataError(f"{p}: expected a folder ({what})")
    except OSError as err:
        raise DataError(f"{p}: cannot read the folder ({err.strerror or err})") from None
    return p


# ------------------------------------------------------------------ image folders


def image_folder(data: dict) -> ImageSource:
    """(class name, image files) for every class sub-folder, checked: a folder with two classes
    or more, each with at least one image (hidden files and folders are skipped)."""
    root = Path(data["path"])
    try:
        if not root.exists():
            raise DataError(f"{root}: image folder not found")
        if not root.is_dir():
            raise DataError(f"{root}: expected a folder with one sub-folder per class")
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(classes) < 2:
            raise DataError(f"{root}: needs at least two class sub-folders, found {len(classes)}")
        files, labels = [], []
        for label, cls in enumerate(classes):
            found = sorted(
                f
                for f in (root / cls).iterdir()
                if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
            )
            if not found:
                raise DataError(f"{root / cls}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files += found
            labels += [label] * len(found)
    except (OSError, ValueError) as err:  # permissions, a vanished folder, a symlink loop, a NUL
        where = getattr(err, "filename", None) or root
        raise DataError(
            f"{where}: cannot read the image folder ({getattr(err, 'strerror', None) or err})"
        ) from None
    images = FileImages(files)
    return ImageSource(
        root.name,
        classes,
        images,
        np.asarray(labels, dtype=np.int64),
        native_size=first_size(images),
        description=f"{len(files)} images, {len(classes)} classes",
    )


def first_size(images: ImageSet) -> tuple[int, int] | None:
    """(height, width) of the first of the first few images whose header reads: the size image
    files are read at unless data.image_size says otherwise."""
    for i in range(min(len(images), 8)):
        try:
            with images.image(i) as im:
                return im.height, im.width
        except DataError:
            continue
    return None


# ------------------------------------------------------------------ CIFAR binary


CIFAR_PICKLE = {"data_batch_1", "batches.meta", "test_batch", "meta", "train", "test"}


def cifar(data: dict, headers_only: bool = False) -> ImageSource:
    """The CIFAR-10 (`data_batch_1.bin` … `test_batch.bin`, `batches.meta.txt`) or CIFAR-100
    (`train.bin`, `test.bin`, `fine_label_names.txt`) binary batches; the test batch is the
    validation split. The Python version (pickles) is refused, never opened."""
    root = _folder(Path(data["path"]), "CIFAR folder")
    for sub in ("cifar-10-batches-bin", "cifar-100-binary", "cifar-10-batches-py", "cifar-100-python"):
        if (root / sub).is_dir():
            root = root / sub
            break
    names = {f.name for f in root.iterdir() if f.is_file()}
    if not any(n.endswith(".bin") for n in names) and names & CIFAR_PICKLE:
        raise DataError(
            f"{root}: this is the Python (pickle) version of CIFAR, and Trainbench never unpickles a file; "
            "use the binary version (cifar-10-binary.tar.gz: data_batch_1.bin … test_batch.bin, or "
            "cifar-100-binary.tar.gz: train.bin, test.bin) and point data.path at its folder"
        )
    if "train.bin" in names:  # CIFAR-100: coarse and fine label bytes, then 3,072 pixels
        train_files, test_files, label_bytes, meta = ["train.bin"], ["test.bin"], 2, "fine_label_names.txt"
        default = [str(i) for i in range(100)]
    else:
        train_files = sorted(n for n in names if n.startswith("data_batch_") and n.endswith(".bin"))
        test_files, label_bytes, meta = ["test_batch.bin"], 1, "batches.meta.txt"
        default = [str(i) for i in range(10)]
    missing = [n for n in [*train_files, *test_files] if n not in names] or (
        [] if train_files else ["data_batch_1.bin"]
    )
    if missing:
        raise DataError(
            f"{root}: no {listed(missing)} (the CIFAR binary batches); found {listed(sorted(names))}"
        )
    record = label_bytes + 3072
    meta_path = root / meta
    classes = default
    if meta_path.is_file():
        classes = [
            line.strip() for line in meta_path.read_text(errors="replace").splitlines() if line.strip()
        ]

    def read(files):
        sizes = [(root / n).stat().st_size for n in files]
        for n, size in zip(files, sizes, strict=True):
            if size == 0 or size % record:
                raise DataError(
                    f"{root / n}: {size:,} bytes is not a whole number of {record:,}-byte CIFAR records"
                )
        if headers_only:
            count = sum(sizes) // record
            return ArrayImages(np.zeros((0, 3, 32, 32), np.uint8), str(root)), count
        raw = np.concatenate([np.fromfile(root / n, dtype=np.uint8).reshape(-1, record) for n in files])
        labels = raw[:, label_bytes - 1].astype(np.int64)
        if labels.max() >= len(classes):
            raise DataError(f"{root}: label {labels.max()} but {len(classes)} class names in {meta}")
        return ArrayImages(raw[:, label_bytes:].reshape(-1, 3, 32, 32), str(root)), labels

    train, train_labels = read(train_files)
    val, val_labels = read(test_files)
    return _counted(
        ImageSource(root.name, classes, train, train_labels, val, val_labels, (32, 32)),
        f"CIFAR-{len(default)} binary, {len(classes)} classes",
    )


def _counted(src: ImageSource, text: str) -> ImageSource:
    n_train = src.train_labels if isinstance(src.train_labels, int) else len(src.train_labels)
    n_val = src.val_labels if isinstance(src.val_labels, int) else len(src.val_labels)
    src.description = f"{text}; {n_train:,} train / {n_val:,} test images"
    return src


# ------------------------------------------------------------------ IDX (MNIST, Fashion-MNIST)


def _idx_header(p: Path) -> tuple[int, tuple[int, ...], int]:
    """(element code, dims, data bytes on disk) of an IDX file, plain or gzip."""
    regular_file(p, "IDX file")
    try:
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[:2] != b"\0\0":
                raise DataError(f"{p}: not an IDX file (its magic number is {head.hex() or 'missing'})")
            code, ndim = head[2], head[3]
            dims = struct.unpack(f">{ndim}I", fh.read(4 * ndim))
        if p.suffix == ".gz":
            with open(p, "rb") as fh:  # gzip's footer: the uncompressed size mod 2^32
                fh.seek(-4, 2)
                size = struct.unpack("<I", fh.read(4))[0]
        else:
            size = p.stat().st_size
    except (OSError, EOFError, struct.error) as err:
        raise DataError(f"{p}: cannot read the IDX file ({getattr(err, 'strerror', None) or err})") from None
    if code != 0x08:
        raise DataError(f"{p}: IDX element type 0x{code:02x}; only unsigned bytes (0x08, as MNIST) are read")
    want = 4 + 4 * len(dims) + int(np.prod(dims))
    if size % 2**32 != want % 2**32:
        raise DataError(f"{p}: the header declares {want:,} bytes, the file holds {size:,}")
    return code, tuple(dims), size


def _idx_array(p: Path) -> np.ndarray:
    _, dims, _ = _idx_header(p)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as fh:
        raw = fh.read()
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def _idx_pair(images: Path) -> Path:
    name = images.name.replace("images", "labels").replace("idx3", "idx1")
    labels = images.with_name(name)
    if name == images.name or not labels.exists():
        raise DataError(f"{images}: no labels file beside it ({name})")
    return labels


def idx(data: dict, headers_only: bool = False) -> ImageSource:
    """MNIST-style IDX files: `path` is the folder (train-images-idx3-ubyte[.gz] and its
    labels, and t10k-* as the validation split when present) or one images file."""
    p = Path(data["path"])
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if "idx3" in f.name and "images" in f.name)
        train = [f for f in files if f.name.startswith("train")] or files[:1]
        test = [f for f in files if f.name.startswith(("t10k", "test"))]
        if not train:
            raise DataError(f"{p}: no IDX images file (train-images-idx3-ubyte or .gz)")
        pairs = [(train[0], _idx_pair(train[0]))] + ([(test[0], _idx_pair(test[0]))] if test else [])
    else:
        pairs = [(p, _idx_pair(p))]
    out = []
    for images, labels in pairs:
        _, dims, _ = _idx_header(images)
        _, ldims, _ = _idx_header(labels)
        if len(dims) != 3 or len(ldims) != 1 or dims[0] != ldims[0]:
            raise DataError(
                f"{images}: {dims[0]:,} images of {dims[1:]} but {ldims[0]:,} labels in {labels.name}"
            )
        if headers_only:
            out.append((ArrayImages(np.zeros((0, 1, *dims[1:]), np.uint8), str(images)), dims[0]))
        else:
            out.append(
                (ArrayImages(_idx_array(images)[:, None], str(images)), _idx_array(labels).astype(np.int64))
            )
    n_classes = 10
    if not headers_only:
        n_classes = max(10, int(max(lab.max() for _, lab in out)) + 1)
    classes = [str(i) for i in range(n_classes)]
    (train_set, train_labels), *rest = out
    val_set, val_labels = rest[0] if rest else (None, None)
    src = ImageSource(
        pairs[0][0].parent.name if p.is_dir() else p.name,
        classes,
        train_set,
        train_labels,
        val_set,
        val_labels,
        tuple(_idx_header(pairs[0][0])[1][1:]),
    )
    return _counted(src, "IDX images") if val_set is not None else _described(src, "IDX images")


def _described(src: ImageSource, text: str) -> ImageSource:
    n = src.train_labels if isinstance(src.train_labels, int) else len(src.train_labels)
    src.description = f"{text}; {n:,} images, {len(src.classes)} classes"
    return src


# ------------------------------------------------------------------ NumPy


def _npy_header(fh, where: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(fh)
        read = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(fh)
    except (ValueError, OSError) as err:
        raise DataError(f"{where}: not a NumPy array file ({shorten(str(err), 160)})") from None
    if dtype.hasobject:
        raise DataError(
            f"{where}: holds Python objects (dtype {dtype}), which would need unpickling; save numeric arrays"
        )
    return tuple(shape), dtype


@dataclass
class NumpyArrays:
    x: np.ndarray  # memory-mapped where the format allows (.npy), else loaded
    y: np.ndarray
    where: str


def numpy_arrays(data: dict, headers_only: bool = False) -> NumpyArrays:
    """x and y from an .npz (keys data.x_key / data.y_key), or two .npy files: `path` is the x
    file (its partner is data.y_key + '.npy' beside it) or their folder."""
    p = Path(data["path"])
    xk, yk = data.get("x_key") or "x", data.get("y_key") or "y"
    if p.is_dir():
        xp, yp = p / f"{xk}.npy", p / f"{yk}.npy"
    elif p.suffix == ".npy":
        xp, yp = p, p.with_name(f"{yk}.npy")
    else:
        xp = yp = None
    if xp is not None:
        arrays = []
        for f in (xp, yp):
            regular_file(f, "NumPy file")
            with open(f, "rb") as fh:
                shape, dtype = _npy_header(fh, str(f))
            arrays.append(
                np.zeros((0, *shape[1:]), dtype)
                if headers_only
                else np.load(f, mmap_mode="r", allow_pickle=False)
            )
            if headers_only:
                arrays[-1] = _Shaped(shape, dtype)
        return _checked(NumpyArrays(arrays[0], arrays[1], str(p)))
    regular_file(p, "NumPy file")
    try:
        with zipfile.ZipFile(p) as zf:
            members = {n.removesuffix(".npy"): n for n in zf.namelist()}
            missing = [k for k in (xk, yk) if k not in members]
            if missing:
                raise DataError(
                    f"{p}: no array {', '.join(map(repr, missing))} (arrays: {listed(sorted(members))}); "
                    "set data.x_key / data.y_key"
                )
            arrays = []
            for k in (xk, yk):
                with zf.open(members[k]) as fh:
                    shape, dtype = _npy_header(fh, f"{p}[{k}]")
                if headers_only:
                    arrays.append(_Shaped(shape, dtype))
                else:
                    with zf.open(members[k]) as fh:
                        arrays.append(np.lib.format.read_array(fh, allow_pickle=False))
    except zipfile.BadZipFile:
        raise DataError(f"{p}: not an .npz file (a zip of .npy arrays)") from None
    except OSError as err:
        raise DataError(f"{p}: cannot read the NumPy file ({err.strerror or err})") from None
    return _checked(NumpyArrays(arrays[0], arrays[1], str(p)))


@dataclass
class _Shaped:
    """An array's shape and dtype, read from its header (no data)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0


def _checked(a: NumpyArrays) -> NumpyArrays:
    for name, arr in (("x", a.x), ("y", a.y)):
        if arr.ndim == 0 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise DataError(
                f"{a.where}: {name} must be a numeric array with one row per sample, got {arr.dtype} {arr.shape}"
            )
    if len(a.x) != len(a.y):
        raise DataError(f"{a.where}: x has {len(a.x):,} samples but y has {len(a.y):,}")
    if a.x.ndim not in (2, 3, 4):
        raise DataError(
            f"{a.where}: x is {a.x.shape}; expected samples × features, or images N×H×W / N×C×H×W"
        )
    if a.y.ndim > 2:
        raise DataError(f"{a.where}: y is {a.y.shape}; expected one label or target row per sample")
    return a


def numpy_is_images(a: NumpyArrays) -> bool:
    return a.x.ndim in (3, 4)


def numpy_images(a: NumpyArrays) -> ImageSource:
    x = np.asarray(a.x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # N×H×W×C
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] not in (1, 3):
        raise DataError(f"{a.where}: images with {x.shape[1]} channels; expected 1 or 3")
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
        if np.nanmax(x) > 1.0 or np.nanmin(x) < 0.0 or not np.isfinite(x).all():
            raise DataError(f"{a.where}: float images must hold values in [0, 1] (or save them as uint8)")
    y = np.asarray(a.y).reshape(-1)
    classes, labels = _labels(y, a.where)
    return _described(
        ImageSource(
            Path(a.where).name, classes, ArrayImages(x, a.where), labels, native_size=tuple(x.shape[2:])
        ),
        "NumPy images",
    )


def _labels(y: np.ndarray, where: str) -> tuple[list[str], np.ndarray]:
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise DataError(f"{where}: image labels must be whole numbers, got {y.dtype}")
    values = np.unique(y)
    index = {v: i for i, v in enumerate(values.tolist())}
    return [str(v) for v in values.tolist()], np.asarray([index[v] for v in y.tolist()], dtype=np.int64)


# ------------------------------------------------------------------ Parquet and `datasets` folders


def _image_column(table) -> str | None:
    """The first column of encoded images: binary, or a struct with a `bytes` field (HF Image)."""
    pa = require("pyarrow", "Parquet and Arrow files")

    for f in getattr(table, "schema", table):
        t = f.type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return f.name
        if pa.types.is_struct(t) and any(t.field(i).name == "bytes" for i in range(t.num_fields)):
            return f.name
    return None


def has_image_column(data: dict) -> bool:
    """Whether a Parquet file's schema or a `datasets` folder's features hold images."""
    if data["source"] == "parquet":
        pq = require("pyarrow.parquet", "Parquet and Arrow files")

        schema = pq.read_schema(regular_file(data["path"], "Parquet file"))
        return _image_column(schema) is not None
    root = Path(data["path"])
    infos = list(root.glob("*/dataset_info.json")) + list(root.glob("dataset_info.json"))
    for info in infos[:1]:
        features = json.loads(info.read_text()).get("features") or {}
        return any(isinstance(f, dict) and f.get("_type") == "Image" for f in features.values())
    return False


def parquet_table(data: dict):
    pq = require("pyarrow.parquet", "Parquet and Arrow files")

    p = regular_file(data["path"], "Parquet file")
    try:
        return pq.read_table(p)
    except Exception as err:  # noqa: BLE001 - pyarrow's ArrowInvalid and friends
        raise DataError(f"{p}: not a readable Parquet file ({shorten(str(err), 160)})") from None


def hf_splits(data: dict) -> tuple[dict[str, object], dict]:
    """The Arrow tables of a `save_to_disk` folder by split name ("train", "test", …; one
    nameless split for a plain Dataset), and its features' description."""
    pa = require("pyarrow", "Parquet and Arrow files")

    root = _folder(Path(data["path"]), "datasets folder")
    if (root / "dataset_dict.json").is_file():
        try:
            splits = json.loads((root / "dataset_dict.json").read_text())["splits"]
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{root / 'dataset_dict.json'}: not a datasets split list") from None
        folders = {s: root / s for s in splits}
    elif (root / "state.json").is_file():
        folders = {"train": root}
    else:
        raise DataError(
            f"{root}: not a folder written by datasets' save_to_disk (no dataset_dict.json or state.json)"
        )
    tables, features = {}, {}
    for name, folder in folders.items():
        try:
            state = json.loads((folder / "state.json").read_text())
            files = [folder / f["filename"] for f in state["_data_files"]]
            info = json.loads((folder / "dataset_info.json").read_text())
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{folder}: a damaged datasets folder ({shorten(str(err), 120)})") from None
        features = info.get("features") or features
        parts = []
        for f in files:
            try:
                parts.append(pa.ipc.open_stream(pa.memory_map(str(f))).read_all())
            except Exception as err:  # noqa: BLE001 - pyarrow's errors
                raise DataError(f"{f}: not a readable Arrow file ({shorten(str(err), 120)})") from None
        tables[name] = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    return tables, features


def arrow_images(tables: dict, features: dict, data: dict, where: str) -> ImageSource | None:
    """The image source of Arrow tables with an image column (None when they have none)."""
    first = next(iter(tables.values()))
    column = _image_column(first)
    if column is None:
        return None
    target = data.get("target") or "label"
    if target not in first.column_names:
        raise DataError(
            f"{where}: no label column {target!r} (columns: {listed(first.column_names)}); set data.target"
        )
    names = (features.get(target) or {}).get("names")

    def labels_of(table):
        y = np.asarray(table.column(target).to_numpy(zero_copy_only=False))
        return y

    train_t = tables.get("train", first)
    val_t = next((tables[s] for s in ("test", "validation", "valid") if s in tables), None)
    y_all = np.concatenate([labels_of(train_t)] + ([labels_of(val_t)] if val_t is not None else []))
    if names is None:
        classes, _ = _labels(y_all, where)
        lookup = (
            {int(float(c)): i for i, c in enumerate(classes)}
            if np.issubdtype(y_all.dtype, np.number)
            else None
        )
    else:
        classes, lookup = list(names), None

    def relabel(y):
        if lookup is None:
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"{where}: labels of {target!r} must be integers")
            return y.astype(np.int64)
        return np.asarray([lookup[int(v)] for v in y], dtype=np.int64)

    train_images = EncodedImages(train_t.column(column), where)
    src = ImageSource(
        Path(where).name,
        classes,
        train_images,
        relabel(labels_of(train_t)),
        EncodedImages(val_t.column(column), where) if val_t is not None else None,
        relabel(labels_of(val_t)) if val_t is not None else None,
        first_size(train_images),
    )
    return (
        _counted(src, "images in Arrow tables") if val_t is not None else _described(src, "images in a table")
    )
