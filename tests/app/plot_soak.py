"""Soak: four of the app's live `MetricPlot`s, each fed a batch of new points per update and
redrawn, many times over, as the Runs monitor does while runs stream.

Run as a script (in its own process, so a hard abort inside Qt or pyqtgraph is a non-zero exit
rather than a dead test runner): prints one JSON line with what it did and the process's
resident memory at the middle and at the end, next to the bytes the curves' buffers legitimately
grew by in between.

    python -m tests.app.plot_soak --updates 2000 --points 400000

This is what the PySide6 pin guards against: PySide6 6.12.0 with pyqtgraph 0.14.0 aborts within
~100 such updates (`Fatal Python error: none_dealloc`); 6.11.3 runs clean.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def buffer_bytes(plots) -> int:
    """Bytes held by every curve's buffers (points, pyramid, smoothed copy): expected growth."""
    total = 0
    for plot in plots:
        for curve in plot._curves.values():
            for buf in (curve.buffer, curve.smooth_buffer):
                total += buf._x.nbytes + buf._y.nbytes
                total += sum(lv.x.nbytes + lv.lo.nbytes + lv.hi.nbytes for lv in buf._levels)
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--updates", type=int, default=2000, help="updates per plot")
    p.add_argument("--points", type=int, default=400_000, help="points per plot at the end")
    p.add_argument("--plots", type=int, default=4)
    p.add_argument(
        "--per-frame",
        type=int,
        default=5,
        help="updates between two paints (the monitor: ~10 frames/s, data arriving faster)",
    )
    p.add_argument("--grab-every", type=int, default=50, help="render the window to an image this often")
    args = p.parse_args(argv)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QGridLayout, QWidget

    from app.plots import MetricPlot

    app = QApplication.instance() or QApplication([])
    window = QWidget()
    grid = QGridLayout(window)
    plots = []
    for i in range(args.plots):
        plot = MetricPlot(f"soak {i}")
        plot.add_curve("train", "train")
        plot.add_curve("val", "validation", smooth=False)
        plot.set_smoothing(0.6)
        grid.addWidget(plot, i // 2, i % 2)
        plots.append(plot)
    window.resize(820, 540)
    window.show()

    per_update = -(-args.points // args.updates)
    rng = np.random.default_rng(0)
    steps = np.arange(1, per_update * args.updates + 1, dtype=np.float64)
    noise = rng.normal(0, 0.05, size=len(steps))
    loss = 2.0 * np.exp(-steps / (len(steps) / 5)) + 0.1 + np.abs(noise)
    state = {"n": 0, "mid": None, "frames": 0, "started": time.perf_counter()}

    def update() -> int:
        i = state["n"]
        a, b = i * per_update, (i + 1) * per_update
        for plot in plots:
            plot.append("train", steps[a:b], loss[a:b])
            if i % 10 == 9:  # an evaluation every tenth update, as in a run
                plot.append("val", steps[b - 1 : b], loss[b - 1 : b] * 1.1)
            plot.refresh()
        state["n"] = i + 1
        return i

    def tick() -> None:
        state["frames"] += 1
        for _ in range(args.per_frame):  # then back to the event loop, which paints
            a = update() * per_update
            if state["n"] >= args.updates:
                break
        n = state["n"]
        if n % args.grab_every < args.per_frame:
            window.grab()
        if n // args.per_frame == args.updates // 4 // args.per_frame:
            plots[0].set_log_y(True)  # other paths of the drawing code, mid-stream
            plots[1].show_hover(float(steps[a]))
        if state["mid"] is None and n >= args.updates // 2:
            state["mid"] = (rss_mb(), buffer_bytes(plots))
        if n >= args.updates:
            timer.stop()
            app.processEvents()
            window.grab()
            mid_rss, mid_bytes = state["mid"]
            end_rss, end_bytes = rss_mb(), buffer_bytes(plots)
            result = {
                "updates": n,
                "frames": state["frames"],
                "plots": len(plots),
                "points_per_plot": int(plots[0].buffer("train").n),
                "seconds": round(time.perf_counter() - state["started"], 2),
                "rss_mid_mb": round(mid_rss, 1),
                "rss_end_mb": round(end_rss, 1),
                "buffers_grew_mb": round((end_bytes - mid_bytes) / 2**20, 1),
                "unexplained_growth_mb": round(end_rss - mid_rss - (end_bytes - mid_bytes) / 2**20, 1),
            }
            print(json.dumps(result), flush=True)
            app.quit()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(0)
    app.exec()
    return 0


if __name__ == "__main__":
    sys.exit(main())
