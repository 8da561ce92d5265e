"""The comparison view on its own: smoothing as TensorBoard does it (the shared app.plots EMA), the x-axis modes, hover
readout, legend toggles, long-series overview, log-y and exports."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app.experiments.colors import run_color
from app.experiments.compare import CompareView
from app.experiments.curves import OVERVIEW_BINS, peak_decimate
from app.plots.smoothing import debiased_ema
from engine.store import RunStore


def tensorboard_ema(values, weight):
    """TensorBoard's own loop (tf-smoothing: debiased, non-finite points pass through)."""
    last, n, out = 0.0, 0, []
    for v in values:
        if not np.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight**n))
    return np.array(out)


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99, 0.999])
def test_ema_is_tensorboards_debiased_ema(weight):
    values = np.random.default_rng(1).normal(size=20_000).cumsum()
    values[[3, 500, 7000]] = np.nan
    smooth = debiased_ema(values, weight)[0]
    expected = tensorboard_ema(values, weight)
    assert np.array_equal(np.isnan(smooth), np.isnan(expected))
    assert np.nanmax(np.abs(smooth - expected)) < 1e-9
    assert smooth[0] == pytest.approx(
        values[0], rel=1e-12
    )  # debiased: starts on the first point, not near zero


def test_peak_decimation_keeps_every_spike():
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 5000)
    y[[1234, 77_777]] = [50.0, -40.0]
    x2, (y2,) = peak_decimate(x, [y], OVERVIEW_BINS)
    assert len(x2) <= 2 * OVERVIEW_BINS + OVERVIEW_BINS and y2.max() == 50 and y2.min() == -40


@pytest.fixture
def three_runs(db_path):
    """Three runs with 50,000 loss points each, an epoch series and a short val series."""
    store = RunStore(db_path)
    ids = []
    for i in range(3):
        rid = store.create_run({"name": f"run-{i}", "optim": {"lr": 10.0 ** -(i + 2)}})
        store.start_run(rid)
        steps = np.arange(1, 50_001)
        walls = 1_700_000_000 + i * 1000 + steps * 0.01
        loss = np.exp(-steps / 10_000) * (1 + i / 4) + 0.05 * np.random.default_rng(i).standard_normal(
            len(steps)
        )
        vs = steps[4999::5000]
        store.add_metrics(
            rid,
            {
                "train/loss": (steps, loss, walls),
                "train/epoch": (steps, steps / 5000, walls),
                "val/accuracy": (vs, 0.5 + 0.04 * np.arange(len(vs)) + i / 100, walls[vs - 1]),
            },
        )
        store.finish_run(rid, "completed", {"params": 1000 * (i + 1)})
        ids.append(rid)
    return store, ids


def compare_view(qtbot, store, ids) -> CompareView:
    view = CompareView(store)
    qtbot.addWidget(view)
    view.resize(1400, 900)
    view.show()
    qtbot.waitExposed(view)
    view.set_runs(ids)
    qtbot.waitUntil(lambda: "train/loss" in view._series)  # noqa: SLF001
    return view


def test_one_plot_per_metric_in_each_runs_colour(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    assert list(view.plots) == ["train/loss", "val/accuracy"]  # train/epoch is an x-axis, not a plot
    plot = view.plots["train/loss"]
    for rid in ids:
        curve = plot.curves[rid]
        assert curve.line.opts["pen"].color() == run_color(rid)
        assert curve.raw.opts["pen"].color().alpha() < 255  # raw: faint, behind
        assert curve.raw.zValue() < curve.line.zValue()
        assert np.allclose(curve.series.smooth, debiased_ema(curve.series.values, view.weight)[0])
    assert [c.text().split()[0] for c in view.legend.chips.values()] == ["run-0", "run-1", "run-2"]


def test_x_axis_by_step_epoch_wall_time_and_relative_time(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    series = view.plots["val/accuracy"].curves[ids[1]].series
    steps, _, walls = store.series(ids[1], "val/accuracy")
    assert np.array_equal(series.x, steps)
    view.set_x_mode("epoch")
    assert np.allclose(series.x, steps / 5000)
    view.set_x_mode("wall")
    assert np.array_equal(series.x, walls)
    view.set_x_mode("relative")
    start = store.get_run(ids[1])["started_at"]
    assert np.allclose(series.x, walls - start)
    assert view.plots["train/loss"].plotItem.getAxis("bottom").labelText == "Relative time"


def test_hover_reads_out_every_runs_value_at_the_cursor(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    plot = view.plots["train/loss"]
    hits = plot.values_at(25_000.4)
    assert [h[0].run_id for h in hits] == ids and all(h[1] == 25_000 for h in hits)
    for s, _x, smooth, raw in hits:
        assert raw == s.values[24_999] and smooth == s.smooth[24_999]
    vb = plot.plotItem.vb
    pos = vb.mapViewToScene(QPointF(25_000, float(np.mean(vb.viewRange()[1]))))
    plot._mouse_moved(pos)  # noqa: SLF001 - as the scene reports a mouse move
    assert plot.readout.isVisible() and all(f"#{rid}" in plot.readout.text() for rid in ids)
    other = view.plots["val/accuracy"]
    assert other.crosshair.isVisible() and other.crosshair.value() == pytest.approx(plot.crosshair.value())


def test_legend_hides_a_run_in_every_plot(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    view.populate_all()
    qtbot.mouseClick(view.legend.chips[ids[0]], Qt.MouseButton.LeftButton)
    assert not view.plots["train/loss"].curves[ids[0]].line.isVisible()
    assert not view.plots["val/accuracy"].curves[ids[0]].line.isVisible()
    assert [h[0].run_id for h in view.plots["train/loss"].values_at(100)] == ids[1:]
    qtbot.mouseClick(view.legend.chips[ids[0]], Qt.MouseButton.LeftButton)
    assert view.plots["train/loss"].curves[ids[0]].line.isVisible()


def test_long_curves_draw_an_overview_until_zoomed_in(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    plot = view.plots["train/loss"]
    curve = plot.curves[ids[0]]
    assert not curve.detailed and len(curve.raw.getOriginalDataset()[0]) < 10_000
    plot.plotItem.vb.setXRange(20_000, 21_000, padding=0)
    assert curve.detailed and len(curve.raw.getOriginalDataset()[0]) == 50_000
    plot.plotItem.vb.enableAutoRange()
    qtbot.waitUntil(lambda: not curve.detailed)


def test_smoothing_off_and_log_y(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    view.smoothing.setValue(0)
    curve = view.plots["train/loss"].curves[ids[0]]
    assert not curve.raw.isVisible() and np.array_equal(curve.series.smooth, curve.series.values)
    view.log_y.setChecked(True)
    assert view.plots["train/loss"].plotItem.ctrl.logYCheck.isChecked()


def test_export_plots_as_png_and_svg_and_the_table_as_csv(qtbot, three_runs, tmp_path):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    pngs = view.export_plots_to(tmp_path, "png")
    svgs = view.export_plots_to(tmp_path, "svg")
    assert [p.name for p in pngs] == ["train_loss.png", "val_accuracy.png"]
    assert all(p.stat().st_size > 1000 for p in pngs)
    assert "<svg" in svgs[0].read_text()[:2000]
    text = view.export_table_to(tmp_path / "table.csv").read_text()
    assert text.splitlines()[0] == "section,field,#1 run-0,#2 run-1,#3 run-2"
    assert "params,optim.lr,0.01,0.001,0.0001" in text
