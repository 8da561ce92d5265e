"""The plotting layer on its own: growing buffers with their min/max pyramid, honest smoothing,
and a MetricPlot that draws a million points from a screenful of them."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from app.plots import CurveBuffer, MetricPlot, debiased_ema
from app.plots.buffer import BLOCK
from app.runs.follow import parse_log_line
from app.runs.hardware import join_command
from app.runs.launcher import spec_for_file
from app.runs.monitor import plot_group
from engine.spec import validate_spec
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
    start = time.perf_counter()
    for _ in range(100):
        buf.view(0, n, 1600)
    assert (time.perf_counter() - start) / 100 < 0.005


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
