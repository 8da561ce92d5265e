"""MFU where people look: the monitor's header (with what it is measured against) and the
comparison table (as a percentage, the best run starred), from real runs' events and store."""

from __future__ import annotations

import re

import pytest

from app.experiments.hparams import CompareTableModel
from app.runs.live import LiveRun
from app.runs.monitor import RunMonitor, curve_label, plot_group
from engine.compare import compare_table
from engine.events import EventStream
from engine.runner import execute
from engine.store import RunStore
from tests.app.runs_fixtures import spec


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the CPU peak is probed afresh


def _run(db, events=None, **train):
    stream = EventStream(None, listeners=[events.append] if events is not None else ())
    return execute(db, spec("digits_mlp", train={"max_steps": 20, **train}), events=stream)


def test_the_monitor_header_shows_mfu_against_the_measured_peak(qtbot, db_path, cache):
    events: list[dict] = []
    rid, status = _run(db_path, events)
    assert status == "completed"
    live = LiveRun()
    live.spec = RunStore(db_path).get_run(rid)["spec"]
    monitor = RunMonitor(live)
    qtbot.addWidget(monitor)
    for ev in events:
        live.apply_event(ev)
    monitor.refresh()
    shown = re.search(r"MFU <b>([\d.]+)%</b> vs measured peak", monitor.facts.text())
    assert shown and 0 < float(shown.group(1)) <= 100, monitor.facts.text()
    assert monitor.plots["perf:mfu"].title.text() == "MFU (model FLOPs utilization)"


def test_the_comparison_shows_mfu_as_a_share_and_stars_the_best(qapp, db_path, cache):
    a, _ = _run(db_path, batch_size=8)
    b, _ = _run(db_path, batch_size=64)  # bigger batches keep the CPU busier
    model = CompareTableModel()
    model.set_table(compare_table(RunStore(db_path), [a, b], show_all=True))
    row = model.find("final_metrics", "perf/mfu")
    assert row is not None
    cells = [model.index(row, col).data() for col in (1, 2)]
    assert all(re.fullmatch(r"[\d.e-]+%( {2}★)?", c) for c in cells), cells
    assert sum("★" in c for c in cells) == 1
    assert model.find("summary", "mfu_peak") is not None  # what the MFU is measured against


def test_the_allocators_memory_is_one_plot():
    keys = ("perf/gpu_mem_allocated_mb", "perf/gpu_mem_reserved_mb", "perf/gpu_mem_peak_mb")
    assert {plot_group(k)[0] for k in keys} == {"perf:gpu_mem"}
    assert [curve_label(k) for k in keys] == ["allocated", "reserved", "peak"]
