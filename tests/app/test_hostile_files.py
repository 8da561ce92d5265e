"""Hostile files opened in the real window: File ▸ Open, recovery files after a crash, and
`python -m app.main FILE`. Each one is answered with a message naming the file (or, for a
file that is a valid graph after all, shown as one), never an exception in the event loop,
never a hang; the window keeps its model and stays usable.
"""

from __future__ import annotations

import faulthandler
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from tests.app.conftest import palette_add, snapshot

ROOT = Path(__file__).resolve().parents[2]
HANG_S = 120  # a generous hang detector, not a speed bound
Button = QMessageBox.StandardButton


def graph(**changes) -> dict:
    """A small valid graph (Input → Linear), with `changes` applied to its top level."""
    doc = {
        "format": "trainbench.graph",
        "version": 1,
        "name": "small",
        "nodes": [
            {"id": "x", "op": "Input", "params": {"shape": [4]}, "pos": [0, 0]},
            {"id": "fc", "op": "Linear", "params": {"out_features": 3}, "pos": [250, 0]},
        ],
        "edges": [{"from": "x", "to": "fc", "port": 0}],
        "output": "fc",
    }
    doc.update(changes)
    return doc


def with_node(**fields) -> dict:
    """The small graph with one more node (id "n", an Add fed by x) whose fields are `fields`."""
    node = {"id": "n", "op": "Add", "params": {}, "pos": [0, 120], **fields}
    doc = graph()
    doc["nodes"].append(node)
    doc["edges"].append({"from": "x", "to": node["id"], "port": 0})
    return doc


def edge(**fields) -> dict:
    doc = graph()
    doc["edges"] = [{"from": "x", "to": "fc", "port": 0, **fields}]
    return doc


def text(value) -> bytes:
    return json.dumps(value).encode()


def deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


@dataclass
class Case:
    name: str
    content: bytes | None = None  # written to a file; None for the special kinds
    kind: str = "file"  # file, fifo, folder, dev-zero, sparse, missing, broken-link, link-loop
    refused: bool = True  # False: a valid graph after all, which may open instead


