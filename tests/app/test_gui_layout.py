"""The app as a new user sees it, at the window sizes people have (1024×700 up to 1440×900):
nothing cut off at a panel's edge, nothing wider than the window, text elided only when there
is no room for it, and one look for every field editor. Real widgets, shown offscreen, with
real data: the engine's data sets in the run form, runs in a real store."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QAbstractScrollArea, QComboBox, QLineEdit, QSpinBox, QWidget

from tests.app.experiments_synthetic import add_synthetic_runs, open_area
from tests.app.runs_fixtures import EXAMPLES, spec

SIZES = [(1024, 700), (1245, 700), (1280, 800), (1440, 900)]
TIMEOUT_MS = 60_000  # a ceiling for a busy machine: the data set and estimate load in seconds


def _inside(widget: QWidget, parent: QWidget) -> QRect:
    return QRect(widget.mapTo(parent, QPoint(0, 0)), widget.size())


def cut_off(scroll: QAbstractScrollArea) -> list[str]:
    """Shown widgets in a scroll area's content that reach past the right edge of what it
    shows: there is no sideways scrolling, so that part of them is lost."""
    port = scroll.viewport()
    content = scroll.widget() if hasattr(scroll, "widget") else port
    return [
        f"{type(w).__name__} {w.objectName()!r} ends at {_inside(w, port).right()} > {port.width()}"
        for w in content.findChildren(QWidget)
        if w.isVisibleTo(content) and w.width() > 0 and _inside(w, port).right() >= port.width()
    ]


def settle(qtbot, widget: QWidget) -> None:
    """Let the layouts (and the run form's card arrangement) follow a resize."""
    for _ in range(3):
        qtbot.wait(20)
        widget.layout().activate()


# ------------------------------------------------------------------ the run form


@pytest.fixture
def form(runs_area, qtbot):
    """The digits CNN's spec in the run form, styled as the app styles it, with its data preview
    and memory estimate in."""
    from app.main import create_app

    create_app()  # the app's theme and stylesheet
    form = runs_area.form
    assert form.load_spec(EXAMPLES / "digits_cnn.json")
    qtbot.waitUntil(lambda: form.preview.stack.currentWidget() is form.preview.images, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: "peak" in form.memory.text(), timeout=TIMEOUT_MS)
    return form


@pytest.mark.parametrize("kind", ["train", "prune", "distill"])
def test_the_run_form_fits_its_page_at_every_window_size(runs_area, form, qtbot, kind):
    form.model.edit("task.kind", kind)
    for width, height in SIZES:
        runs_area.resize(width, height)
        settle(qtbot, runs_area)
        assert cut_off(form.scroll) == [], f"{kind} at {width}×{height}"
        assert runs_area.minimumSizeHint().width() <= width


def test_previews_sit_beside_the_fields_when_there_is_room(runs_area, form, qtbot):
    data = form.cards["data"]
    runs_area.resize(1440, 900)
    settle(qtbot, runs_area)
    assert data.body.direction() == data.body.Direction.LeftToRight
    assert form.preview.x() > form.rows["data.source"].editor.x()
    runs_area.resize(1024, 700)
    settle(qtbot, runs_area)
    assert data.body.direction() == data.body.Direction.TopToBottom
    assert form.preview.y() > form.rows["data.source"].editor.y()


def test_the_model_line_never_breaks_between_its_shapes(runs_area, form, qtbot):
    runs_area.resize(1245, 700)  # the model line wraps here
    settle(qtbot, runs_area)
    text = form.model_summary.text()
    assert "1×8×8\u00a0→\u00a010" in text


def _text_x(editor: QWidget) -> int:
    """Where an editor's text starts, in its own coordinates."""
    line = editor.lineEdit() if isinstance(editor, QSpinBox | QComboBox) else editor
    line.setCursorPosition(0)
    return line.mapTo(editor, line.cursorRect().center()).x()


def test_every_field_editor_has_one_look(runs_area, form, qtbot):
    """Spin boxes, line edits and combo boxes: one height, and typed text at one inset (the
    spin box was taller, with its number at its very edge)."""
    runs_area.resize(1280, 800)
    settle(qtbot, runs_area)
    shown = [row.editor.widget for row in form.rows.values() if row.editor.isVisibleTo(form)]
    single_line = [w for w in shown if isinstance(w, QLineEdit | QSpinBox | QComboBox)]
    assert {type(w) for w in single_line} >= {QLineEdit, QComboBox} and any(
        isinstance(w, QSpinBox) for w in single_line
    )
    assert len({w.height() for w in single_line}) == 1, {(type(w).__name__, w.height()) for w in single_line}
    typed = [w for w in single_line if not isinstance(w, QComboBox)]
    assert len({_text_x(w) for w in typed}) == 1, {(type(w).__name__, _text_x(w)) for w in typed}


def test_every_editor_starts_one_label_column_from_its_label(runs_area, form, qtbot):
    runs_area.resize(1440, 900)
    settle(qtbot, runs_area)
    form.model.edit("task.kind", "prune")  # its section has the longest labels
    settle(qtbot, runs_area)
    offsets = {
        path: row.editor.mapTo(form, QPoint(0, 0)).x() - row.label.mapTo(form, QPoint(0, 0)).x()
        for path, row in form.rows.items()
        if row.editor.isVisibleTo(form)
    }
    assert len(set(offsets.values())) == 1, offsets


# ------------------------------------------------------------------ the designer


def _horizontally_shown(area, node_id: str) -> bool:
    seen = area.view.visible_rect()
    node = area.scene.nodes[node_id].sceneBoundingRect()
    return seen.left() <= node.left() and node.right() <= seen.right()


@pytest.mark.parametrize("size", SIZES)
def test_the_opening_model_is_wrapped_to_the_canvas_it_has(qtbot, qapp, size):
    from app.main import create_app, create_window

    create_app()
    window = create_window()
    qtbot.addWidget(window)
    window.resize(*size)
    with qtbot.waitSignal(window.designer.canvas_sized, timeout=10_000):
        window.show()
    area = window.designer
    # every band of the layout is as wide as the view shows: no column under a panel
    assert all(_horizontally_shown(area, n) for n in window.doc.graph.nodes), size
    assert not window.doc.dirty


def test_a_second_start_lays_the_opening_model_out_for_its_restored_panels(qtbot, qapp):
    from app.main import create_app, create_window

    create_app()
    first = create_window()
    first.resize(1245, 700)
    with qtbot.waitSignal(first.designer.canvas_sized, timeout=10_000):
        first.show()
    first.close()  # saves the window's geometry and panels
    first.deleteLater()
    window = create_window()
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.designer.canvas_sized, timeout=10_000):
        window.show()
    area = window.designer
    assert all(_horizontally_shown(area, n) for n in window.doc.graph.nodes)


