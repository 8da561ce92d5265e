"""The run form's data preview, driven as a user does: augmented training images that Re-roll
draws again, token windows decoded with the vocabulary, table rows after dialect detection
and missing-value handling, shapes and class counts — all without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PySide6.QtCore import Qt, QThreadPool

from app.runs.data_preview import DataPreview
from engine.fields import check_fields
from engine.spec import SECTIONS
from tests.conftest import EXAMPLES, ROOT
from tests.engine.test_data_images import folder


@pytest.fixture
def preview(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBENCH_CACHE", str(tmp_path / "cache"))
    pool = QThreadPool()
    widget = DataPreview(pool)
    qtbot.addWidget(widget)
    widget.resize(700, 500)
    widget.show()
    yield widget
    pool.waitForDone(30_000)


def section(**kw) -> dict:
    problems: list = []
    out = check_fields(SECTIONS["data"], kw, "data", problems)
    assert not problems
    return out


def pixels(widget) -> list[bytes]:
    grid = widget.image_grid
    cells = [grid.itemAt(i).widget() for i in range(grid.count())]
    return [
        bytes(c.pixmap().toImage().constBits())
        for c in cells
        if c is not None and c.pixmap() and not c.pixmap().isNull()
    ]


def test_augmented_images_are_shown_and_rerolled(preview, qtbot, tmp_path):
    root = folder(tmp_path / "imgs", n=16, size=12, classes=2)
    augment = {"random_resized_crop": {"scale": [0.3, 1.0]}, "color_jitter": {"brightness": 0.5}}
    preview.request(section(source="images", path=str(root), augment=augment), "auto")
    qtbot.waitUntil(lambda: preview.summary is not None, timeout=30_000)
    assert preview.stack.currentWidget() is preview.images and preview.reroll.isVisible()
    assert "2 classes (6–7 training samples each)" in preview.shape.text()
    first = pixels(preview)
    assert len(first) == 12
    qtbot.mouseClick(preview.reroll, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pixels(preview) and pixels(preview) != first, timeout=30_000)

    preview.request(section(source="images", path=str(root)), "auto")  # no augmentation: nothing to re-roll
    qtbot.waitUntil(lambda: not preview.busy and not preview.reroll.isVisible(), timeout=30_000)


def test_token_windows_decode_with_the_vocabulary(preview, qtbot):
    preview.request(section(source="text", path=str(EXAMPLES / "data" / "corpus.txt"), context=32), "auto")
    qtbot.waitUntil(lambda: preview.stack.currentWidget() is preview.text, timeout=30_000)
    text = preview.text.toPlainText()
    assert text.startswith("[0] ") and "[32] " in text
    assert "vocabulary 256 (byte)" in preview.shape.text()


def test_table_rows_after_dialect_and_missing_values(preview, qtbot, tmp_path):
    path = tmp_path / "t.csv"
    rows = "".join(
        f"{i},5;{['red', 'blue'][i % 2]};{'' if i == 2 else f'{i},0'};{'yes' if i % 3 else 'no'}\n"
        for i in range(20)
    )
    path.write_text("size;colour;weight;label\n" + rows)
    preview.request(section(source="csv", path=str(path), missing="drop"), "auto")
    qtbot.waitUntil(lambda: preview.stack.currentWidget() is preview.table, timeout=30_000)
    table = preview.table
    header = [table.horizontalHeaderItem(i).text() for i in range(table.columnCount())]
    assert header == ["size", "colour=blue", "colour=red", "weight", "label"]
    sizes = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert sizes[:3] == ["0.5", "1.5", "3.5"]  # decimal commas read, the row with a gap dropped


def test_the_preview_imports_no_torch():
    code = (
        "import sys, os; os.environ['QT_QPA_PLATFORM'] = 'offscreen';"
        "from app.runs.data_preview import load_preview;"
        "from engine.fields import check_fields; from engine.spec import SECTIONS;"
        f"d = check_fields(SECTIONS['data'], {{'source': 'cifar', 'path': {str(EXAMPLES / 'data' / 'cifar10-sample')!r}, "
        "'augment': {'horizontal_flip': True}}, 'data', []);"
        "p = load_preview(d, 'auto'); assert len(p.images) == 12, p;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
