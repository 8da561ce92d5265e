"""Writes the example data sets that ship beside the example specs, byte for byte the same on
every run (seeded), so the examples run from a fresh clone without a download:

  cifar10-sample/   CIFAR-10 *binary* batches (data_batch_1.bin, test_batch.bin,
                    batches.meta.txt) of 32×32 drawings, one kind of shape per class:
                    400 training and 100 test images (cifar10_cnn.json)
  texts/            a folder of text files: the corpus of char_gpt.json in four parts
                    (bpe_gpt.json)
  regression.npz    x (1,000 × 10) and y = a smooth function of x plus noise
                    (mlp_regression.json)

    python resources/examples/data/make_samples.py [OUT_FOLDER]

tests/engine/test_data_examples.py checks that the shipped files equal what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLASSES = ["square", "disc", "ring", "cross", "stripes", "bars", "diagonal", "dots", "triangle", "frame"]


def drawing(kind: int, rng: np.random.Generator) -> np.ndarray:
    """One 32×32×3 uint8 image of shape `kind` in a random colour, place and size, over noise."""
    yy, xx = np.mgrid[0:32, 0:32]
    cy, cx, r = rng.integers(11, 21), rng.integers(11, 21), rng.integers(6, 11)
    d = np.hypot(yy - cy, xx - cx)
    mask = [
        (abs(yy - cy) < r) & (abs(xx - cx) < r),
        d < r,
        (d < r) & (d > r - 3),
        (abs(yy - cy) < 2) | (abs(xx - cx) < 2),
        (yy // 3) % 2 == 0,
        (xx // 3) % 2 == 0,
        abs((yy - cy) - (xx - cx)) < 2,
        (yy % 6 < 2) & (xx % 6 < 2),
        (yy - cy > -r) & (abs(xx - cx) < (yy - cy + r) / 2) & (yy - cy < r),
        ((abs(yy - cy) < r) & (abs(xx - cx) < r)) & ~((abs(yy - cy) < r - 3) & (abs(xx - cx) < r - 3)),
    ][kind]
    image = rng.integers(0, 70, (32, 32, 3))
    colour = rng.integers(120, 256, 3)
    image[mask] = colour
    return image.astype(np.uint8)


def cifar_records(n_per_class: int, rng: np.random.Generator) -> bytes:
    labels = np.repeat(np.arange(10), n_per_class)
    rng.shuffle(labels)
    out = bytearray()
    for label in labels:
        out.append(int(label))
        out += drawing(int(label), rng).transpose(2, 0, 1).tobytes()  # R, G, B planes, row-major
    return bytes(out)


def write(out: Path) -> None:
    rng = np.random.default_rng(2024)
    cifar = out / "cifar10-sample"
    cifar.mkdir(parents=True, exist_ok=True)
    (cifar / "data_batch_1.bin").write_bytes(cifar_records(40, rng))
    (cifar / "test_batch.bin").write_bytes(cifar_records(10, rng))
    (cifar / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n")

    corpus = (HERE / "corpus.txt").read_text(encoding="utf-8")
    texts = out / "texts"
    texts.mkdir(exist_ok=True)
    paragraphs = corpus.split("\n\n")
    step = -(-len(paragraphs) // 4)
    for i in range(4):
        (texts / f"part{i + 1}.txt").write_text(
            "\n\n".join(paragraphs[i * step : (i + 1) * step]) + "\n", encoding="utf-8"
        )

    x = rng.normal(size=(1000, 10)).astype(np.float32)
    w = rng.normal(size=10).astype(np.float32)
    y = np.sin(x @ w / 2) + 0.5 * x[:, 0] * x[:, 1] + 0.05 * rng.normal(size=1000)
    np.savez(out / "regression.npz", x=x, y=y.astype(np.float32).reshape(-1, 1))


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