def test_the_inspector_fits_its_panel_at_1024_and_has_no_scroll_bar_for_nothing(window, qtbot):
    window.resize(1024, 700)
    qtbot.wait(50)
    area = window.designer
    for node in ("conv2", "fc", "drop"):
        area.scene.select_nodes([node])
        qtbot.wait(20)
        assert cut_off(area.inspector) == [], node
    area.scene.select_nodes([])
    qtbot.waitUntil(lambda: not area.inspector.verticalScrollBar().isVisible())
    assert area.inspector.widget().height() <= area.inspector.viewport().height()


def test_the_summary_keeps_its_totals_at_the_top_after_problems(window, qtbot):
    from app.designer import commands

    doc, summary = window.doc, window.designer.summary
    window.resize(1024, 700)
    qtbot.wait(50)
    top = (summary.status.y(), summary.totals.y())
    edge = next(e for e in doc.graph.edges if e.dst == "fc")
    doc.push(commands.Disconnect(doc, edge))
    doc.wait_for_analysis()
    qtbot.waitUntil(lambda: summary.problems.isVisible())
    doc.undo_stack.undo()
    doc.wait_for_analysis()
    qtbot.waitUntil(lambda: not summary.problems.isVisible())
    qtbot.wait(20)
    assert (summary.status.y(), summary.totals.y()) == top


