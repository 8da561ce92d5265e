"""The plotting layer on its own: growing buffers with their min/max pyramid, honest smoothing,
a MetricPlot that draws a million points from a screenful of them, and what it does with the
series that used to draw wrongly — a constant learning rate, one point, a few evaluations — plus
the monitor's clock and log."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from app.plots import DENSE_POINTS, CurveBuffer, MetricPlot, debiased_ema
from app.plots.axes import DurationAxis, ValueAxis
from app.plots.buffer import BLOCK
from app.plots.ticks import nice_ticks, padded_range, tick_labels
from app.runs import live as live_module
from app.runs.follow import PAUSE_S, RunReader, parse_log_line
from app.runs.hardware import join_command
from app.runs.launcher import spec_for_file
from app.runs.live import LiveRun, LogLine
from app.runs.monitor import LogConsole, RunMonitor, plot_group
from engine.spec import validate_spec
from engine.store import RunStore
from tests.app.runs_fixtures import spec


def reference_ema(values, w):
    """TensorBoard's loop, verbatim in spirit."""
    last, k, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * w + (1 - w) * v
        k += 1
        out.append(last / (1 - w**k))
    return np.array(out)


def test_buffer_grows_by_doubling_and_keeps_every_point():
    buf = CurveBuffer(capacity=4)
    capacities = set()
    for i in range(0, 1000, 7):
        buf.extend(np.arange(i, i + 7), np.arange(i, i + 7) * 2.0)
        capacities.add(buf.capacity)
    assert buf.n == 1001 and np.array_equal(buf.x, np.arange(1001)) and np.array_equal(buf.y, buf.x * 2)
    assert all(c & (c - 1) == 0 for c in capacities)  # powers of two: grown by doubling


def test_view_keeps_every_spike_and_costs_a_screenful():
    rng = np.random.default_rng(0)
    n = 1_000_000
    x, y = np.arange(n, dtype=float), rng.normal(size=n)
    y[123_457] = 50.0  # a spike
    y[765_431] = -40.0
    buf = CurveBuffer()
    for a in range(0, n, 4096):
        buf.extend(x[a : a + 4096], y[a : a + 4096])
    xs, ys = buf.view(max_points=1600)
    assert 1600 <= len(xs) < 1600 * BLOCK
    assert ys.max() == 50.0 and ys.min() == -40.0 and xs[0] == 0 and xs[-1] <= n - 1
    # a zoomed span comes from finer blocks, down to the raw points
    xs, ys = buf.view(500_000, 500_100, 1600)
    assert np.array_equal(xs, np.arange(499_999, 500_102)) and np.array_equal(ys, y[499_999:500_102])
    # every span, however wide, comes back as about a screenful drawn from the coarsest level
    # that still has max_points blocks (what keeps redraws independent of the series' length)
    for span in (10_000, 100_000, n):
        xs, ys = buf.view(0, span, 1600)
        assert 1600 <= len(xs) < 1600 * BLOCK and ys.max() == y[: span + 2].max()


def test_truncate_after_drops_replayed_steps_and_the_pyramid_follows():
    buf = CurveBuffer()
    buf.extend(np.arange(1, 10_001), np.ones(10_000))
    generation = buf.generation
    buf.truncate_after(6000)
    assert buf.n == 6000 and buf.generation == generation + 1
    buf.extend(np.arange(6001, 8001), np.full(2000, 5.0))
    xs, ys = buf.view(max_points=100)
    assert ys.max() == 5.0 and xs[-1] <= 8000
    assert np.array_equal(buf.x, np.arange(1, 8001))


@pytest.mark.parametrize("w", [0.0, 0.3, 0.6, 0.9, 0.99, 0.999])
def test_smoothing_is_tensorboards_debiased_ema(w):
    rng = np.random.default_rng(1)
    values = 3 + rng.normal(size=3000)
    values[10], values[20] = np.nan, np.inf
    expected = values if w == 0 else reference_ema(values, w)
    got, _ = debiased_ema(values, w)
    finite = np.isfinite(expected)
    assert np.allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-12)
    assert np.isnan(got[10]) and np.isinf(got[20])  # passed through, not smoothed away
    assert got[0] == pytest.approx(
        values[0], rel=1e-12
    )  # debiased: the smoothed curve starts where the data starts
    # fed in chunks, as a live curve is, it gives the same curve
    state, parts = None, []
    for chunk in np.array_split(values, 17):
        part, state = debiased_ema(chunk, w, state)
        parts.append(part)
    assert np.allclose(np.concatenate(parts)[finite], expected[finite], rtol=1e-9, atol=1e-12)


