"""Images: every PIL mode converted correctly (a 16-bit PNG is not white), resize modes,
augmentations with torchvision.transforms.v2's semantics that are seeded per sample, the
training split only augmented, normalization computed and stored, caches, and bad files
failing with every one named or skipped with the run log saying which."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.data import augment, describe, load_dataset
from engine.data.images import ImagePipeline
from engine.errors import DataError, SpecError
from engine.spec import validate_spec
from engine.store import RunStore
from tests.engine.test_data_formats import data, mlp, pictures, train_once


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBENCH_CACHE", str(tmp_path / "cache"))


def folder(root, n: int = 12, size: int = 8, classes: int = 2):
    x, y = pictures(n, size, classes)
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"c{label}" / f"{i:03d}.png")
    return root


def pixels(im, grayscale=False, size=(4, 4)) -> np.ndarray:
    return ImagePipeline(size, grayscale=grayscale).array(im)


def test_a_16_bit_png_keeps_its_values(tmp_path):
    ramp = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
        gray, rgb = pixels(im, grayscale=True), pixels(im)
    np.testing.assert_allclose(gray[0], ramp / 65535.0, atol=1e-6)
    assert gray.max() < 0.95 and gray.min() == 0.0  # not white
    np.testing.assert_allclose(rgb, np.repeat(gray, 3, axis=0))


def test_palette_rgba_cmyk_and_grayscale_modes(tmp_path):
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    np.testing.assert_allclose(pixels(red.convert("P")).reshape(3, -1).mean(1), [1, 0, 0], atol=1e-6)
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent: composited over white
    np.testing.assert_allclose(pixels(clear), np.ones((3, 4, 4)), atol=1e-6)
    half = Image.new("LA", (4, 4), (0, 128))
    np.testing.assert_allclose(pixels(half, grayscale=True), np.full((1, 4, 4), 127 / 255), atol=1 / 255)
    palette_alpha = red.convert("RGBA")
    palette_alpha.putalpha(0)
    p = palette_alpha.convert("P")
    p.info["transparency"] = 0
    assert pixels(p).min() > 0.99
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # red in CMYK
    cmyk.save(tmp_path / "cmyk.jpg")
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
        np.testing.assert_allclose(pixels(im).reshape(3, -1).mean(1), [1, 0, 0], atol=0.05)
    gray = Image.new("L", (4, 4), 51)
    np.testing.assert_allclose(pixels(gray), np.full((3, 4, 4), 0.2), atol=1e-6)
    np.testing.assert_allclose(pixels(red, grayscale=True), np.full((1, 4, 4), 0.2989), atol=1 / 255)  # luma


def test_resize_modes(tmp_path):
    wide = Image.fromarray(np.tile(np.arange(8, dtype=np.uint8) * 30, (4, 1)))  # 8 wide, 4 high
    for mode in ("stretch", "crop", "pad"):
        x = ImagePipeline((4, 4), mode, grayscale=True).array(wide)
        assert x.shape == (1, 4, 4)
    padded = ImagePipeline((4, 4), "pad", grayscale=True).array(wide)
    assert (padded[0, 0] == 0).all() and (padded[0, 3] == 0).all() and padded[0, 1:3].max() > 0


def test_augmentations_follow_torchvision_and_their_seed():
    rng = np.random.default_rng
    x = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(augment.flip(x, rng(0), 1.0), x[:, :, ::-1])
    np.testing.assert_array_equal(augment.flip(x, rng(0), 0.0), x)
    box = augment.crop_box(rng(3), 100, 50, (0.08, 1.0), (3 / 4, 4 / 3))
    area = (box[2] - box[0]) * (box[3] - box[1])
    assert 0 <= box[0] < box[2] <= 100 and 0 <= box[1] < box[3] <= 50 and 0.08 * 5000 * 0.9 <= area <= 5000
    bright = augment.color_jitter(x, rng(1), 0.5, 0, 0, 0)
    factor = bright.mean() / x.mean()
    assert 0.5 <= factor <= 1.5 and not np.allclose(bright, x)
    hue = augment.color_jitter(x, rng(2), 0, 0, 0, 0.5)
    np.testing.assert_allclose(hue.max(0), x.max(0), atol=1e-5)  # a hue shift keeps the value (max)
    erased = augment.erase(x, rng(4), 1.0, (0.1, 0.2), (0.5, 2.0), 0.0)
    assert 0.05 < (erased == 0).mean() < 0.3
    pipeline = ImagePipeline(
        (8, 8),
        augment={
            "random_resized_crop": {"scale": [0.3, 1.0], "ratio": [0.75, 1.33]},
            "horizontal_flip": {"p": 0.5},
        },
    )
    im = Image.fromarray((x.transpose(1, 2, 0) * 255).astype(np.uint8))
    a, b = pipeline.array(im, rng([0, 5, 1])), pipeline.array(im, rng([0, 5, 1]))
    np.testing.assert_array_equal(a, b)  # the same (seed, step, index), the same augmentation
    assert not np.array_equal(a, pipeline.array(im, rng([0, 6, 1])))


def test_only_the_training_split_is_augmented_and_normalization_is_stored(tmp_path, db_path):
    root = folder(tmp_path / "imgs", n=24)
    section = {
        "source": "images",
        "path": str(root),
        "augment": {"horizontal_flip": True, "color_jitter": {"brightness": 0.3}},
    }
    ds = load_dataset(data(**section))
    val = ds.val.sample(0)[0]
    np.testing.assert_array_equal(val, ds.val.sample(0)[0])
    np.testing.assert_array_equal(val, ds.val.sample(0, None)[0])
    assert ds.train.pipeline.augment and not ds.val.pipeline.augment
    run = train_once(db_path, mlp([3, 8, 8], 2), section, batch_size=4)
    norm = run["summary"]["dataset"]["normalization"]
    assert len(norm["mean"]) == 3 and all(s > 0 for s in norm["std"])
    given = load_dataset(data(**section, mean=[0.5], std=[0.25]))
    assert given.train.pipeline.mean == (0.5, 0.5, 0.5)


def test_an_unknown_transform_is_a_spec_error():
    with pytest.raises(SpecError) as err:
        validate_spec(
            {
                "model": mlp([3, 8, 8], 2),
                "data": {"source": "digits", "augment": {"rotate": True, "horizontal_flip": {"p": 2}}},
            }
        )
    text = str(err.value)
    assert "data.augment.rotate: unknown transform (allowed: random_resized_crop" in text
    assert "data.augment.horizontal_flip.p: must be >= 0 and <= 1, got 2" in text


def test_caches_give_the_same_pixels(tmp_path):
    root = folder(tmp_path / "imgs")
    plain = load_dataset(data(source="images", path=str(root), normalize=False))
    memory = load_dataset(data(source="images", path=str(root), normalize=False, cache="memory"))
    disk = load_dataset(data(source="images", path=str(root), normalize=False, cache="disk"))
    np.testing.assert_allclose(memory.x_train, plain.x_train, atol=0.5 / 255)
    np.testing.assert_allclose(disk.x_val, plain.x_val, atol=0.5 / 255)
    assert list((tmp_path / "cache" / "images").glob("*.npy"))
    assert describe(data(source="images", path=str(root), cache="memory")).nbytes == memory.info().nbytes > 0
    assert describe(data(source="images", path=str(root))).nbytes == plain.info().nbytes == 0  # streamed


def test_bad_files_fail_with_every_one_named_or_are_skipped_and_logged(tmp_path, db_path):
    root = folder(tmp_path / "imgs", n=24)
    (root / "c0" / "zz-broken.png").write_bytes(b"not an image at all")
    (root / "c1" / "zz-empty.png").write_bytes(b"")
    section = {"source": "images", "path": str(root)}
    for read in (describe, load_dataset):
        with pytest.raises(DataError) as err:
            read(data(**section))
        text = str(err.value)
        assert (
            text.startswith("2 of 26 images cannot be decoded:")
            and "zz-broken.png: cannot decode image" in text
        )
        assert "zz-empty.png" in text and "set data.on_bad_file to 'skip'" in text
    run = train_once(db_path, mlp([3, 8, 8], 2), {**section, "on_bad_file": "skip"}, batch_size=4)
    log = (RunStore(db_path).artifacts_dir(run["id"]) / "run.log").read_text()
    assert "skipped 2 images that cannot be decoded" in log and "zz-broken.png" in log
    assert run["summary"]["dataset"]["train_samples"] + run["summary"]["dataset"]["val_samples"] == 24
