"""Images as a run sees them: decoded one at a time (in the DataLoader's workers), converted to
one or three channels whatever their mode, resized, augmented (training split only) and
normalized.

`ImageSet` is where the pictures come from — files in class folders, rows of an Arrow table
holding encoded bytes, or a uint8 array (CIFAR, IDX, NumPy) — and `ImagePipeline` is what is
done to each one; `ImageSplit` pairs the two with the labels, as a map-style data set.

Modes: PIL's `convert("L")` clips a 16-bit image to 255 (every pixel white), so 16-bit and
32-bit integer images are scaled by their bit depth instead; palette images with transparency
and RGBA / LA images are composited over white; CMYK, YCbCr and the rest go through PIL's RGB
conversion; grayscale becomes RGB by repeating the channel (and RGB grayscale by luma).
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data import augment as aug
from engine.errors import DataError
from engine.fields import shorten
from engine.jsonfile import regular_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
BAD_FILES_NAMED = 20  # undecodable files named in one error; the rest are counted
STATS_SAMPLE = 256  # training images whose pixels give the computed mean and std
DEFAULT_SIZE = (32, 32)  # when no image's size can be read


def open_image(f: Path | str | bytes, name: str | None = None):
    """A PIL image with its header read and checked; the pixels are decoded on first use.

    PIL only warns up to twice its MAX_IMAGE_PIXELS limit; any image above the limit is refused
    here, since a 40,000 × 40,000 PNG of a few KB decodes to gigabytes."""
    from PIL import Image

    if isinstance(f, bytes):
        source, name = io.BytesIO(f), name or "image"
    else:
        source = regular_file(f, "image")
        name = name or str(f)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
    except Image.DecompressionBombError as err:  # over twice the limit: PIL refuses it itself
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels"
        raise DataError(
            f"{name}: {size} is more than PIL's limit of {Image.MAX_IMAGE_PIXELS:,} (a decompression bomb?)"
        ) from None
    except Exception as err:  # noqa: BLE001 - PIL's plugins raise many kinds on bad files
        raise DataError(f"{name}: cannot decode image ({reason(err)})") from None
    w, h = im.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and w * h > limit:
        im.close()
        raise DataError(
            f"{name}: {w:,}×{h:,} pixels is more than PIL's limit of {limit:,} (a decompression bomb?)"
        )
    if w < 1 or h < 1:
        im.close()
        raise DataError(f"{name}: an empty image ({w}×{h})")
    return im


def to_channels(im, grayscale: bool):
    """`im` as "L" / "RGB" (8-bit) or "F" (scaled from 16/32-bit) ready for resizing."""
    from PIL import Image

    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im, dtype=np.float32)
        depth = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(arr / depth, 0.0, 1.0).astype(np.float32), "F")
    if mode == "F":
        return Image.fromarray(np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0), "F")
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im, mode = Image.alpha_composite(white, rgba).convert("RGB"), "RGB"
    want = "L" if grayscale else "RGB"
    return im if mode == want else im.convert(want)


@dataclass(frozen=True)
class ImagePipeline:
    """What is done to every image: size (height, width), resize mode, channels, the training
    augmentations, and normalization (per-channel mean/std, or none)."""

    size: tuple[int, int]
    resize: str = "stretch"  # stretch | crop | pad
    grayscale: bool = False
    augment: dict = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def array(self, im, rng: np.random.Generator | None = None, name: str = "image") -> np.ndarray:
        """One image as a C×H×W float32 array: augmented when `rng` is given (training)."""
        from PIL import Image

        try:
            im = to_channels(im, self.grayscale)
            crop = self.augment.get("random_resized_crop")
            if rng is not None and crop:
                box = aug.crop_box(rng, im.width, im.height, crop["scale"], crop["ratio"])
                im = im.resize(self.size[::-1], Image.BILINEAR, box=box)
            else:
                im = self._fit(im)
            x = np.asarray(im, dtype=np.float32)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - truncated or corrupt data, PIL's many kinds
            raise DataError(f"{name}: cannot decode image ({reason(err)})") from None
        if im.mode != "F":
            x = x / 255.0
        x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
        if x.shape[0] != self.channels:
            x = np.repeat(x, 3, axis=0) if x.shape[0] == 1 else aug._gray(x)
        if rng is not None:
            x = self._augment(x, rng)
        if self.mean is not None:
            x = (x - np.asarray(self.mean, np.float32)[:, None, None]) / np.asarray(self.std, np.float32)[
                :, None, None
            ]
        erasing = self.augment.get("random_erasing")
        if rng is not None and erasing:
            x = aug.erase(x, rng, erasing["p"], erasing["scale"], erasing["ratio"], erasing["value"])
        return np.ascontiguousarray(x, dtype=np.float32)

    def _fit(self, im):
        from PIL import Image

        h, w = self.size
        if im.size == (w, h):
            return im
        if self.resize == "stretch":
            return im.resize((w, h), Image.BILINEAR)
        scale = (max if self.resize == "crop" else min)(w / im.width, h / im.height)
        inner = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(inner, Image.BILINEAR)
        if self.resize == "crop":
            left, top = (inner[0] - w) // 2, (inner[1] - h) // 2
            return im.crop((left, top, left + w, top + h))
        canvas = Image.new(im.mode, (w, h))
        canvas.paste(im, ((w - inner[0]) // 2, (h - inner[1]) // 2))
        return canvas

    def _augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = self.augment
        if "horizontal_flip" in a:
            x = aug.flip(x, rng, a["horizontal_flip"]["p"])
        if "color_jitter" in a:
            x = aug.color_jitter(x, rng, **a["color_jitter"])
        return x


class ImageSet:
    """Where the images come from; `image(i)` opens one (a PIL image, pixels decoded on use)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def image(self, i: int):
        raise NotImplementedError

    def name(self, i: int) -> str:
        return f"image {i}"

    def check(self, indices) -> list[tuple[int, str]]:
        """(index, message) of the images in `indices` whose header does not read."""
        bad = []
        for i in indices:
            try:
                self.image(i).close()
            except DataError as err:
                bad.append((i, str(err)))
        return bad