def test_metric_plot_draws_a_million_points_from_a_screenful(qtbot):
    plot = MetricPlot("Loss")
    qtbot.addWidget(plot)
    plot.resize(800, 300)
    plot.show()
    n = 1_000_000
    steps = np.arange(1, n + 1, dtype=float)
    loss = 1 / np.sqrt(steps) + np.random.default_rng(2).normal(0, 0.01, n)
    buf = plot.add_curve("train/loss", "train")
    plot.add_curve("val/loss", "validation", smooth=False)
    buf.extend(steps, loss)
    plot.set_data("val/loss", steps[::1000], loss[::1000])
    plot.set_smoothing(0.9)
    assert plot.refresh()
    raw = plot.raw_item("train/loss")
    assert len(raw.xData) < 20_000 and raw.yData.max() == loss.max()
    smoothed = plot.smoothed_item("train/loss")  # a long curve: its smoothed line follows a moment later
    qtbot.waitUntil(lambda: smoothed.xData is not None and len(smoothed.xData) > 0)
    assert smoothed.isVisible() and len(smoothed.xData) < 20_000
    assert not plot.smoothed_item("val/loss").isVisible()
    assert not plot.refresh()  # nothing changed, nothing redrawn
    buf.extend([n + 1.0], [0.5])
    assert plot.refresh()

    plot.show_hover(500_000.4)
    text = plot.readout.text()
    assert "step 500,000" in text and "train" in text and "raw" in text and "validation" in text
    plot.set_log_y(True)
    plot.refresh()
    assert plot.plot_item.ctrl.logYCheck.isChecked()
    plot.set_smoothing(0)
    plot.refresh()
    assert not plot.smoothed_item("train/loss").isVisible()


def test_metric_keys_are_grouped_into_plots():
    assert plot_group("train/loss")[:2] == ("loss", "Loss") and plot_group("val/loss")[0] == "loss"
    assert plot_group("val/accuracy")[1] == "Validation accuracy"
    assert plot_group("val/perplexity")[1] == "Validation perplexity"
    assert plot_group("sys/gpu0_util")[0] == plot_group("sys/gpu3_util")[0] == "gpu_util"
    assert plot_group("sys/gpu1_mem_mb")[0] == "gpu_mem" and plot_group("sys/rss_mb")[0] == "rss"
    assert plot_group("train/lr")[3] is False  # a schedule is exact: never smoothed
    assert plot_group("train/epoch") is None
    assert plot_group("train/soft_loss")[0] == "train:soft_loss"  # whatever a task logs is shown
    assert plot_group("custom/thing")[0] == "custom/thing"


def test_small_pieces():
    assert parse_log_line("2026-11-23 20:20:04 ERROR  the loss became nan")[1:] == (
        "error",
        "the loss became nan",
    )
    assert parse_log_line("not a log line") == (None, "info", "not a log line")
    multi = validate_spec(
        {**spec(), "hardware": {"nnodes": "2", "rdzv_endpoint": "10.0.0.5:29400", "rdzv_id": "sweep-1"}}
    )
    assert join_command("/tmp/run spec.json", multi) == (
        "trainbench join '/tmp/run spec.json' --rdzv-endpoint 10.0.0.5:29400 --rdzv-id sweep-1 --nnodes 2 --node-rank 1"
    )
    assert join_command(None, spec()) is None
    normalised = validate_spec({"task": {"kind": "prune"}, "prune": {"parent": 1}})
    written = spec_for_file(normalised)  # what a prune run inherits is left out, not written as null
    assert "model" not in written and "data" not in written and written["prune"]["parent"] == 1
    assert validate_spec(written) == normalised
    assert spec_for_file(spec()) == spec()


# ------------------------------------------------------------------ ranges and ticks


@pytest.mark.parametrize(
    "lo, hi",
    [(1e-3, 1e-3), (151_498, 151_498), (0.9931, 0.9944), (0.0, 0.0), (-2.5, -2.5), (3e-7, 3.0001e-7), (0, 1)],
)
def test_ticks_on_any_range_are_round_distinct_and_labelled_distinctly(lo, hi):
    step, values = nice_ticks(lo, hi, 5)
    labels = tick_labels(values, step)
    shown_lo, shown_hi = padded_range(lo, hi)
    assert shown_lo < shown_hi and shown_lo <= lo and hi <= shown_hi  # a degenerate range gets room
    assert 2 <= len(values) <= 10 and all(shown_lo <= v <= shown_hi for v in values)
    assert len(set(labels)) == len(labels)  # never the same label twice ("151498" ×5, "0.994 0.994")
    assert all(
        float(text.replace(",", "")) == pytest.approx(v, rel=1e-9, abs=1e-15)
        for v, text in zip(values, labels, strict=True)
    )