CASES = [
    # not JSON at all
    Case("empty", b""),
    Case("whitespace", b"   \n\t  "),
    Case("prose", b"this is not a graph"),
    Case("binary", bytes(range(256)) * 64),
    Case("png header", b"\x89PNG\r\n\x1a\n" + b"\x00" * 500),
    Case("truncated json", text(graph())[:-40]),
    Case("trailing garbage", text(graph()) + b" }]{"),
    Case("invalid utf-8", text(graph(name="ok")).replace(b'"ok"', b'"\xff\xfe\xfa"')),
    Case("utf-16", json.dumps(graph()).encode("utf-16")),
    Case("utf-8 bom", b"\xef\xbb\xbf" + text(graph()), refused=False),
    Case("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000),
    Case("object nested 50000 deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    # JSON, but not a graph object
    Case("json array", text([graph()])),
    Case("json string", text("graph")),
    Case("json number", b"42"),
    Case("json null", b"null"),
    Case("a run spec", text({"schema": 1, "model": "cnn.json", "data": {"source": "digits"}})),
    # a graph with wrong types or impossible values
    Case("nodes is a number", text(graph(nodes=5))),
    Case("nodes is an object", text(graph(nodes={"x": 1}))),
    Case("edges is a string", text(graph(edges="x->fc"))),
    Case("version is text", text(graph(version="one"))),
    Case("version is NaN", text(graph()).replace(b'"version": 1', b'"version": NaN'), refused=False),
    Case("version 1e308", text(graph(version=1e308))),
    Case("name is an object", text(graph(name={"evil": True})), refused=False),
    Case("name of a megabyte", text(graph(name="n" * 2**20)), refused=False),
    Case("output is a list", text(graph(output=["fc"]))),
    Case("output is unknown", text(graph(output="nope"))),
    Case("node without op", text(with_node(op=None))),
    Case("op is an object", text(with_node(op={"name": "Add"}))),
    Case("unknown op", text(with_node(op="Teleport"))),
    Case("node id is a number", text(with_node(id=7))),
    Case("node id forward", text(with_node(id="forward")), refused=False),
    Case("node id with a dot", text(with_node(id="a.b"))),
    Case("node id of 10k chars", text(with_node(id="n" * 10_000))),
    Case("duplicate node id", text(graph(nodes=graph()["nodes"] * 2))),
    Case("params is a list", text(with_node(params=[1, 2]))),
    Case("param nested 900 deep", text(with_node(op="Dropout", params={"p": deep(900)})), refused=False),
    Case("pos is text", text(with_node(pos="left"))),
    Case("pos is a number", text(with_node(pos=3))),
    Case(
        "pos is NaN", text(with_node()).replace(b'"pos": [0, 120]', b'"pos": [NaN, Infinity]'), refused=False
    ),
    Case("pos 1e308", text(with_node(pos=[1e308, -1e308])), refused=False),
    Case("port 10^9", text(edge(port=10**9))),
    Case(
        "Add wired at port 10^9",
        text(with_node()).replace(b'"to": "n", "port": 0', b'"to": "n", "port": 1000000000'),
        refused=False,
    ),
    Case("port is text", text(edge(port="first"))),
    Case("port is negative", text(edge(port=-1))),
    Case("port is 1.5", text(edge(port=1.5)), refused=False),
    Case("edge to nowhere", text(edge(to="ghost"))),
    Case("self loop", text(edge(to="x"))),
    Case(
        "Input shape 10^9 x 10^9",
        text(
            graph(
                nodes=[
                    {"id": "x", "op": "Input", "params": {"shape": [10**9, 10**9]}, "pos": [0, 0]},
                    graph()["nodes"][1],
                ]
            )
        ),
        refused=False,
    ),
    Case("Repeat body is text", text(with_node(op="Repeat", params={"body": "evil"})), refused=False),
    Case("lone surrogate", text(graph(name="\ud800")), refused=False),
    # not files at all, or too large to be one
    Case("fifo", kind="fifo"),
    Case("folder", kind="folder"),
    Case("dev zero", kind="dev-zero"),
    Case("2 GB", kind="sparse"),
    Case("missing", kind="missing"),
    Case("broken symlink", kind="broken-link"),
    Case("symlink loop", kind="link-loop"),
]


def make(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case.name.replace(' ', '-')}.json"
    if case.kind == "file":
        path.write_bytes(case.content)
    elif case.kind == "fifo":
        os.mkfifo(path)
    elif case.kind == "folder":
        path.mkdir()
    elif case.kind == "dev-zero":
        return Path("/dev/zero")
    elif case.kind == "sparse":
        with open(path, "wb") as f:
            f.truncate(2 * 2**30)  # 2 GB that take no disk space
    elif case.kind == "broken-link":
        path.symlink_to(folder / "nowhere.json")
    elif case.kind == "link-loop":
        path.symlink_to(path)
    return path


@contextmanager
def hang_detector():
    """Fail loudly (with every thread's stack) instead of hanging the suite."""
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def assert_usable(qtbot, window) -> None:
    """The window still edits: a layer added from the palette is in the graph and on the canvas."""
    window.designer.scene.clearSelection()
    new = palette_add(qtbot, window.designer, "ReLU")
    assert new in window.doc.graph.nodes and new in window.designer.scene.nodes


def test_there_are_enough_cases():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_open_a_hostile_file(window, qtbot, dialogs, file_dialog, tmp_path, case):
    path = make(case, tmp_path / "files")
    before = snapshot(window.doc)
    file_dialog.next_path = str(path)
    with hang_detector(), qtbot.captureExceptions() as raised:
        window.files.open.trigger()  # File ▸ Open, the dialog answering with the file
        window.doc.wait_for_analysis()
        qtbot.wait(20)  # deliver the analysis, repaint the canvas
    assert not raised, raised
    if window.doc.path == path:
        assert not case.refused, f"{case.name} was opened"
        assert set(window.designer.scene.nodes) == set(window.doc.graph.nodes)
    else:
        (kind, title, message) = dialogs.shown[-1]
        assert (kind, title) == ("warning", "Cannot open the model")
        assert str(path) in message and len(message.splitlines()) == 1, message
        assert "Traceback" not in message
        assert snapshot(window.doc) == before  # the model shown before is untouched
    assert_usable(qtbot, window)


def test_recent_files_entry_for_a_fifo_does_not_hang(window, qtbot, dialogs, tmp_path):
    fifo = make(Case("fifo", kind="fifo"), tmp_path)
    with hang_detector(), qtbot.captureExceptions() as raised:
        window.files.open_file(fifo)  # what an Open Recent entry does
    assert not raised
    assert "not a regular file" in dialogs.shown[-1][2]
    assert_usable(qtbot, window)


def test_one_bad_recovery_file_does_not_block_the_others(window, qtbot, dialogs, app_dir, tmp_path):
    from app.main import create_window

    good = {
        "format": "trainbench.recovery",
        "version": 1,
        "original": None,
        "saved_at": "2030-01-01T12:00:00",
        "graph": graph(name="kept-safe"),
    }
    bad = [c for c in CASES if c.kind == "file" and c.refused][:25]
    for i, case in enumerate(bad):
        (app_dir / f"autosave-{900000 + i}.json").write_bytes(case.content)
    record = lambda **kw: json.dumps({**good, **kw}).encode()  # noqa: E731
    more = {
        "graph-is-a-list": record(graph=[1]),
        "saved-at-is-a-number": record(saved_at=5),
        "original-is-an-object": record(original={"a": 1}),
        "wrong-format": record(format="something.else"),
        "graph-nested-deep": record(graph={"nodes": deep(500)}),
    }
    for i, content in enumerate(more.values()):
        (app_dir / f"autosave-{950000 + i}.json").write_bytes(content)
    os.mkfifo(app_dir / "autosave-960000.json")
    (app_dir / "autosave-960001.json").mkdir()
    (app_dir / "autosave-999999.json").write_text(json.dumps(good))
    unreadable = len(bad) + len(more) + 2

    second = create_window()
    qtbot.addWidget(second)
    dialogs.answers = [Button.Ok, Button.Yes]
    with hang_detector(), qtbot.captureExceptions() as raised:
        assert second.offer_recovery()
    assert not raised, raised
    (_, title, message) = dialogs.shown[-2]
    assert title == "Some unsaved changes cannot be recovered"
    assert message.startswith(f"{unreadable} recovery files could not be read")
    assert dialogs.shown[-1][1] == "Recover unsaved changes?"
    assert second.doc.graph.name == "kept-safe" and second.doc.dirty
    # nothing was lost: the unreadable files are kept under a name that is not offered again
    assert len(list(app_dir.glob("autosave-*.json.unreadable"))) == unreadable
    assert not (app_dir / "autosave-999999.json").exists()
    dialogs.shown.clear()
    assert not second.offer_recovery() and not dialogs.shown
    assert_usable(qtbot, second)
    second.doc.replace(second.doc.graph)  # leave it clean for teardown


CLI_CASES = [
    "fifo",
    "dev zero",
    "folder",
    "2 GB",
    "binary",
    "nested 100000 deep",
    "json array",
    "version is text",
]

# Opens the window as `trainbench FILE` does, answers the message box that says why the file
# could not be opened, then checks the window is up and still edits.
CLI_CHILD = r"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
app = QApplication([])
def answer():
    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        print("message:", box.text().replace("\n", " "), flush=True)
        box.done(0)
        return
    windows = [w for w in app.topLevelWidgets() if w.objectName() == "mainWindow" and w.isVisible()]
    if not windows:
        QTimer.singleShot(50, answer)
        return
    window = windows[0]
    new = window.designer.add_op("ReLU")
    print("window", window.windowTitle(), new in window.designer.scene.nodes, flush=True)
    window.doc.undo_stack.setClean()
    window.close()
QTimer.singleShot(0, answer)
QTimer.singleShot(50, answer)
sys.argv = ["trainbench", sys.argv[1]]
from app.main import main
sys.exit(main())
"""


@pytest.mark.parametrize("name", CLI_CASES)
def test_trainbench_FILE_with_a_hostile_file(tmp_path, name):
    case = next(c for c in CASES if c.name == name)
    path = make(case, tmp_path / "files")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TRAINBENCH_APP_DIR=str(tmp_path / "app"))
    out = subprocess.run(
        [sys.executable, "-c", CLI_CHILD, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert f"message: {path}" in out.stdout, out.stdout
    assert "window Untitled (model)[*] — Trainbench True" in out.stdout, out.stdout


def test_a_port_of_10_to_the_9_draws_a_bounded_node(window, qtbot, file_dialog, tmp_path):
    from app.designer.scene import MAX_PORTS

    case = next(c for c in CASES if c.name == "Add wired at port 10^9")
    path = make(case, tmp_path)
    with hang_detector():
        assert window.files.load(path)
    assert any(e.port == 10**9 for e in window.doc.graph.edges)
    assert len(window.designer.scene.nodes["n"].inputs) == MAX_PORTS
    assert_usable(qtbot, window)


def test_positions_that_cannot_be_drawn_get_a_fresh_layout_as_one_undo_step(window, qtbot, tmp_path):
    from app.designer.scene import on_canvas

    case = next(c for c in CASES if c.name == "pos is NaN")
    path = make(case, tmp_path)
    assert window.files.load(path)
    doc = window.doc
    assert all(on_canvas(*n.pos) for n in doc.graph.nodes.values())
    assert doc.dirty and doc.undo_stack.count() == 1
    assert "laid out afresh" in window.statusBar().currentMessage()
    doc.undo_stack.undo()  # back to the file's own (unusable) positions, drawn at the origin
    assert not on_canvas(*doc.graph.nodes["n"].pos)
    assert window.designer.scene.nodes["n"].pos().x() == 0
