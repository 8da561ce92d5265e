"""Import timings: `trainbench import model` on ResNet-50 and on a 12-layer GPT (wall time of
the command, process start to exit), and the designer opening the imported graph.

A script, not a test:  python tests/benchmarks/bench_import_model.py [--repeats 3]
ResNet-50 is the plain-torch definition in tests/engine/models_for_import.py (torchvision's
layers and names, 25,557,032 parameters) at 3×224×224; the GPT is the GPT-2 small template
(12 layers, d 768, 12 heads, vocabulary 50,257, context 1,024, tied head: 124,439,808
parameters) exported by Trainbench as PyTorch code with its weights and imported back.
The designer's figure is a fresh GUI process opening the graph file: from the call to the
first paint of the canvas with the analysis done (the graph laid out as File ▸ Import Model
lays it out).
"""

from __future__ import annotations

import argparse
import json
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

# The child prints "opened <seconds> nodes <n> params <n>" once the canvas shows the graph.
OPEN_CHILD = r"""
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from app.main import create_app, create_window
from app.designer.layout import layered_positions
from engine.graph import Graph
app = create_app()
window = create_window()
window.resize(1440, 900)
window.show()
app.processEvents()
path = sys.argv[1]

class Painted(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and window.doc.path is not None:
            window.doc.wait_for_analysis()
            a = window.doc.analysis
            print(f"opened {time.perf_counter() - t0:.4f} nodes {len(a.nodes)} params {a.total_params}", flush=True)
            QTimer.singleShot(0, app.quit)
            obj.removeEventFilter(self)
        return False

def go():
    global t0
    t0 = time.perf_counter()
    window.files.load(path)
    window.designer.view.viewport().update()

spy = Painted()
window.designer.view.viewport().installEventFilter(spy)
QTimer.singleShot(200, go)
app.exec()
"""


def import_wall(source: str, out: Path, args: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "import", "model", source, "-o", str(out), *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"import failed: {done.stderr.strip()}")
    return wall, json.loads(done.stdout)


def laid_out(path: Path) -> None:
    """The positions File ▸ Import Model gives the graph before it opens it."""
    from PySide6.QtWidgets import QApplication

    from app.designer.layout import layered_positions
    from engine.graph import Graph

    QApplication.instance() or QApplication([])
    graph = Graph.load(path)
    for nid, pos in layered_positions(graph, (930.0, 590.0)).items():
        graph.nodes[nid].pos = pos
    graph.save(path)


def open_time(path: Path) -> tuple[float, str]:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_CHILD, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("opened")), None)
    if line is None:
        sys.exit(f"the designer did not open {path}: {done.stderr.strip()[-500:]}")
    parts = line.split()
    return float(parts[1]), f"{parts[3]} nodes, {int(parts[5]):,} parameters"


def gpt_source(folder: Path) -> str:
    """The GPT-2 small template exported as PyTorch code with its (initial) weights."""
    import torch

    from engine.graph.build import build
    from engine.graph.export import export
    from engine.graph.model import Graph

    graph = Graph.load(ROOT / "resources" / "templates" / "gpt2_small.json")
    torch.manual_seed(0)
    code, _ = export(graph, "pytorch", folder / "gpt2_small_model.py", build(graph).state_dict())
    return f"{code}:Model"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="trainbench-import-bench-"))
    cases = [
        (
            "ResNet-50, 3×224×224",
            f"{ROOT / 'tests' / 'engine' / 'models_for_import.py'}:resnet50",
            ["--input", "3,224,224"],
        ),
        ("GPT-2 small (12 layers), 1,024 tokens", gpt_source(folder), ["--input", "1024", "--dtype", "long"]),
    ]
    print(f"{'model':40} {'import wall (median)':>22} {'designer open':>15}  result")
    for name, source, extra in cases:
        out = folder / f"{name.split(',')[0].replace(' ', '_').lower()}.json"
        walls, report = [], None
        for _ in range(args.repeats):
            wall, report = import_wall(source, out, extra)
            walls.append(wall)
        laid_out(out)
        opens = [open_time(out) for _ in range(args.repeats)]
        what = opens[0][1]
        print(
            f"{name:40} {statistics.median(walls):>20.2f} s {statistics.median(o[0] for o in opens) * 1000:>12.0f} ms  "
            f"{what}; opaque {len(report['opaque'])}, repeats {report['repeats']}, "
            f"params {report['params_before']:,} → {report['params_after']:,}, max abs diff {report['max_abs_diff']:.2g}"
        )
        print(
            f"{'':40} imports: {', '.join(f'{w:.2f}' for w in walls)} s; opens: {', '.join(f'{o[0]:.3f}' for o in opens)} s"
        )


if __name__ == "__main__":
    main()
