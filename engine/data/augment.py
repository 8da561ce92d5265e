"""Training augmentations with torchvision.transforms.v2's names, parameters and semantics,
written in numpy and PIL: `RandomResizedCrop`, `RandomHorizontalFlip`, `ColorJitter` and
`RandomErasing`.

Why not torchvision itself: the PyPI torchvision built for torch 2.13.0 fails to import beside
the CPU wheel here (`operator torchvision::nms does not exist`), and the run form's preview
must apply the very transforms a run applies without importing torch in the GUI process.
These are a few dozen lines each, torch-free, and run in the DataLoader's workers.

Every random draw comes from the `numpy.random.Generator` the caller passes, seeded per sample
by (train.seed, step, sample index) in `engine.tasks.batches`: a resumed or multi-process run
augments each sample exactly as an uninterrupted single-process run does.

`data.augment` is an object of transforms, each `true` (its defaults) or its parameters:

    {"random_resized_crop": {"scale": [0.5, 1]}, "horizontal_flip": true,
     "color_jitter": {"brightness": 0.2}, "random_erasing": {"p": 0.25}}
"""

from __future__ import annotations

import math

import numpy as np

from engine.fields import Field, check_fields, join, shown

TRANSFORMS: dict[str, tuple[Field, ...]] = {
    "random_resized_crop": (
        Field(
            "scale",
            "floats",
            [0.08, 1.0],
            "area of the crop, as a share of the image",
            min=0,
            max=1,
            min_exclusive=True,
            max_items=2,
        ),
        Field(
            "ratio",
            "floats",
            [3 / 4, 4 / 3],
            "aspect ratio range of the crop",
            min=0,
            max=100,
            min_exclusive=True,
            max_items=2,
        ),
    ),
    "horizontal_flip": (Field("p", "float", 0.5, "probability of a flip", min=0, max=1),),
    "color_jitter": (
        Field("brightness", "float", 0.0, "factor drawn from [1 - b, 1 + b]", min=0, max=10),
        Field("contrast", "float", 0.0, "factor drawn from [1 - c, 1 + c]", min=0, max=10),
        Field("saturation", "float", 0.0, "factor drawn from [1 - s, 1 + s]", min=0, max=10),
        Field("hue", "float", 0.0, "hue shift drawn from [-h, h]", min=0, max=0.5),
    ),
    "random_erasing": (
        Field("p", "float", 0.5, "probability of erasing a rectangle", min=0, max=1),
        Field(
            "scale",
            "floats",
            [0.02, 0.33],
            "area of the rectangle, as a share",
            min=0,
            max=1,
            min_exclusive=True,
            max_items=2,
        ),
        Field(
            "ratio",
            "floats",
            [0.3, 3.3],
            "aspect ratio range of the rectangle",
            min=0,
            max=100,
            min_exclusive=True,
            max_items=2,
        ),
        Field(
            "value",
            "float",
            0.0,
            "the erased pixels' value (after normalization: 0 is the mean)",
            min=-1e6,
            max=1e6,
        ),
    ),
}


def check_augment(value, problems: list[tuple[str, str]], path: str = "data.augment") -> dict:
    """`data.augment` with every transform's defaults filled in; problems under their paths."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(
            (path, f"must be an object of transforms ({', '.join(TRANSFORMS)}), got {shown(value)}")
        )
        return {}
    out = {}
    for name, params in value.items():
        where = join(path, name)
        if name not in TRANSFORMS:
            problems.append((where, f"unknown transform (allowed: {', '.join(TRANSFORMS)})"))
            continue
        if params is False:
            continue
        if params is True:
            params = {}
        done = check_fields(TRANSFORMS[name], params, where, problems)
        for key in ("scale", "ratio"):
            pair = done.get(key)
            if isinstance(pair, list) and (len(pair) != 2 or pair[0] > pair[1]):
                problems.append(
                    (join(where, key), f"must be [low, high] with low <= high, got {shown(pair)}")
                )
        out[name] = done
    return out


def crop_box(rng: np.random.Generator, width: int, height: int, scale, ratio) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box (left, top, right, bottom): ten tries at a random area and aspect
    ratio, then the centre crop of the nearest allowed ratio, as torchvision does."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def flip(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    return x[:, :, ::-1] if rng.random() < p else x


def _gray(x: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, as torchvision's rgb_to_grayscale."""
    return (0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]


def _blend(a: np.ndarray, b, ratio: float) -> np.ndarray:
    return np.clip(ratio * a + (1.0 - ratio) * b, 0.0, 1.0)


def color_jitter(
    x: np.ndarray, rng: np.random.Generator, brightness, contrast, saturation, hue
) -> np.ndarray:
    """ColorJitter on a C×H×W image in [0, 1]: the four adjustments in a random order, each
    factor drawn uniformly; saturation and hue leave a one-channel image alone."""
    order = rng.permutation(4)
    factors = [
        rng.uniform(max(0.0, 1 - brightness), 1 + brightness) if brightness else None,
        rng.uniform(max(0.0, 1 - contrast), 1 + contrast) if contrast else None,
        rng.uniform(max(0.0, 1 - saturation), 1 + saturation) if saturation else None,
        rng.uniform(-hue, hue) if hue else None,
    ]
    rgb = x.shape[0] == 3
    for i in order:
        f = factors[i]
        if f is None:
            continue
        if i == 0:
            x = np.clip(x * f, 0.0, 1.0)
        elif i == 1:
            x = _blend(x, float((_gray(x) if rgb else x).mean()), f)
        elif i == 2 and rgb:
            x = _blend(x, _gray(x), f)
        elif i == 3 and rgb:
            x = _shift_hue(x, f)
    return x.astype(np.float32, copy=False)


def _shift_hue(x: np.ndarray, shift: float) -> np.ndarray:
    r, g, b = x
    maxc, minc = x.max(0), x.min(0)
    v, delta = maxc, maxc - minc
    s = np.where(maxc > 0, delta / np.where(maxc > 0, maxc, 1), 0)
    d = np.where(delta > 0, delta, 1)
    h = np.where(maxc == r, ((g - b) / d) % 6, np.where(maxc == g, (b - r) / d + 2, (r - g) / d + 4))
    h = np.where(delta > 0, h / 6.0, 0.0)
    h = (h + shift) % 1.0
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.empty_like(x)
    for c in range(3):
        out[c] = np.choose(i, [choice[c] for choice in choices])
    return out


def erase(x: np.ndarray, rng: np.random.Generator, p, scale, ratio, value) -> np.ndarray:
    """RandomErasing: with probability p, one rectangle of random area and aspect set to `value`."""
    if rng.random() >= p:
        return x
    c, height, width = x.shape
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if h < height and w < width:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            x = x.copy()
            x[:, top : top + h, left : left + w] = value
            return x
    return x