def test_the_summary_wraps_a_long_problem_instead_of_eliding_it(window, qtbot):
    from PySide6.QtCore import Qt

    from app.designer import commands

    window.resize(1024, 700)
    qtbot.wait(50)
    doc, problems = window.doc, window.designer.summary.problems
    doc.push(commands.SetParam(doc, "fc", "out_features", 0))  # a message longer than the list
    doc.wait_for_analysis()
    qtbot.waitUntil(lambda: problems.isVisible() and problems.count() == 1)
    qtbot.wait(20)
    item = problems.item(0)
    rect = problems.visualItemRect(item)
    wrapped = problems.fontMetrics().boundingRect(
        QRect(0, 0, rect.width(), 10_000), Qt.TextFlag.TextWordWrap, item.text()
    )
    assert rect.right() < problems.viewport().width()  # laid out as wide as the list shows
    assert wrapped.height() <= rect.height()  # and as tall as its wrapped text


def test_the_repeat_body_editor_fits_the_window_it_opens_from(window, qtbot):
    from app.designer.body import BodyDialog
    from app.designer.files import load_template

    window.resize(1024, 700)
    window.doc.replace(load_template("gpt"))
    node = next(n for n in window.doc.graph.nodes.values() if n.op == "Repeat")
    dialog = BodyDialog(node, None, "gpt › blocks", window.designer)
    qtbot.addWidget(dialog)
    assert dialog.width() <= window.width() and dialog.height() <= window.height()


# ------------------------------------------------------------------ the monitor


def test_a_long_run_name_never_widens_the_window(runs_area, store, qtbot):
    base = spec("digits_mlp")
    [run_id] = add_synthetic_runs(store, base, 1, name="a-run-whose-name-goes-on-and-on-for-ever-and-ever")
    runs_area.resize(1024, 700)
    sidebar = runs_area.list.parentWidget().width()
    live = runs_area.follow_run(run_id)
    monitor = runs_area.monitors[id(live)]
    qtbot.waitUntil(lambda: bool(monitor.plots), timeout=TIMEOUT_MS)
    settle(qtbot, runs_area)
    assert runs_area.minimumSizeHint().width() <= 1024
    assert runs_area.list.parentWidget().width() == sidebar  # the run list keeps its width
    assert monitor.title.text().endswith("…") and monitor.title.toolTip() == live.name
    assert monitor.title.full == live.name
    # with room, the name is whole
    runs_area.resize(1800, 900)
    settle(qtbot, runs_area)
    assert monitor.title.text() == live.name
    # and a run without a log says so instead of showing an empty box
    assert monitor.console.document().isEmpty() and "No log lines" in monitor.console.placeholderText()


# ------------------------------------------------------------------ experiments


@pytest.fixture
def experiments(qtbot, store):
    add_synthetic_runs(store, spec("digits_mlp"), 12, points=40, families=1)
    area = open_area(qtbot, store.path)
    qtbot.waitUntil(lambda: bool(area.parallel.axes), timeout=TIMEOUT_MS)
    return area


def test_parallel_coordinates_show_every_axis_title_whole(experiments, qtbot):
    parallel = experiments.parallel
    titles = {a.title + (" (log)" if a.log else "") for a in parallel.axes}
    for width, height in [(1024, 700), (1440, 900)]:
        experiments.resize(width, height)
        settle(qtbot, experiments)
        frame = parallel.view.sceneBoundingRect()
        items = [i for i in parallel._items if hasattr(i, "textItem") and i.textItem.toPlainText() in titles]
        assert len(items) == len(titles)
        for item in items:
            assert frame.contains(item.sceneBoundingRect()), (width, item.textItem.toPlainText())


def test_hints_elide_only_when_there_is_no_room(experiments, qtbot):
    hint = experiments.parallel.hint
    experiments.resize(1024, 700)
    settle(qtbot, experiments)
    assert hint.text().endswith("…") and hint.full.startswith(hint.text()[:-1])
    assert hint.toolTip() == hint.full
    experiments.resize(1900, 900)
    settle(qtbot, experiments)
    assert hint.text() == hint.full


