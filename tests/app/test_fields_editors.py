"""The kit's editors, driven as a user drives them: what each reports as typed and finished, how it
shows values, defaults and problems, and that the wheel changes a field only while it is focused."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QScrollArea, QVBoxLayout, QWidget

from app.fields import (
    UNSET,
    BoolEditor,
    ChoiceEditor,
    GraphEditor,
    IntEditor,
    MultilineEditor,
    PathEditor,
    RunPicker,
    TextEditor,
    field_tooltip,
    make_editor,
)
from engine.fields import REQUIRED, Field

LR = Field(
    "lr", "float", 1e-3, "peak learning rate", min=0, max=10, min_exclusive=True, label="Learning rate"
)
EPOCHS = Field("epochs", "int", 10, "passes over the data", min=1, max=100)
OPTIM = Field("name", "choice", "adamw", "optimizer", choices=("sgd", "adam", "adamw"))
MOMENTUM = Field("momentum", "float", 0.9, "sgd momentum", min=0, when={"name": ("sgd",)})


class Recorder:
    """What an editor reported, in order."""

    def __init__(self, editor):
        self.typed, self.finished, self.focused = [], [], 0
        editor.typed.connect(self.typed.append)
        editor.finished.connect(self.finished.append)
        editor.focused.connect(self._focus)

    def _focus(self):
        self.focused += 1


def shown(qtbot, widget):
    """`widget` on screen as the active window, so focus changes are real ones."""
    qtbot.addWidget(widget)
    widget.show()
    widget.activateWindow()
    qtbot.waitUntil(widget.isActiveWindow)
    return widget


def retype(qtbot, widget, text: str) -> None:
    qtbot.keyClick(widget, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(widget, text)


def test_the_editor_follows_the_fields_traits_then_its_kind():
    cases = {
        Field("parent", "int", None, optional=True, traits={"run"}): RunPicker,
        Field("path", "str", None, optional=True, traits={"path"}): PathEditor,
        Field("notes", "str", "", traits={"multiline"}): MultilineEditor,
        Field("on", "bool", False): BoolEditor,
        OPTIM: ChoiceEditor,
        Field("body", "graph", None, optional=True): GraphEditor,
        EPOCHS: IntEditor,
        Field("max_steps", "int", None, optional=True): TextEditor,  # empty means "auto"
        LR: TextEditor,
        Field("shape", "ints", None, optional=True): TextEditor,
        Field("keep", "any", None, optional=True): TextEditor,
    }
    for f, cls in cases.items():
        assert type(make_editor(f)) is cls, f.name


def test_the_tooltip_says_help_range_default_and_when():
    assert field_tooltip(LR) == "peak learning rate\n> 0 and <= 10 · default 0.001"
    assert field_tooltip(MOMENTUM, "optim").splitlines()[-1] == "Only when optim.name is 'sgd'"
    assert make_editor(MOMENTUM, section="optim").widget.toolTip() == field_tooltip(MOMENTUM, "optim")


def test_text_is_reported_as_typed_and_once_finished(qtbot):
    editor = make_editor(LR)
    seen = Recorder(editor)
    shown(qtbot, editor)
    editor.widget.setFocus()
    assert seen.focused == 1
    qtbot.keyClicks(editor.widget, "3e-4")
    assert seen.typed == ["3", "3e", "3e-", "3e-4"] and seen.finished == []
    qtbot.keyClick(editor.widget, Qt.Key.Key_Return)
    assert seen.finished == ["3e-4"]
    qtbot.keyClick(editor.widget, Qt.Key.Key_Return)  # nothing new: no second report
    assert seen.finished == ["3e-4"] and seen.focused == 1


def test_values_defaults_and_problems_are_shown(qtbot):
    editor = shown(qtbot, make_editor(LR))
    editor.show_value(0.002)
    assert editor.widget.text() == "0.002"
    editor.show_value(None, is_set=False)
    assert editor.widget.text() == "" and editor.widget.placeholderText() == "default 0.001"
    editor.show_problems(["must be > 0 and <= 10, got -1"])
    assert editor.error.isVisible() and editor.widget.property("invalid") is True
    assert editor.problems == ["must be > 0 and <= 10, got -1"]
    editor.show_problems([])
    assert not editor.error.isVisible() and editor.widget.property("invalid") is False

    spin = shown(qtbot, make_editor(EPOCHS))
    spin.show_value(None, is_set=False)  # a spin box shows the default it stands for, greyed
    assert spin.widget.value() == 10 and spin.widget.property("unset") is True
    spin.show_value(12)
    assert spin.widget.value() == 12 and spin.widget.property("unset") is False


def test_showing_the_value_being_typed_leaves_the_text_alone(qtbot):
    editor = shown(qtbot, make_editor(LR))
    editor.widget.setFocus()
    qtbot.keyClicks(editor.widget, "0.")
    editor.widget.setCursorPosition(1)
    editor.show_value(0.0)  # the model's echo of what was typed: "0." says 0.0
    assert editor.widget.text() == "0." and editor.widget.cursorPosition() == 1


def test_a_spin_box_steps_within_the_range_but_takes_any_number_typed(qtbot):
    editor = shown(qtbot, make_editor(EPOCHS))
    seen = Recorder(editor)
    editor.show_value(100)
    editor.widget.setFocus()
    qtbot.keyClick(editor.widget, Qt.Key.Key_Up)
    assert editor.widget.value() == 100 and seen.finished == []  # at the top of the range
    qtbot.keyClick(editor.widget, Qt.Key.Key_Down)
    assert seen.typed == [99] and seen.finished == [99]
    retype(qtbot, editor.widget.lineEdit(), "0")
    qtbot.keyClick(editor.widget, Qt.Key.Key_Return)
    assert seen.typed[-2:] == ["0", 0] and seen.finished[-1] == 0  # the engine says what is wrong


def test_check_boxes_and_combo_boxes_report_values(qtbot):
    box = shown(qtbot, make_editor(Field("deterministic", "bool", False)))
    seen = Recorder(box)
    qtbot.mouseClick(box.widget, Qt.MouseButton.LeftButton)
    assert seen.typed == [True] and seen.finished == [True]

    combo = shown(qtbot, make_editor(OPTIM))
    seen = Recorder(combo)
    combo.show_value("adamw")
    combo.widget.setFocus()
    qtbot.keyClick(combo.widget, Qt.Key.Key_Up)
    assert seen.finished == ["adam"]
    combo.show_value(["adam"])  # a wrong type from a file: shown, for the message beside it
    assert combo.widget.currentText() == '["adam"] (not allowed)'
    combo.show_value("sgd")
    assert combo.widget.count() == 3 and combo.widget.currentText() == "sgd"

    required = shown(qtbot, make_editor(Field("source", "choice", REQUIRED, choices=("digits", "csv"))))
    required.show_value(None, is_set=False)
    assert required.widget.currentText() == "Choose…" and required.widget.count() == 3
    required.set_unset_label("(the parent run's)")
    assert required.widget.currentText() == "(the parent run's)"
    required.show_value("csv")
    assert required.widget.currentText() == "csv"
    combo.show_value(None, is_set=False)  # unset, with a default: the default
    assert combo.widget.currentText() == "adamw"

    optional = shown(qtbot, make_editor(Field("student", "choice", None, choices=("a", "b"), optional=True)))
    seen = Recorder(optional)
    optional.show_value(None, is_set=False)
    assert optional.widget.currentText() == "(default)"
    optional.show_value("b")
    optional.widget.setFocus()
    qtbot.keyClick(optional.widget, Qt.Key.Key_Home)
    assert seen.finished == [UNSET]


def test_a_run_picker_offers_the_runs_it_is_given(qtbot):
    picker = shown(qtbot, make_editor(Field("parent", "int", None, optional=True, traits={"run"})))
    seen = Recorder(picker)
    picker.set_runs([(7, "#7 digits (train)"), (3, "#3 wine (train)")])
    offered = [picker.widget.itemText(i) for i in range(picker.widget.count())]
    assert offered == ["Choose a completed run…", "#7 digits (train)", "#3 wine (train)"]
    picker.widget.setFocus()
    qtbot.keyClick(picker.widget, Qt.Key.Key_Down)
    assert seen.finished == [7]
    picker.show_value(99)
    assert picker.widget.currentText() == "#99 (not a completed run here)"
    picker.set_runs([(99, "#99 back (train)")])  # the run appears: the extra item goes
    assert [picker.widget.itemText(i) for i in range(picker.widget.count())] == [
        "Choose a completed run…",
        "#99 back (train)",
    ]
    assert picker.widget.currentData() == 99


def test_a_path_is_a_file_or_a_folder(qtbot, monkeypatch, tmp_path):
    editor = shown(qtbot, make_editor(Field("path", "str", None, optional=True, traits={"path"})))
    editor.start_dir = tmp_path
    seen = Recorder(editor)
    asked = []
    monkeypatch.setattr(
        QFileDialog,
        "getOpenFileName",
        lambda *a: asked.append(("file", a[2])) or (str(tmp_path / "d.csv"), ""),
    )
    monkeypatch.setattr(
        QFileDialog,
        "getExistingDirectory",
        lambda *a: asked.append(("folder", a[2])) or str(tmp_path / "imgs"),
    )
    qtbot.mouseClick(editor.file_button, Qt.MouseButton.LeftButton)
    assert seen.finished == [str(tmp_path / "d.csv")] and editor.widget.text() == str(tmp_path / "d.csv")
    editor.widget.setText("imgs")  # relative: the dialog opens where it points, from start_dir
    qtbot.mouseClick(editor.folder_button, Qt.MouseButton.LeftButton)
    assert seen.finished[-1] == str(tmp_path / "imgs")
    assert asked == [("file", str(tmp_path)), ("folder", str(tmp_path / "imgs"))]


def test_long_text_reports_as_typed_and_when_the_focus_leaves(qtbot):
    host = QWidget()
    layout = QVBoxLayout(host)
    editor = make_editor(Field("notes", "str", "", "free text", traits={"multiline"}))
    other = make_editor(LR)
    layout.addWidget(editor)
    layout.addWidget(other)
    shown(qtbot, host)
    seen = Recorder(editor)
    editor.widget.setFocus()
    qtbot.keyClicks(editor.widget, "ab")
    assert seen.typed == ["a", "ab"] and seen.finished == []
    other.widget.setFocus()
    qtbot.waitUntil(lambda: seen.finished == ["ab"])
    editor.show_value("line one\nline two")  # shown, not reported back
    assert editor.widget.toPlainText() == "line one\nline two" and seen.typed == ["a", "ab"]


def test_a_graph_field_asks_to_be_opened(qtbot):
    editor = shown(qtbot, make_editor(Field("body", "graph", None, optional=True)))
    editor.show_value({"nodes": [{"id": "a"}, {"id": "b"}]})
    assert editor.summary.text() == "2 nodes"
    with qtbot.waitSignal(editor.open_requested, timeout=1000):
        qtbot.mouseClick(editor.button, Qt.MouseButton.LeftButton)


# ------------------------------------------------------------------ the wheel


def wheel(widget, notches: int = -1) -> QWheelEvent:
    """One real wheel event over the middle of `widget` (negative: scroll down)."""
    local = QPointF(widget.rect().center())
    event = QWheelEvent(
        local,
        QPointF(widget.mapToGlobal(local.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)
    return event


@pytest.fixture
def long_page(qtbot):
    """A scrolling page of many editors, as the run form is."""
    page = QScrollArea()
    page.setWidgetResizable(True)
    body = QWidget()
    column = QVBoxLayout(body)
    editors = []
    for i in range(30):
        f = (EPOCHS, OPTIM, Field("notes", "str", "", traits={"multiline"}))[i % 3]
        editor = make_editor(f)
        editor.show_value(f.default)
        column.addWidget(editor)
        editors.append(editor)
    page.setWidget(body)
    page.resize(400, 300)
    shown(qtbot, page)
    page.verticalScrollBar().setValue(200)
    return page, editors


@pytest.mark.parametrize("which", [0, 1, 2], ids=["spin box", "combo box", "text box"])
def test_the_wheel_over_an_unfocused_field_scrolls_the_page(long_page, which):
    page, editors = long_page
    editor = editors[9 + which]
    before = page.verticalScrollBar().value()
    event = wheel(editor.widget, -1)
    assert event.isAccepted()
    assert page.verticalScrollBar().value() > before  # the page moved down
    if which == 0:
        assert editor.widget.value() == 10
    elif which == 1:
        assert editor.widget.currentText() == "adamw"
    else:
        assert editor.widget.toPlainText() == ""
    wheel(editor.widget, 1)
    assert page.verticalScrollBar().value() == before


def test_the_wheel_changes_a_focused_field_and_leaves_the_page(long_page, qtbot):
    page, editors = long_page
    spin, combo = editors[9], editors[10]
    seen = Recorder(spin)
    before = page.verticalScrollBar().value()
    spin.widget.setFocus()
    wheel(spin.widget, 1)
    assert spin.widget.value() == 11 and seen.finished == [11]
    combo.widget.setFocus()
    wheel(combo.widget, 1)
    assert combo.widget.currentText() == "adam"
    assert page.verticalScrollBar().value() == before