class FileImages(ImageSet):
    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int):
        return open_image(self.files[i])

    def name(self, i: int) -> str:
        return str(self.files[i])


class EncodedImages(ImageSet):
    """Encoded image bytes, one per row (a Parquet or Arrow column); read on use."""

    def __init__(self, column, where: str):
        self.column, self.where = column, where  # a pyarrow array of binary (or struct with bytes)

    def __len__(self) -> int:
        return len(self.column)

    def image(self, i: int):
        value = self.column[i].as_py()
        if isinstance(value, dict):
            value = value.get("bytes")
        if not value:
            raise DataError(f"{self.name(i)}: no image bytes")
        return open_image(bytes(value), self.name(i))

    def name(self, i: int) -> str:
        return f"{self.where} row {i}"


class ArrayImages(ImageSet):
    """N×C×H×W (or N×H×W) pixels already decoded: uint8 (0–255) or float (0–1)."""

    def __init__(self, pixels: np.ndarray, where: str):
        self.pixels, self.where = pixels, where

    def __len__(self) -> int:
        return len(self.pixels)

    def image(self, i: int):
        from PIL import Image

        x = np.asarray(self.pixels[i])
        if x.ndim == 3:
            x = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
        if x.dtype == np.uint8:
            return Image.fromarray(x)
        x = np.clip(x.astype(np.float32), 0, 1)
        if x.ndim == 2:
            return Image.fromarray(x, "F")
        return Image.fromarray((x * 255).round().astype(np.uint8))

    def name(self, i: int) -> str:
        return f"{self.where} sample {i}"

    def check(self, indices) -> list[tuple[int, str]]:
        return []


class ImageSplit:
    """A map-style data set of (image, label): `sample(i, rng)` as the DataLoader's workers
    call it. With `skip`, an image that fails to decode is replaced by the next one that
    does, and `sample` says which it skipped so the run can log it."""

    def __init__(
        self,
        images: ImageSet,
        indices: np.ndarray,
        labels: np.ndarray,
        pipeline: ImagePipeline,
        skip: bool = False,
    ):
        self.images, self.indices, self.labels = images, np.asarray(indices), np.asarray(labels)
        self.pipeline, self.skip = pipeline, skip

    def __len__(self) -> int:
        return len(self.indices)

    def sample(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int, list[str]]:
        """(pixels, label, names of images skipped on the way)."""
        skipped = []
        for k in range(min(len(self), 64)):
            j = (i + k) % len(self)
            src = int(self.indices[j])
            try:
                with self.images.image(src) as im:
                    return self.pipeline.array(im, rng, self.images.name(src)), int(self.labels[j]), skipped
            except DataError as err:
                if not self.skip:
                    raise
                skipped.append(str(err).partition(": cannot")[0] or self.images.name(src))
        raise DataError(
            f"{self.images.name(int(self.indices[i]))}: this image and the 63 after it cannot be decoded"
        )

    def with_pipeline(self, pipeline: ImagePipeline) -> ImageSplit:
        return ImageSplit(self.images, self.indices, self.labels, pipeline, self.skip)


def bad_files_error(bad: list[tuple[int, str]], total: int) -> DataError:
    """One error naming up to BAD_FILES_NAMED undecodable images and counting the rest."""
    named = "; ".join(msg for _, msg in bad[:BAD_FILES_NAMED])
    more = f" (and {len(bad) - BAD_FILES_NAMED:,} more)" if len(bad) > BAD_FILES_NAMED else ""
    return DataError(
        f"{len(bad):,} of {total:,} images cannot be decoded: {named}{more}; set data.on_bad_file to 'skip' "
        "to train without them"
    )


def channel_stats(split: ImageSplit) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of up to STATS_SAMPLE training images spread over the split
    (before augmentation), in float64."""
    plain = split.with_pipeline(
        ImagePipeline(split.pipeline.size, split.pipeline.resize, split.pipeline.grayscale)
    )
    picks = np.unique(np.linspace(0, len(split) - 1, min(len(split), STATS_SAMPLE)).astype(int))
    xs = np.stack([plain.sample(int(i))[0] for i in picks]).astype(np.float64)
    mean = xs.mean(axis=(0, 2, 3))
    std = xs.std(axis=(0, 2, 3))
    std[std < 1e-6] = 1.0
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def reason(err: Exception) -> str:
    return shorten(str(err), 200) or type(err).__name__