def test_the_filter_box_stays_usable_at_1024(experiments, qtbot):
    experiments.resize(1004, 640)  # the area's share of a 1024×700 window
    settle(qtbot, experiments)
    assert experiments.minimumSizeHint().width() <= 1004
    search = experiments.browser.search
    assert search.width() >= 120
    bar = _inside(search, experiments.browser)
    assert bar.right() < experiments.browser.width()


# ------------------------------------------------------------------ the whole window


def test_no_area_makes_a_1024_window_wider(window, store, qtbot):
    """Every area as a user goes through them — a run with a long name open in the monitor,
    the experiments with their plots — fits a 1024-pixel window (the monitor made it 1041)."""
    add_synthetic_runs(store, spec("digits_mlp"), 8, points=40, families=1)
    [run_id] = add_synthetic_runs(
        store, spec("digits_mlp"), 1, name="a-run-whose-name-goes-on-and-on-for-ever"
    )
    window.resize(1024, 700)
    window.show_area("Runs")
    live = window.area("Runs").follow_run(run_id)
    qtbot.waitUntil(lambda: bool(window.area("Runs").monitors[id(live)].plots), timeout=TIMEOUT_MS)
    window.show_area("Experiments")
    experiments = window.area("Experiments")
    experiments.ensure_loaded()
    experiments.select([run_id])
    for tab in range(experiments.explore.count()):
        experiments.explore.setCurrentIndex(tab)
        qtbot.wait(50)
        for name in ("Designer", "Runs", "Experiments"):
            window.show_area(name)
            qtbot.wait(20)
            assert window.minimumSizeHint().width() <= 1024, (name, tab)
            assert window.width() == 1024, (name, tab)


# ------------------------------------------------------------------ empty states


def test_an_empty_table_says_why_it_is_empty(qtbot, store):
    area = open_area(qtbot, store.path)
    browser = area.browser
    assert browser.empty.isVisible() and "No runs in this store yet" in browser.empty.text()
    qtbot.waitUntil(lambda: "No runs" in area.parallel.hint.full)  # drawn once it is shown
    add_synthetic_runs(store, spec("digits_mlp"), 3, points=20)
    area.reload()
    qtbot.waitUntil(lambda: browser.model.rowCount() == 3)
    assert not browser.empty.isVisible()
    qtbot.keyClicks(browser.search, "no-such-run")
    qtbot.waitUntil(lambda: browser.model.rowCount() == 0)
    assert browser.empty.isVisible() and browser.empty.text() == "No run matches the filter."


def test_an_empty_run_list_says_what_fills_it(runs_area, store, qtbot):
    assert runs_area.empty_list.isVisible() and "Start run" in runs_area.empty_list.text()
    [run_id] = add_synthetic_runs(store, spec("digits_mlp"), 1, points=20)
    runs_area.follow_run(run_id)  # as the Experiments area opens one
    assert not runs_area.empty_list.isVisible()


# ------------------------------------------------------------------ compare, statuses, dialogs


def test_five_runs_compare_side_by_side_without_sideways_scrolling(experiments, qtbot):
    experiments.resize(1004, 640)  # the area's share of a 1024×700 window
    experiments.select([int(i) for i in experiments.catalog.ids[:5]])
    experiments.show_compare()
    table = experiments.compare.table
    qtbot.waitUntil(lambda: experiments.compare.table_model.columnCount() == 6, timeout=TIMEOUT_MS)
    settle(qtbot, experiments)
    assert table.horizontalHeader().length() <= table.viewport().width()
    assert table.horizontalScrollBar().maximum() == 0
    # with room, a run's column keeps its full width
    experiments.resize(1800, 900)
    settle(qtbot, experiments)
    assert table.columnWidth(5) == 160


