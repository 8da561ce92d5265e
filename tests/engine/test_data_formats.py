"""The formats users have on disk, generated here (nothing is downloaded) and trained on for a
short epoch through the real runner: CIFAR-10/100 binary batches, IDX (plain and .gz), NumPy
.npz/.npy, Parquet tables and `datasets` save_to_disk folders; and each one's bad cases with
their one-line error. The writers are shared with the other data tests."""

from __future__ import annotations

import gzip
import io
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from engine.data import describe, load_dataset
from engine.errors import DataError
from engine.fields import check_fields
from engine.runner import execute
from engine.spec import SECTIONS, validate_spec
from engine.store import RunStore


def data(**kw) -> dict:
    problems: list = []
    out = check_fields(SECTIONS["data"], kw, "data", problems)
    assert not problems, problems
    return out


def pictures(n: int, size: int = 8, classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N×size×size×3 uint8 images a model can tell apart: class c is brightest in channel c % 3
    and its top half (even c) or bottom half (odd c), under noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    x = rng.integers(0, 90, (n, size, size, 3)).astype(np.uint8)
    for i, c in enumerate(labels):
        rows = slice(0, size // 2) if c % 2 == 0 else slice(size // 2, size)
        x[i, rows, :, c % 3] += 150
    return x, labels.astype(np.int64)


def write_cifar(folder, n_train: int = 40, n_test: int = 20, hundred: bool = False):
    """CIFAR-10 (data_batch_*.bin, test_batch.bin) or CIFAR-100 (train.bin, test.bin) records."""
    folder.mkdir(parents=True, exist_ok=True)
    classes = 100 if hundred else 10

    def records(n, seed):
        x, y = pictures(n, 32, classes, seed)
        pixels = x.transpose(0, 3, 1, 2).reshape(n, -1)
        labels = np.stack([y // 5, y], axis=1) if hundred else y[:, None]
        return np.concatenate([labels.astype(np.uint8), pixels], axis=1).tobytes()

    if hundred:
        (folder / "train.bin").write_bytes(records(n_train, 1))
        (folder / "test.bin").write_bytes(records(n_test, 2))
        (folder / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)) + "\n")
    else:
        half = n_train // 2
        (folder / "data_batch_1.bin").write_bytes(records(half, 1))
        (folder / "data_batch_2.bin").write_bytes(records(n_train - half, 3))
        (folder / "test_batch.bin").write_bytes(records(n_test, 2))
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        (folder / "batches.meta.txt").write_text("\n".join(names) + "\n")
    return folder


def write_idx(path, array: np.ndarray, gz: bool = False):
    dims = array.shape
    raw = (
        b"\0\0\x08"
        + bytes([len(dims)])
        + struct.pack(f">{len(dims)}I", *dims)
        + array.astype(np.uint8).tobytes()
    )
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_mnist(folder, n_train: int = 40, n_test: int = 20, gz: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        x, y = pictures(n, 28, 10, seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", x[..., 0], gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", y, gz)
    return folder


def png_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="PNG")
    return buf.getvalue()


def mlp(inputs, outputs: int, hidden: int = 0) -> dict:
    """Flatten → (Linear → ReLU) → Linear: small enough that an epoch takes a moment."""
    nodes = [{"id": "x", "op": "Input", "params": {"shape": list(inputs)}}]
    if len(inputs) > 1:
        nodes.append({"id": "flat", "op": "Flatten"})
    if hidden:
        nodes += [
            {"id": "h", "op": "Linear", "params": {"out_features": hidden}},
            {"id": "act", "op": "ReLU"},
        ]
    nodes.append({"id": "out", "op": "Linear", "params": {"out_features": outputs}})
    edges = [{"from": a["id"], "to": b["id"]} for a, b in zip(nodes, nodes[1:], strict=False)]
    return {"nodes": nodes, "edges": edges}


def train_once(db_path, model: dict, data_section: dict, **train) -> dict:
    """One short epoch through the real runner; the completed run's record."""
    spec = validate_spec(
        {
            "name": "data-test",
            "model": model,
            "data": {"num_workers": 0, **data_section},
            "train": {"epochs": 1, "batch_size": 8, **train},
            "hardware": {"threads": 1},
        }
    )
    rid, status = execute(db_path, spec)
    run = RunStore(db_path).get_run(rid)
    assert status == "completed", run["error"]
    return run


# ------------------------------------------------------------------ CIFAR


def test_cifar10_binary_batches_train_with_their_test_batch_as_validation(tmp_path, db_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-bin")
    run = train_once(db_path, mlp([3, 32, 32], 10), {"source": "cifar", "path": str(tmp_path)})
    ds = run["summary"]["dataset"]
    assert ds["train_samples"] == 40 and ds["val_samples"] == 20 and ds["input_shape"] == [3, 32, 32]
    loaded = load_dataset(data(source="cifar", path=str(folder), normalize=False))
    assert loaded.classes[0] == "airplane" and len(loaded.classes) == 10
    x, y = pictures(20, 32, 10, 2)  # the test batch, pixel for pixel
    np.testing.assert_allclose(loaded.x_val, x.transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    assert loaded.y_val.tolist() == y.tolist()


def test_cifar100_uses_the_fine_labels(tmp_path):
    folder = write_cifar(tmp_path / "c100", hundred=True)
    loaded = load_dataset(data(source="cifar", path=str(folder)))
    assert loaded.output_size == 100 and loaded.classes[7] == "fine7"
    assert loaded.y_train.tolist() == (np.arange(40) % 100).tolist()
    assert describe(data(source="cifar", path=str(folder))).train_samples == 40


def test_the_pickle_version_of_cifar_is_refused_unopened(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    bomb = tmp_path / "opened"
    payload = pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (folder / name).write_bytes(payload)
    for read in (describe, load_dataset):
        with pytest.raises(
            DataError, match="Python \\(pickle\\) version of CIFAR.*never unpickles.*binary version"
        ):
            read(data(source="cifar", path=str(tmp_path)))
    assert not bomb.exists()


def test_a_cifar_batch_of_the_wrong_size_is_named(tmp_path):
    folder = write_cifar(tmp_path / "c")
    (folder / "data_batch_2.bin").write_bytes(b"\0" * 3000)
    with pytest.raises(DataError, match=r"data_batch_2.bin: 3,000 bytes is not a whole number of 3,073-byte"):
        describe(data(source="cifar", path=str(folder)))


# ------------------------------------------------------------------ IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_plain_or_gzip_train(tmp_path, db_path, gz):
    folder = write_mnist(tmp_path / "mnist", gz=gz)
    run = train_once(db_path, mlp([1, 28, 28], 10), {"source": "idx", "path": str(folder)})
    assert run["summary"]["dataset"]["train_samples"] == 40 and run["summary"]["dataset"]["val_samples"] == 20
    one = load_dataset(data(source="idx", path=str(folder / f"train-images-idx3-ubyte{'.gz' if gz else ''}")))
    assert one.input_shape == (1, 28, 28) and len(one.x_train) + len(one.x_val) == 40  # split by val_fraction


def test_idx_mistakes_are_named(tmp_path):
    folder = write_mnist(tmp_path / "m")
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(39, np.uint8))
    with pytest.raises(DataError, match="40 images of \\(28, 28\\) but 39 labels"):
        describe(data(source="idx", path=str(folder)))
    (folder / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="not an IDX file"):
        describe(data(source="idx", path=str(folder)))
    raw = (folder / "t10k-images-idx3-ubyte").read_bytes()
    (folder / "t10k-images-idx3-ubyte").write_bytes(raw[:-5])
    with pytest.raises(DataError, match="the header declares 15,696 bytes, the file holds 15,691"):
        describe(data(source="idx", path=str(folder / "t10k-images-idx3-ubyte")))


# ------------------------------------------------------------------ NumPy


def test_npz_features_train_a_regression(tmp_path, db_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 10)).astype(np.float32)
    y = (x[:, :3].sum(1, keepdims=True) ** 2).astype(np.float32)
    np.savez(tmp_path / "reg.npz", x=x, y=y)
    run = train_once(db_path, mlp([10], 1, hidden=20), {"source": "numpy", "path": str(tmp_path / "reg.npz")})
    assert run["summary"]["dataset"]["objective"] == "regression" and "val/rmse" in run["summary"]


def test_npy_pair_of_images_trains_and_named_keys_are_read(tmp_path, db_path):
    x, y = pictures(48, 8, 3)
    np.save(tmp_path / "images.npy", x)  # N×H×W×C, channels last
    np.save(tmp_path / "labels.npy", y)
    section = {"source": "numpy", "path": str(tmp_path), "x_key": "images", "y_key": "labels"}
    run = train_once(db_path, mlp([3, 8, 8], 3), section)
    assert (
        run["summary"]["dataset"]["input_shape"] == [3, 8, 8]
        and run["summary"]["dataset"]["output_size"] == 3
    )


def test_numpy_files_are_never_unpickled(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))
    for read in (describe, load_dataset):
        with pytest.raises(DataError, match=r"obj.npz\[x\]: holds Python objects .* would need unpickling"):
            read(data(source="numpy", path=str(tmp_path / "obj.npz")))
    np.savez(tmp_path / "keys.npz", inputs=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match="no array 'x' \\(arrays: inputs, y\\); set data.x_key"):
        load_dataset(data(source="numpy", path=str(tmp_path / "keys.npz")))
    np.savez(tmp_path / "len.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match="x has 4 samples but y has 3"):
        describe(data(source="numpy", path=str(tmp_path / "len.npz")))


# ------------------------------------------------------------------ Parquet and datasets folders


def test_parquet_table_with_a_categorical_column_trains(tmp_path, db_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 60
    rng = np.random.default_rng(0)
    colour = [["red", "green", "blue"][i % 3] for i in range(n)]
    table = pa.table({"size": rng.normal(size=n), "colour": colour, "label": [i % 2 for i in range(n)]})
    pq.write_table(table, tmp_path / "t.parquet")
    section = {"source": "parquet", "path": str(tmp_path / "t.parquet")}
    info = describe(data(**section))
    assert info.input_shape == (4,) and info.output_size == 2  # size + three colours one-hot
    train_once(db_path, mlp([4], 2), section)


def test_parquet_image_bytes_with_labels_train(tmp_path, db_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, y = pictures(32, 8, 2)
    pq.write_table(pa.table({"image": [png_bytes(i) for i in x], "label": y}), tmp_path / "img.parquet")
    run = train_once(db_path, mlp([3, 8, 8], 2), {"source": "parquet", "path": str(tmp_path / "img.parquet")})
    assert run["summary"]["dataset"]["train_samples"] + run["summary"]["dataset"]["val_samples"] == 32


def test_datasets_save_to_disk_images_with_class_names_train(tmp_path, db_path):
    datasets = pytest.importorskip("datasets")
    x, y = pictures(40, 8, 2)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["up", "down"])}
    )
    whole = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(i) for i in x], "label": y.tolist()}, features=features
    )
    datasets.DatasetDict(
        {"train": whole.select(range(32)), "test": whole.select(range(32, 40))}
    ).save_to_disk(str(tmp_path / "hf"))
    run = train_once(db_path, mlp([3, 8, 8], 2), {"source": "hf_disk", "path": str(tmp_path / "hf")})
    ds = run["summary"]["dataset"]
    assert ds["train_samples"] == 32 and ds["val_samples"] == 8
    assert load_dataset(data(source="hf_disk", path=str(tmp_path / "hf"))).classes == ["up", "down"]


def test_a_folder_that_save_to_disk_did_not_write_is_named(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a folder written by datasets' save_to_disk"):
        describe(data(source="hf_disk", path=str(tmp_path)))
