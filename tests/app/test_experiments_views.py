"""The many-runs views under the runs table: axes that read right when every run has (nearly)
the same value, and a theme switch while a view is hidden and behind the table."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from app import theme
from app.experiments import fields
from app.experiments.parallel import axis_ticks
from engine.store import RunStore
from tests.app.experiments_synthetic import add_synthetic_runs, open_area
from tests.conftest import example


@pytest.fixture
def light_theme_after():
    """Theme switches are global: every test leaves the light theme behind it."""
    yield
    theme.apply(QApplication.instance(), "light")


def drawn_labels(view) -> list[str]:
    """Tick labels the parallel coordinates drew (their TextItems, titles excluded)."""
    titles = {a.title for a in view.axes}
    texts = [item.toPlainText() for item in view._items if hasattr(item, "toPlainText")]  # noqa: SLF001
    return [t for t in texts if t not in titles and not t.endswith(" (log)")]


@pytest.mark.parametrize(
    "values",
    [[0.9931, 0.9936, 0.9944, 0.9940], [151_498] * 5, [1e-4, 3e-3, 2e-2, 1e-1], [0.1, 0.25, 0.5, 0.75, 0.9]],
)
def test_parallel_axes_label_narrow_and_degenerate_ranges_distinctly(values):
    axis = fields.make_axis("metric:val/accuracy", values)
    ticks = axis_ticks(axis)
    labels = [label for _, label in ticks]
    assert len(set(labels)) == len(labels) and all(0 <= p <= 1 for p, _ in ticks)  # was "0.994 0.994 0.993"
    if len(set(values)) == 1:
        assert ticks == [(0.5, "151,498")]
    else:
        for position, label in ticks:  # each label is the value at its position
            assert axis.value_at(position) == pytest.approx(float(label.replace(",", "")), rel=1e-6)


def test_scatter_of_runs_sharing_one_value_gets_a_padded_axis_with_distinct_ticks(qtbot, db_path):
    store = RunStore(db_path)
    for i in range(6):  # every pruned child of one parent has the same parameter count
        rid = store.create_run({**example("digits_cnn"), "name": f"child-{i}"})
        store.start_run(rid)
        store.add_metrics(
            rid, {"val/accuracy": (np.array([10]), np.array([0.90 + i / 100]), np.array([1.0]))}
        )
        store.finish_run(rid, "completed", {"params": 151_498})
    store.close()
    area = open_area(qtbot, db_path)
    area.explore.setCurrentWidget(area.scatter)
    sc = area.scatter
    qtbot.waitUntil(lambda: sc.x_box.count() > 0, timeout=10_000)
    sc.set_fields("summary:params", "metric:val/accuracy")
    vb = sc.plot.getPlotItem().getViewBox()
    qtbot.waitUntil(lambda: vb.viewRange()[0][1] - vb.viewRange()[0][0] > 1000)
    x0, x1 = vb.viewRange()[0]
    assert x0 < 151_498 < x1 and x1 - x0 < 0.5 * 151_498  # about ±10 %, not ±0.5
    axis = sc.plot.getPlotItem().getAxis("bottom")
    levels = axis.tickValues(x0, x1, axis.width() or 600)
    (step, values), *_ = levels
    labels = axis.tickStrings(values, 1, step)
    assert len(values) >= 2 and len(set(labels)) == len(labels)  # was "151498" ×5


def test_a_theme_switch_while_the_views_are_hidden_and_behind_the_table_waits_for_them(
    qtbot, db_path, light_theme_after
):
    """Was: IndexError in ParallelCoordinates.redraw (the new rows against the old columns)."""
    store = RunStore(db_path)
    add_synthetic_runs(store, example("digits_mlp"), 60, points=30)
    store.close()
    area = open_area(qtbot, db_path)
    par, sc = area.parallel, area.scatter
    qtbot.waitUntil(lambda: not par._dirty and bool(par.axes), timeout=10_000)  # noqa: SLF001
    drawn_before = len(par.rows)
    area.show_compare()  # the browse page, and the views on it, are hidden now
    assert not par.isVisible()
    area.browser.search.setText("sweep-000")  # ten runs match: the rows change while hidden
    area.browser.apply_filter()
    assert len(par.rows) < drawn_before and par._dirty  # noqa: SLF001 - rebuilt only when shown
    theme.apply(QApplication.instance(), "dark")  # must not draw the new rows against the old axes
    assert par._restyle and sc._restyle  # noqa: SLF001 - waiting to be shown
    area.show_browse()
    qtbot.waitUntil(lambda: not par._dirty and par.isVisible(), timeout=10_000)  # noqa: SLF001
    assert par.positions().shape[0] == len(par.rows) and not par._restyle  # noqa: SLF001
    assert par.plot.backgroundBrush().color().name() == theme.DARK.panel
    labels = drawn_labels(par)
    assert labels and all(label for label in labels)
    area.explore.setCurrentWidget(sc)
    qtbot.waitUntil(lambda: not sc._dirty, timeout=10_000)  # noqa: SLF001
    assert len(sc.xs) == len(sc.rows) == len(sc.ids)
    assert sc.plot.backgroundBrush().color().name() == theme.DARK.panel
    theme.apply(QApplication.instance(), "light")  # the scatter is shown and current: redrawn at once
    assert sc.plot.backgroundBrush().color().name() == theme.LIGHT.panel and not sc._restyle  # noqa: SLF001
    assert par._restyle  # noqa: SLF001 - the parallel coordinates, in the other tab, when shown
    area.explore.setCurrentWidget(par)
    assert par.plot.backgroundBrush().color().name() == theme.LIGHT.panel and not par._restyle  # noqa: SLF001