def test_a_status_has_one_colour_in_every_view(qtbot, store):
    """The run list, the run's badge and the runs table once showed three colours for a
    crashed run and for a stopped one."""
    from PySide6.QtCore import Qt

    from app import theme
    from app.runs.run_list import status_color
    from app.runs.style import stylesheet

    ids = add_synthetic_runs(store, spec("digits_mlp"), 3, points=20)
    for run_id, status in zip(ids, ("failed", "crashed", "stopped"), strict=True):
        with store.write() as c:
            c.execute("UPDATE runs SET status=? WHERE id=?", (status, run_id))
    area = open_area(qtbot, store.path)
    model = area.browser.model
    qtbot.waitUntil(lambda: model.rowCount() == 3, timeout=TIMEOUT_MS)
    column = model.columns.index("status")
    sheet = stylesheet(theme.current())
    for row in range(3):
        index = model.index(row, column)
        status = index.data()
        color = index.data(Qt.ItemDataRole.ForegroundRole)
        assert color.name() == status_color(status).name(), status
        assert f'[status="{status}"] {{ color: {color.name()};' in sheet, status


def test_the_shortcuts_dialog_puts_every_key_in_one_column(window, qtbot):
    from PySide6.QtGui import QTextTable

    from app.window import ShortcutsDialog

    window.show_shortcuts()
    (dialog,) = window.findChildren(ShortcutsDialog)
    document = dialog.text.document()
    tables = [f for f in document.rootFrame().childFrames() if isinstance(f, QTextTable)]
    assert len(tables) == 1 and tables[0].columns() == 2
    experiments = window.area("Experiments")
    experiments.ensure_loaded()
    rows = {what for rows in window.shortcuts().values() for what, _ in rows}
    assert "Compare" in rows  # named for what it does, whatever the selection's count


def test_the_scatter_titles_its_axes_in_text_colour_not_the_axis_line_colour(experiments, qtbot):
    from app import theme

    experiments.explore.setCurrentWidget(experiments.scatter)
    scatter = experiments.scatter
    qtbot.waitUntil(lambda: scatter.x_box.count() > 0, timeout=TIMEOUT_MS)
    scatter.redraw()
    for name in ("left", "bottom"):
        axis = scatter.plot.getAxis(name)
        assert axis.labelText and axis.labelStyle["color"] == theme.current().subtext, name


def test_the_plot_tabs_look_like_the_other_tabs(window, qtbot):
    """The Parallel coordinates / Scatter tabs were boxed, unlike every other tab bar."""
    window.show_area("Experiments")
    experiments = window.area("Experiments")
    experiments.ensure_loaded()
    qtbot.wait(20)
    areas, plots = window.tabs.tabBar(), experiments.explore.tabBar()
    assert plots.tabRect(0).height() == areas.tabRect(0).height()


def test_refusing_an_export_says_how_many_problems_it_does_not_list(window, dialogs, qtbot):
    from app.designer import commands

    doc = window.doc
    edge = next(e for e in doc.graph.edges if e.dst == "fc")
    doc.push(commands.Disconnect(doc, edge))  # every node before fc no longer reaches the output
    doc.wait_for_analysis()
    found = len(doc.analysis.problems)
    assert found > 8
    window.files.export("pytorch")
    [(_, title, text)] = dialogs.shown
    assert title == "The model has problems"
    assert text.count("\n• ") == 8 and f"and {found - 8} more" in text


def test_the_canvas_notes_stay_off_the_other_tabs_status_bar(window, qtbot):
    window.resize(1024, 700)
    window.show_area("Runs")
    qtbot.wait(20)
    window.designer.view.fit()  # as a resize re-fits the hidden canvas: the model is larger than it
    assert window.statusBar().currentMessage() == ""
    window.show_area("Designer")
    window.designer.view.fit()
    assert window.statusBar().currentMessage().startswith("Larger than the view")


@pytest.mark.parametrize("mode", ["designed", "script"])
def test_both_run_modes_fit_a_1024_window(runs_area, form, qtbot, mode):
    """The mode switch beside the title, and the script form's first problem beside its buttons,
    made the Runs area 1,050 and 1,181 pixels wide."""
    form.set_mode(mode)
    runs_area.resize(1024, 700)
    settle(qtbot, runs_area)
    assert runs_area.minimumSizeHint().width() <= 1024
    assert runs_area.width() == 1024
