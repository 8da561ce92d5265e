"""The comparison view on its own: the shared `MetricPlot` with one curve per run, smoothing as
TensorBoard does it and never over sparse series, the x-axis modes, the hover readout naming each
run, legend toggles, long curves drawn from the buffer's pyramid, log-y and exports."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app.experiments.colors import run_color
from app.experiments.compare import CompareView
from app.experiments.hparams import BEST_ROLE
from app.plots.buffer import BLOCK
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
    assert list(plot.curves) == ids
    for rid in ids:
        curve = plot.curves[rid]
        assert curve.line is curve.smoothed and curve.line.opts["pen"].color() == run_color(rid)
        assert curve.raw.opts["pen"].color().alpha() < 255  # raw: faint, behind
        assert curve.raw.zValue() < curve.line.zValue()
        assert np.allclose(curve.smooth_buffer.y, debiased_ema(curve.buffer.y, view.weight)[0])
    assert [c.text().split()[0] for c in view.legend.chips.values()] == ["run-0", "run-1", "run-2"]


def test_x_axis_by_step_epoch_wall_time_and_relative_time(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    view.populate_all()
    plot = view.plots["val/accuracy"]
    buffer = plot.curves[ids[1]].buffer
    steps, _, walls = store.series(ids[1], "val/accuracy")
    assert np.array_equal(buffer.x, steps)
    view.set_x_mode("epoch")
    assert np.allclose(buffer.x, steps / 5000)
    view.set_x_mode("wall")
    assert np.array_equal(buffer.x, walls)
    view.set_x_mode("relative")
    start = store.get_run(ids[1])["started_at"]
    assert np.allclose(buffer.x, walls - start)
    assert view.plots["train/loss"].plot_item.getAxis("bottom").labelText == "Relative time"
    vb = plot.plot_item.getViewBox()  # fitted to the new x
    qtbot.waitUntil(
        lambda: vb.viewRange()[0][0] <= (walls - start).min() <= (walls - start).max() <= vb.viewRange()[0][1]
    )
    view.set_x_mode("step")
    assert np.array_equal(buffer.x, steps)


def test_hover_reads_out_every_runs_value_at_the_cursor_labelled_with_its_run(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    view.populate_all()
    plot = view.plots["train/loss"]
    hits = plot.values_at(25_000.4)
    assert [h[0].key for h in hits] == ids and all(h[1] == 25_000 for h in hits)
    for curve, _x, raw, smoothed in hits:
        assert raw == curve.buffer.y[24_999] and smoothed == curve.smooth_buffer.y[24_999]
    vb = plot.plot_item.getViewBox()
    pos = vb.mapViewToScene(QPointF(25_000, float(np.mean(vb.viewRange()[1]))))
    plot._on_mouse((pos,))  # noqa: SLF001 - as the scene reports a mouse move
    text = plot.readout.text()
    assert plot.readout.isVisible() and "step 25,000" in text
    assert all(f"run-{i} #{rid}" in text for i, rid in enumerate(ids))
    # highest value first: run-2's loss is the highest, run-0's the lowest
    assert text.index(f"#{ids[2]}") < text.index(f"#{ids[1]}") < text.index(f"#{ids[0]}")
    other = view.plots["val/accuracy"]  # follows with its crosshair, without a readout of its own
    assert other._crosshair.isVisible() and not other.readout.isVisible()  # noqa: SLF001
    assert other._crosshair.value() == pytest.approx(25_000)  # noqa: SLF001 - its evaluation there
    plot.leaveEvent(None)
    assert not plot.readout.isVisible() and not other._crosshair.isVisible()  # noqa: SLF001


def test_legend_hides_a_run_in_every_plot(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    view.populate_all()
    qtbot.mouseClick(view.legend.chips[ids[0]], Qt.MouseButton.LeftButton)
    assert not view.plots["train/loss"].curves[ids[0]].line.isVisible()
    assert not view.plots["val/accuracy"].curves[ids[0]].line.isVisible()
    assert [h[0].key for h in view.plots["train/loss"].values_at(100)] == ids[1:]
    qtbot.mouseClick(view.legend.chips[ids[0]], Qt.MouseButton.LeftButton)
    assert view.plots["train/loss"].curves[ids[0]].line.isVisible()


def test_long_curves_hand_pyqtgraph_a_screenful_that_keeps_every_spike(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    plot = view.plots["train/loss"]
    curve = plot.curves[ids[0]]
    x, y = curve.raw.getOriginalDataset()
    width = 2 * plot.plot_item.getViewBox().width()
    assert len(x) < BLOCK * width < 50_000  # the buffer's min/max pyramid, not every point
    assert y.max() == curve.buffer.y.max() and y.min() == curve.buffer.y.min()
    plot.plot_item.getViewBox().setXRange(20_000, 20_300, padding=0)

    def zoomed_in_every_point_is_drawn() -> bool:
        x, y = curve.raw.getOriginalDataset()
        inside = (x >= 20_000) & (x <= 20_300)
        return np.array_equal(x[inside], np.arange(20_000, 20_301)) and np.array_equal(
            y[inside], curve.buffer.y[19_999:20_300]
        )

    qtbot.waitUntil(zoomed_in_every_point_is_drawn)


def test_smoothing_off_and_log_y(qtbot, three_runs):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    view.smoothing.setValue(0)
    curve = view.plots["train/loss"].curves[ids[0]]
    assert curve.line is curve.raw and not curve.smoothed.isVisible()
    assert curve.raw.opts["pen"].color().alpha() == 255
    view.log_y.setChecked(True)
    assert view.plots["train/loss"].plot_item.ctrl.logYCheck.isChecked()


def test_smoothing_never_reorders_runs_whose_sparse_series_end_in_a_known_order(qtbot, db_path):
    """Eight evaluations each: `late` ends best (0.95) after a poor start, `steady` second (0.90).
    An EMA of 0.6 would put `late` below `steady`; the table marks `late` best, and so must the plot."""
    store = RunStore(db_path)
    evals = {
        "late": [0.30, 0.35, 0.40, 0.45, 0.50, 0.60, 0.80, 0.95],
        "steady": [0.86, 0.87, 0.88] + [0.89] * 4 + [0.90],
    }
    ema = {name: debiased_ema(np.array(v), 0.6)[0][-1] for name, v in evals.items()}
    assert ema["late"] < ema["steady"]  # what smoothing these would have shown
    ids = {}
    for name, values in evals.items():
        rid = ids[name] = store.create_run({"name": name})
        store.start_run(rid)
        steps = np.arange(1, 9) * 100
        dense = np.arange(1, 801)
        store.add_metrics(
            rid,
            {
                "val/accuracy": (steps, np.array(values), 1_700_000_000 + steps * 0.1),
                "train/loss": (dense, 1 / np.sqrt(dense) + 0.01 * np.sin(dense), 1_700_000_000 + dense * 0.1),
            },
        )
        store.finish_run(rid, "completed", {})
    view = compare_view(qtbot, store, [ids["steady"], ids["late"]])
    assert view.weight == pytest.approx(0.6)
    best = view.table_model.find("final_metrics", "val/accuracy")
    marked = [
        r["id"]
        for c, r in enumerate(view.table_model.runs, 1)
        if view.table_model.index(best, c).data(BEST_ROLE)
    ]
    assert marked == [ids["late"]]
    view.populate_all()
    plot = view.plots["val/accuracy"]
    for name, rid in ids.items():
        curve = plot.curves[rid]
        assert not curve.is_smoothed and not curve.smoothed.isVisible() and curve.line is curve.raw
        assert curve.raw.opts["symbol"] == "o"  # every evaluation is a point
        assert curve.raw.getOriginalDataset()[1][-1] == evals[name][-1]
    assert plot.curves[ids["late"]].raw.opts["pen"].color().alpha() == 255  # drawn in full, not faint
    assert view.plots["train/loss"].curves[ids["late"]].is_smoothed  # the dense curve still is
    plot.show_hover(800)
    text = plot.readout.text()
    assert text.index("late") < text.index("steady") and "0.95" in text and "0.9" in text


def test_export_plots_as_png_and_svg_and_the_table_as_csv(qtbot, three_runs, tmp_path):
    store, ids = three_runs
    view = compare_view(qtbot, store, ids)
    pngs = view.export_plots_to(tmp_path, "png")
    svgs = view.export_plots_to(tmp_path, "svg")
    assert [p.name for p in pngs] == ["train_loss.png", "val_accuracy.png"]
    assert all(p.stat().st_size > 1000 for p in pngs)
    assert "<svg" in svgs[0].read_text()[:2000] and "train/loss" in svgs[0].read_text()
    assert not view.plots["train/loss"].plot_item.titleLabel.isVisible()  # the title went back off the plot
    text = view.export_table_to(tmp_path / "table.csv").read_text()
    assert text.splitlines()[0] == "section,field,#1 run-0,#2 run-1,#3 run-2"
    assert "params,optim.lr,0.01,0.001,0.0001" in text
