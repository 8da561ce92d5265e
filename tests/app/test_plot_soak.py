"""Soak of the live plots (in the default suite): four `MetricPlot`s take 2,000 updates each and
grow to 400,000 points, in a subprocess so that a hard abort inside Qt fails this test instead
of killing pytest. It guards the PySide6 pin: 6.12.0 with pyqtgraph 0.14.0 aborts within ~100
such updates. Memory may grow by what the curves hold, and not much more."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.app.runs_fixtures import ROOT

UNEXPLAINED_MB = 25  # RSS growth from middle to end beyond the curves' own buffers


def test_four_live_plots_survive_2000_updates_without_growing_memory():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(
        [sys.executable, "-m", "tests.app.plot_soak", "--updates", "2000", "--points", "400000"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, f"the soak process died (exit {out.returncode}):\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["updates"] == 2000 and result["plots"] == 4
    assert result["points_per_plot"] >= 400_000
    assert result["unexplained_growth_mb"] < UNEXPLAINED_MB, result
