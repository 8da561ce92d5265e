"""The floors of the code base, checked: no import circle inside the engine, the CLI a top floor
nothing imports, an engine without Qt, a catalog without Qt, and a desktop app that starts and
opens every area without importing torch.

Imports are read statically (ast) from every file: module-level and function-level imports
count alike, and so do `if TYPE_CHECKING:` ones (a cycle of type-only imports still ties two
modules together), as do `importlib.import_module("...")` calls with a literal name.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import deque
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT, example

QT = ("PySide6", "shiboken6", "pyqtgraph")

# ------------------------------------------------------------------ reading imports


def modules(top: str) -> dict[str, Path]:
    """Every module of the package `top` (a folder under the repository) by dotted name."""
    out = {}
    for path in sorted((ROOT / top).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


@cache
def known_modules() -> frozenset[str]:
    return frozenset(modules("engine")) | frozenset(modules("app"))


@cache
def imported_names(path: Path) -> tuple[tuple[str, int], ...]:
    """(dotted name, line) of everything a file imports, wherever in the file. `from a import
    b` names the module a.b when there is one, else a; relative imports are resolved against
    the file's package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    known = known_modules()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub if sub in known else base, node.lineno))
        elif _literal_import_call(node):
            out.append((node.args[0].value, node.lineno))
    return tuple(out)


def _literal_import_call(node: ast.AST) -> bool:
    """`importlib.import_module("x")` or `__import__("x")` with a literal name."""
    if not isinstance(node, ast.Call) or not node.args:
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    first = node.args[0]
    return (
        name in ("import_module", "__import__")
        and isinstance(first, ast.Constant)
        and isinstance(first.value, str)
    )


def engine_graph() -> dict[str, set[str]]:
    """engine module → the engine modules it imports."""
    mods = modules("engine")
    return {
        name: {imported for imported, _line in imported_names(path) if imported in mods} - {name}
        for name, path in mods.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle (as a path that returns to its start) per strongly connected
    component of more than one module, found with Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_shortest_cycle(graph, c) for c in components]


def _shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    came_from = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v] & component):
            if w == start:
                path = [v]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if w not in came_from:
                came_from[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle in component {component}")


def _describe(found: list[list[str]]) -> str:
    return "import cycles: " + "; ".join(" → ".join(c) for c in found)


# ------------------------------------------------------------------ (a) no import circle


def test_the_cycle_finder_reports_the_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_engine_imports_have_no_cycle():
    found = cycles(engine_graph())
    assert not found, _describe(found)


# ------------------------------------------------------------------ (b) the CLI is the top floor


def test_nothing_in_app_or_engine_imports_the_cli():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for top in ("app", "engine")
        for module, path in modules(top).items()
        if module != "engine.cli"
        for name, line in imported_names(path)
        if name == "engine.cli" or name.startswith("engine.cli.")
    ]
    assert offenders == []  # its one use is as a program: `python -m engine.cli` (engine.processes)


# ------------------------------------------------------------------ (c) no Qt below app/


def test_no_engine_module_imports_qt():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in modules("engine").values()
        for name, line in imported_names(path)
        if name.split(".")[0] in QT
    ]
    assert offenders == []


def _loaded_after(code: str, prefixes: tuple[str, ...], timeout: int = 120) -> list[str]:
    """Top-level packages among `prefixes` that a fresh interpreter has loaded after `code`."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(prefixes)!r})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_headless_run_never_imports_qt(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(example("wine_csv", train={"epochs": 1, "max_steps": 5})))
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from engine.cli import main\n"
        f"assert main(['--db', {str(tmp_path / 'runs.db')!r}, 'run', {str(spec)!r}, '--quiet']) == 0\n"
    )
    assert _loaded_after(code, QT) == []


def test_the_runs_catalog_is_qt_free():
    assert _loaded_after("import app.experiments.catalog", (*QT, "torch")) == []


# ------------------------------------------------------------------ (d) the GUI never imports torch

GUI_TOUR = r"""
import json, sys, time, traceback

who = []


class FirstTorchImport:
    # records where torch is first imported from, then lets the normal finders find it
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not who:
            who.append([f"{f.filename}:{f.lineno} {f.line}" for f in traceback.extract_stack()[:-1]
                        if "importlib" not in f.filename])
        return None


sys.meta_path.insert(0, FirstTorchImport())

from PySide6.QtCore import QThreadPool

from app.main import create_app, create_window

app = create_app([])
window = create_window(db_path=sys.argv[1])
window.resize(1280, 800)
window.show()


def settle(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def settle_until_idle(timeout=150):
    # until no background job has run for a second: a data preview, then the memory estimate
    # it starts, and so on (debounce timers are shorter than that)
    end, idle = time.monotonic() + timeout, 0
    while idle < 4 and time.monotonic() < end:
        settle(0.25)
        pools = [QThreadPool.globalInstance(), *window.findChildren(QThreadPool)]
        idle = 0 if any(p.activeThreadCount() for p in pools) else idle + 1


settle_until_idle()
shown = []
for name in ("Runs", "Experiments", "Designer"):
    window.show_area(name)
    settle_until_idle()
    shown.append(type(window.area(name)).__name__)
experiments = window.area("Experiments")
experiments.ensure_loaded()
experiments.select(json.loads(sys.argv[2]))
experiments.show_compare()
settle_until_idle()
shown.append(type(experiments.pages.currentWidget()).__name__)
print(json.dumps({"shown": shown, "torch": who[0] if who else None}))
window.close()
"""


@pytest.fixture(scope="module")
def gui_tour(tmp_path_factory) -> dict:
    """Start the app offscreen in a fresh interpreter on a store with a few runs, show every
    area and the compare page, and report what was shown and where torch was first imported."""
    from engine.store import RunStore
    from tests.app.experiments_synthetic import add_synthetic_runs

    tmp = tmp_path_factory.mktemp("gui-tour")
    db = tmp / "runs.db"
    store = RunStore(db)
    ids = add_synthetic_runs(store, example("digits_mlp"), 4, points=40, families=1)
    store.close()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TRAINBENCH_APP_DIR": str(tmp / "appdir")}
    out = subprocess.run(
        [sys.executable, "-c", GUI_TOUR, str(db), json.dumps(ids[:2])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_gui_opens_every_area(gui_tour):
    assert gui_tour["shown"] == ["RunsArea", "ExperimentsArea", "DesignerArea", "CompareView"]


def test_the_gui_starts_and_opens_every_area_without_torch(gui_tour):
    assert gui_tour["torch"] is None, "torch imported from:\n" + "\n".join(gui_tour["torch"])
