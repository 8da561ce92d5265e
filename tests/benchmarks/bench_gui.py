"""Desktop app timings: start-up to first painted window, edits on a 500-node graph, and a
theme switch with every area open.

A script, not a test:  python tests/benchmarks/bench_gui.py [--runs 5] [--theme-runs 2000]
Runs offscreen unless QT_QPA_PLATFORM is set (e.g. under xvfb-run with QT_QPA_PLATFORM=xcb).
Targets: first window < 1.0 s without importing torch; add / move / connect on a 500-node graph
< 50 ms each; revalidation off the UI thread without freezing it; a theme switch < 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TRAINBENCH_APP_DIR", tempfile.mkdtemp(prefix="trainbench-bench-"))

# The child prints "painted <seconds since its start> <torch imported?>" at the canvas's first paint.
STARTUP_CHILD = r"""
import sys, time
t0 = time.perf_counter()
from PySide6.QtCore import QEvent, QObject, QTimer
from app.main import create_app, create_window
app = create_app()
window = create_window()

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            print(f"painted {time.perf_counter() - t0:.4f} cpu {time.process_time():.4f} torch {'torch' in sys.modules}", flush=True)
            QTimer.singleShot(0, app.quit)
            obj.removeEventFilter(self)
        return False

spy = FirstPaint()
window.designer.view.viewport().installEventFilter(spy)
window.show()
app.exec()
"""


def bench_startup(runs: int) -> None:
    print(f"Start-up: process launch → first paint of the canvas with the CNN template ({runs} runs)")
    # Installed packages have compiled bytecode; let the child write and reuse it like they do.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    walls, inner, cpus = [], [], []
    for run in range(runs + 1):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", STARTUP_CHILD],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        wall = time.perf_counter() - start  # includes interpreter start and shutdown
        line = next(ln for ln in out.splitlines() if ln.startswith("painted"))
        _, painted, _, cpu, _, torch = line.split()
        if torch != "False":
            raise SystemExit("torch was imported at start-up")
        if run == 0:
            continue  # warm-up: compiles bytecode, fills the OS file cache
        inner.append(float(painted))
        cpus.append(float(cpu))
        walls.append(wall)
    print(
        f"  in-process, first import → first paint: median {statistics.median(inner):.3f} s  (min {min(inner):.3f})"
    )
    print(f"  CPU time used meanwhile (all threads): median {statistics.median(cpus):.3f} s")
    print(
        f"  wall clock, launch → process exit after paint: median {statistics.median(walls):.3f} s  (min {min(walls):.3f})"
    )
    print("  torch imported: no")


def big_graph(n: int):
    """A valid n-node model: Linear/ReLU pairs with a residual Add every few nodes."""
    from engine.graph import Graph

    g = Graph(name=f"big{n}")
    g.add_node("Input", {"shape": [64]}, (0, 0), "x")
    prev, block_start, i = "x", "x", 1
    while len(g.nodes) < n:
        op = ("Linear", "ReLU", "Linear", "Add")[i % 4]
        node = g.add_node(op, {"out_features": 64} if op == "Linear" else {})
        g.connect(prev, node.id, 0)
        if op == "Add":
            g.connect(block_start, node.id, 1)
            block_start = node.id
        prev, i = node.id, i + 1
    return g


def bench_edits(n: int, repeats: int) -> None:
    from PySide6.QtCore import QPoint, QPointF, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.designer import commands
    from app.designer.document import GraphDocument
    from app.designer.layout import arrange
    from app.main import create_app
    from app.window import MainWindow

    app = create_app()
    graph = arrange(big_graph(n), (1100, 650))
    doc = GraphDocument(graph)
    window = MainWindow(doc)
    window.resize(1440, 900)
    window.show()
    QTest.qWaitForWindowExposed(window)
    area, view = window.designer, window.designer.view
    doc.wait_for_analysis()
    app.processEvents()
    view.set_zoom(1.0)
    print(f"\n{len(doc.graph.nodes)}-node graph, {len(doc.graph.edges)} edges, canvas at 100% zoom")

    def settle() -> None:
        app.processEvents()  # handles the edit's repaint and starts the (threaded) revalidation

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        settle()
        return (time.perf_counter() - t) * 1000

    results: dict[str, list[float]] = {
        "add (palette double-click path)": [],
        "move (one drag step)": [],
        "connect": [],
    }
    added = []
    for k in range(repeats):
        view.centerOn(QPointF(-400, -300 - 200 * k))
        pos = QPointF(-400, -300 - 200 * k)
        area.scene.clearSelection()
        results["add (palette double-click path)"].append(
            timed(lambda pos=pos: added.append(area.add_op("Linear", pos)))
        )
        area.scene.clearSelection()
        results["add (palette double-click path)"].append(
            timed(lambda pos=pos: added.append(area.add_op("ReLU", pos + QPointF(260, 0))))
        )
        a, b = added[-2], added[-1]
        results["connect"].append(
            timed(lambda a=a, b=b: doc.push(commands.Connect(doc, a, b, doc.graph.next_free_port(b))))
        )
        for _ in range(3):
            x, y = doc.graph.nodes[b].pos
            results["move (one drag step)"].append(
                timed(
                    lambda b=b, x=x, y=y, g=9000 + k: doc.push(
                        commands.MoveNodes(doc, {b: (x + 5, y + 3)}, gesture=g)
                    )
                )
            )
    doc.wait_for_analysis()
    app.processEvents()

    # The same through the mouse, as a user does it: drag a node, then drag a connection.
    area.scene.clearSelection()
    src = area.add_op("GELU", QPointF(-400, 400))
    dst = area.add_op("Tanh", QPointF(-100, 400))
    view.centerOn(QPointF(-150, 430))
    settle()
    port = view.viewport()
    item = area.scene.nodes[dst]
    p = view.mapFromScene(item.mapToScene(item.body_rect().center()))
    before = doc.graph.nodes[dst].pos
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    mouse_moves = []
    for i in range(1, 11):
        mouse_moves.append(timed(lambda i=i: QTest.mouseMove(port, p + QPoint(4 * i, 2 * i))))
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p + QPoint(40, 20))
    settle()
    assert doc.graph.nodes[dst].pos != before, "the mouse drag did not move the node"
    a = view.mapFromScene(area.scene.nodes[src].out_port_pos())
    b = view.mapFromScene(area.scene.nodes[dst].in_port_pos(0))
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    drag_moves = [timed(lambda i=i: QTest.mouseMove(port, a + (b - a) * (i / 6))) for i in range(1, 7)]
    release = timed(
        lambda: QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    )
    assert any(e.src == src and e.dst == dst for e in doc.graph.edges), "the mouse connection was not made"
    results["move (mouse drag, per mouse move)"] = mouse_moves
    results["connect (mouse: per move while dragging)"] = drag_moves
    results["connect (mouse: release that connects)"] = [release]

    # Applying a finished revalidation on the UI thread: badges, edge labels, summary, repaint.
    applying = []
    for k in range(repeats):
        doc.push(commands.SetParam(doc, added[2 * k], "out_features", 32 + k))
        settle()
        doc.wait_for_analysis()
        applying.append(timed(lambda: None))
    results["apply a revalidation result (UI thread)"] = applying

    print(f"  {'edit':42} {'median':>8} {'max':>8}   (ms, edit + repaint + scheduling revalidation)")
    for name, values in results.items():
        print(f"  {name:42} {statistics.median(values):8.1f} {max(values):8.1f}")

    # Revalidation: how long the worker takes, and the longest the UI thread went without
    # running its event loop meanwhile (a 5 ms timer measures the gaps).
    from engine.graph import analyze

    t = time.perf_counter()
    analyze(doc.graph)
    full = (time.perf_counter() - t) * 1000
    gaps, last = [], [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    timer = QTimer(interval=5)
    timer.timeout.connect(tick)
    timer.start()
    received = []
    doc.analyzed.connect(lambda a: received.append(time.perf_counter()))
    start = time.perf_counter()
    doc.push(commands.SetParam(doc, "x", "shape", [32]))  # changes every shape downstream
    push_ms = (time.perf_counter() - start) * 1000
    while not received:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    print(
        f"  revalidation: analyze() of the whole graph {full:.1f} ms on a worker thread; "
        f"edit returned in {push_ms:.1f} ms, result after {(received[0] - start) * 1000:.1f} ms; "
        f"longest UI event-loop gap meanwhile {max(gaps, default=0):.1f} ms"
    )
    doc.undo_stack.setClean()
    window.close()
    QApplication.processEvents()


def bench_theme(runs: int, switches: int) -> None:
    """View ▸ Theme with the designer, a run's monitor, the runs table (`runs` runs, parallel
    coordinates and scatter drawn) and a comparison of five runs all built: milliseconds from
    the menu action to the repainted window, the first switch and the following ones."""
    from PySide6.QtWidgets import QApplication

    from app.main import create_app, create_window
    from engine.store import RunStore
    from tests.app.experiments_synthetic import add_synthetic_runs
    from tests.conftest import example

    db = Path(tempfile.mkdtemp(prefix="bench-theme-")) / "runs.db"
    store = RunStore(db)
    ids = add_synthetic_runs(store, example("digits_cnn"), runs, points=50, families=min(20, runs // 10))
    store.close()
    app = create_app()
    window = create_window(db_path=db)
    window.resize(1440, 900)
    window.show()

    def settle(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()

    settle(0.5)
    runs_area = window.area("Runs")
    window.show_area("Runs")
    runs_area.show_run(runs_area.launcher.open_run(ids[0]))
    settle(0.5)
    window.show_area("Experiments")
    experiments = window.area("Experiments")
    experiments.ensure_loaded()
    settle(1.5)  # the parallel coordinates and scatter build after the table paints
    experiments.select(ids[:5])
    experiments.show_compare()
    settle(0.5)
    experiments.show_browse()
    settle(0.5)
    window.show_area("Designer")
    settle(0.3)
    widgets = len(QApplication.allWidgets())
    walls, cpus = [], []
    for i in range(switches):
        t, c = time.perf_counter(), time.process_time()
        window.set_theme("dark" if i % 2 == 0 else "light")
        app.processEvents()  # the repaint
        walls.append((time.perf_counter() - t) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    print(f"\nTheme switch, every area open ({widgets:,} widgets; {runs:,} runs in the Experiments table)")
    for name, ms in (("wall clock", walls), ("CPU time", cpus)):
        print(
            f"  {name}: first switch {ms[0]:.0f} ms; then median {statistics.median(ms[1:]):.0f} ms,"
            f" max {max(ms[1:]):.0f} ms over {switches - 1} (target < 500 ms)"
        )
    window.set_theme("light")
    window.doc.undo_stack.setClean()
    window.close()
    app.processEvents()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="start-up runs")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=10, help="edits of each kind")
    parser.add_argument("--theme-runs", type=int, default=2000, help="runs in the store for the theme switch")
    parser.add_argument("--theme-switches", type=int, default=7)
    parser.add_argument("--only-theme", action="store_true", help="measure only the theme switch")
    args = parser.parse_args()
    print(
        f"Python {sys.version.split()[0]}, QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}, {os.cpu_count()} CPUs\n"
    )
    if not args.only_theme:
        bench_startup(args.runs)
        bench_edits(args.nodes, args.repeats)
    bench_theme(args.theme_runs, args.theme_switches)


if __name__ == "__main__":
    main()