def test_relative_time_is_ticked_at_round_durations_and_steps_at_whole_numbers(qapp):
    axis = DurationAxis("bottom")
    (step, values), *_ = axis.tickValues(0, 3600, 600)
    assert step == 600 and axis.tickStrings(values, 1, step) == [
        "0:00",
        "10:00",
        "20:00",
        "30:00",
        "40:00",
        "50:00",
        "1:00:00",
    ]
    (step, values), *_ = axis.tickValues(0, 50, 600)
    assert axis.tickStrings(values, 1, step)[:3] == ["0 s", "10 s", "20 s"]
    steps = ValueAxis("bottom", integer=True)
    (step, values), *_ = steps.tickValues(0.2, 3.7, 800)  # a wide plot of four steps: no 0.5s
    assert step == 1 and values == [1.0, 2.0, 3.0]


def test_a_constant_learning_rate_gets_a_padded_axis_that_reads_its_value(qtbot):
    """Was: axis -0.5 … 0.5, the line at "0"."""
    plot = MetricPlot("Learning rate")
    qtbot.addWidget(plot)
    plot.resize(500, 240)
    plot.show()
    plot.add_curve("lr", "learning rate", smooth=False)
    plot.set_data("lr", np.arange(1, 1501), np.full(1500, 1e-3))
    plot.refresh()
    vb = plot.plot_item.getViewBox()
    qtbot.waitUntil(lambda: vb.viewRange()[1][1] - vb.viewRange()[1][0] < 1e-3)
    lo, hi = vb.viewRange()[1]
    assert 0.85e-3 < lo < 1e-3 < hi < 1.15e-3  # about ±10 % around the value
    axis = plot.plot_item.getAxis("left")
    (step, values), *_ = axis.tickValues(lo, hi, 200)
    labels = axis.tickStrings(values, 1, step)
    assert "0.00100" in labels and not any(text.strip("-0.") == "" for text in labels)
    plot.set_log_y(True)
    plot.refresh()
    qtbot.waitUntil(lambda: vb.viewRange()[1][1] < -2.9)  # log10: about -3 ± 0.04
    lo, hi = vb.viewRange()[1]
    assert -3.1 < lo < -3 < hi < -2.9
    levels = axis.tickValues(lo, hi, 200)
    values = [v for _spacing, vs in levels for v in vs]
    assert values and len(set(axis.tickStrings(values, 1, None))) == len(values)


def test_a_single_point_is_a_marker_on_padded_axes_and_sparse_series_are_never_smoothed(qtbot):
    plot = MetricPlot("Validation accuracy")
    qtbot.addWidget(plot)
    plot.resize(500, 240)
    plot.show()
    plot.set_smoothing(0.9)
    plot.add_curve("val/accuracy", "validation")  # smooth=True: density alone keeps it raw
    plot.set_data("val/accuracy", [300], [0.91])
    plot.refresh()
    curve = plot.curves["val/accuracy"]
    assert curve.raw.opts["symbol"] == "o" and not curve.is_smoothed and curve.line is curve.raw
    assert list(curve.raw.getOriginalDataset()[1]) == [0.91]
    vb = plot.plot_item.getViewBox()
    qtbot.waitUntil(lambda: vb.viewRange()[1][0] > 0.5)
    (x0, x1), (y0, y1) = vb.viewRange()
    assert x0 < 300 < x1 and x1 - x0 < 100 and y0 < 0.91 < y1 and y1 - y0 < 0.3
    bottom = plot.plot_item.getAxis("bottom")
    (step, ticks), *_ = bottom.tickValues(x0, x1, 400)
    assert step >= 1 and all(t == int(t) for t in ticks)  # steps have no halves
    # it grows into a dense series: from then on it is smoothed, its raw points faint behind
    plot.set_data("val/accuracy", np.arange(1, DENSE_POINTS + 1), np.linspace(0.5, 0.9, DENSE_POINTS))
    plot.refresh()
    assert curve.is_smoothed and curve.raw.opts["symbol"] is None and curve.smoothed.isVisible()
    assert curve.raw.opts["pen"].color().alpha() < 255
    plot.set_data("val/accuracy", np.arange(1, DENSE_POINTS), np.linspace(0.5, 0.9, DENSE_POINTS - 1))
    plot.refresh()
    assert not curve.is_smoothed and not curve.smoothed.isVisible()


