"""Renders the app icon (resources/icons/trainbench.svg) to the raster files desktops want:
PNGs from 16 to 512 px, a Windows .ico and a macOS .icns, in resources/icons/app/.

Run it after the SVG changes (build.sh does, when the SVG is newer than the PNGs):

    python packaging/make_icons.py

Qt renders the SVG (the same renderer the app uses for its window icon); Pillow writes the
multi-size containers.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "icons" / "trainbench.svg"
OUT = ROOT / "resources" / "icons" / "app"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest size Windows' .ico holds
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)  # 1024 is 512@2x for Retina screens


def render(sizes) -> dict:
    """{size: PIL image}, each size rendered from the SVG on its own (sharper at 16 px than
    downscaling a big one)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PIL import Image
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(QByteArray(SVG.read_bytes()))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: {SVG} is not a valid SVG")
    images = {}
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        images[size] = Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGBA")
    return images


def main() -> int:
    images = render(sorted({*PNG_SIZES, *ICO_SIZES, *ICNS_SIZES}))
    OUT.mkdir(parents=True, exist_ok=True)
    for size in PNG_SIZES:
        path = OUT / f"trainbench-{size}.png"
        images[size].save(path, optimize=True)
        print(path.relative_to(ROOT))
    # Pillow takes the first image as the base and the others as the sizes it holds.
    images[256].save(
        OUT / "trainbench.ico",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=[images[s] for s in ICO_SIZES],
    )
    images[1024].save(OUT / "trainbench.icns", append_images=[images[s] for s in ICNS_SIZES])
    print((OUT / "trainbench.ico").relative_to(ROOT))
    print((OUT / "trainbench.icns").relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
