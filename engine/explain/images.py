"""Small PNGs for what `trainbench explain` writes: data-set images as thumbnails, and maps
(saliency, Grad-CAM, attention) as heat maps, alone or over their image. Pillow only; the
colour map is computed here so nothing depends on a plotting library."""

from __future__ import annotations

from pathlib import Path

import numpy as np

THUMB = 96  # a thumbnail's longer side in pixels (digits are 8×8: nearest-neighbour upscaled)
# "inferno"-like ramp: black → purple → orange → yellow, readable as intensity in both themes
_RAMP = np.array(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=np.float64,
)


def heat_colors(values: np.ndarray) -> np.ndarray:
    """uint8 RGB (…, 3) of values scaled to [0, 1] by their own range."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo, hi = (float(v[finite].min()), float(v[finite].max())) if finite.any() else (0.0, 1.0)
    t = np.where(finite, (v - lo) / (hi - lo) if hi > lo else 0.0, 0.0)
    pos = t * (len(_RAMP) - 1)
    i = np.clip(np.floor(pos).astype(int), 0, len(_RAMP) - 2)
    frac = (pos - i)[..., None]
    return (_RAMP[i] * (1 - frac) + _RAMP[i + 1] * frac).round().astype(np.uint8)


def image_rgb(x: np.ndarray) -> np.ndarray:
    """A C×H×W (or H×W) sample as uint8 RGB H×W×3, scaled by its own range."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = x[0] if x.shape[0] == 1 else np.moveaxis(x[:3], 0, -1)
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    g = ((x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)) * 255
    g = g.round().astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1) if g.ndim == 2 else g


def _save(rgb: np.ndarray, path: Path, size: int = THUMB) -> Path:
    from PIL import Image

    img = Image.fromarray(rgb, "RGB")
    scale = max(1, size // max(img.size))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def save_image(x: np.ndarray, path: Path) -> Path:
    return _save(image_rgb(x), path)


def save_heat(values: np.ndarray, path: Path, over: np.ndarray | None = None, size: int = THUMB) -> Path:
    """A 2-d map as a heat map PNG; with `over` (the sample), blended over its image."""
    rgb = heat_colors(values)
    if over is not None:
        base = image_rgb(over).astype(np.float64)
        rgb = (0.45 * base + 0.55 * rgb).round().astype(np.uint8)
    return _save(rgb, path, size)