# ------------------------------------------------------------------ the monitor's clock and log


class _Clock:
    """The monitor's monotonic clock, moved by the test instead of by the machine's load."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    time = staticmethod(time.time)


def test_elapsed_counts_the_whole_active_life_across_stop_and_resume(qtbot, monkeypatch):
    """Was: 1:05 at stop, 0:06 after resume. The engine's progress events carry the whole
    active life; the monitor shows that, and its clock stands while the run does not train."""
    clock = _Clock()
    monkeypatch.setattr(live_module, "time", clock)
    live = LiveRun(run_id=7, name="resumed")
    monitor = RunMonitor(live)
    qtbot.addWidget(monitor)
    live.apply_event(
        {"event": "run_started", "run_id": 7, "name": "resumed", "total_steps": 1000, "resumed_from": 0}
    )
    live.apply_event(
        {"event": "progress", "step": 600, "total_steps": 1000, "elapsed_s": 65.0, "eta_s": 43.0}
    )
    clock.now += 0.4  # trained a little past the event, then stopped
    live.set_status("stopped")
    stopped_at = live.elapsed()
    assert stopped_at == pytest.approx(65.4)
    clock.now += 300
    assert live.elapsed() == stopped_at and live.eta() is None  # a stopped run's clock stands
    monitor.refresh()
    assert "elapsed <b>1:05</b>" in monitor.facts.text()
    live.apply_event({"event": "run_started", "run_id": 7, "total_steps": 1000, "resumed_from": 600})
    assert live.elapsed() == stopped_at  # the time it stood still is not counted
    live.apply_event(
        {"event": "progress", "step": 610, "total_steps": 1000, "elapsed_s": 66.0, "eta_s": 40.0}
    )
    monitor.refresh()
    assert "elapsed <b>1:06</b>" in monitor.facts.text() and "ETA <b>0:40</b>" in monitor.facts.text()
    live.apply_event({"event": "run_ended", "status": "completed", "summary": {"elapsed_s": 101.0}})
    monitor.refresh()
    assert live.elapsed() == 101.0 and "elapsed <b>1:41</b>" in monitor.facts.text()


def test_a_run_read_from_the_store_counts_its_training_time_not_its_pauses(db_path):
    store = RunStore(db_path)
    run_id = store.create_run(spec(name="paused"))
    store.start_run(run_id)
    t0 = 1_700_000_000.0
    first, second = np.arange(1, 101), np.arange(101, 201)
    walls = np.concatenate(
        [t0 + first * 0.1, t0 + 10 + 5 * PAUSE_S + (second - 100) * 0.1]
    )  # 10 s, a pause, 10 s
    steps = np.concatenate([first, second])
    store.add_metrics(run_id, {"train/loss": (steps, 1 / np.sqrt(steps), walls)})
    store.finish_run(run_id, "completed", {"total_steps": 200})
    live = LiveRun(run_id=run_id)
    RunReader(store, live).load()
    assert live.step == 200 and live.elapsed() == pytest.approx(
        19.8, abs=0.01
    )  # 99 + 99 gaps of 0.1 s, not the pause
    store.update_summary(run_id, elapsed_s=42.0)  # the engine's own figure wins once it has one
    RunReader(store, live).load()
    assert live.elapsed() == 42.0
    store.close()


def test_the_log_wraps_long_lines_under_their_text_with_the_time_in_view(qtbot):
    console = LogConsole()
    qtbot.addWidget(console)
    console.resize(500, 200)
    console.show()
    qtbot.waitExposed(console)
    long = "a long message " * 40 + "/a/path/without/any/spaces/" * 10
    console.add_lines([LogLine(1_700_000_000.0, "info", "short"), LogLine(1_700_000_001.0, "warning", long)])
    assert console.horizontalScrollBar().maximum() == 0  # nothing to scroll sideways to
    block = console.document().lastBlock()
    assert block.text().endswith(long) and block.text()[:8].count(":") == 2  # HH:MM:SS first
    text_at = len(block.text()) - len(long)

    def hangs_under_the_text() -> bool:
        layout = block.layout()
        starts = layout.lineAt(0).cursorToX(text_at)[0]  # where the message begins, after time and level
        return layout.lineCount() > 3 and all(
            layout.lineAt(i).x() == pytest.approx(starts, abs=0.5) for i in range(1, layout.lineCount())
        )

    assert hangs_under_the_text()
    font = console.font()
    font.setPointSizeF(font.pointSizeF() * 1.5)
    console.setFont(font)  # as the Runs area's stylesheet does once the console is in it
    qtbot.waitUntil(hangs_under_the_text)
