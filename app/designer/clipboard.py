"""Copy and paste as graph JSON, so nodes travel between windows and between projects.

The clipboard carries the fragment under our own MIME type and, for people who paste into a
text editor or a chat, as plain JSON text too; pasting accepts either.
"""

from __future__ import annotations

import atexit
import json

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QGuiApplication

from engine.errors import GraphError
from engine.graph import Graph

MIME = "application/x-trainbench-graph+json"
_exit_hook: list[bool] = []


def fragment(graph: Graph, node_ids) -> Graph:
    """The chosen nodes and the edges among them (edges to the rest of the graph are dropped)."""
    ids = set(node_ids)
    part = Graph(name="fragment")
    for nid, node in graph.nodes.items():
        if nid in ids:
            part.add_node(node.op, node.params, node.pos, nid)
    part.edges = [e for e in graph.edges if e.src in ids and e.dst in ids]
    return part


def copy_to_clipboard(part: Graph) -> None:
    text = part.to_json()
    mime = QMimeData()
    mime.setData(MIME, text.encode("utf-8"))
    mime.setText(text)
    QGuiApplication.clipboard().setMimeData(mime)
    if not _exit_hook:
        atexit.register(_clear_clipboard)
        _exit_hook.append(True)


def _clear_clipboard() -> None:
    """PySide6 6.11 segfaults at interpreter exit while the clipboard still holds our QMimeData
    (reproduced with a bare QApplication): hand it back before Python tears Qt down."""
    if QGuiApplication.instance() is not None:
        QGuiApplication.clipboard().clear()


def from_clipboard() -> Graph | None:
    """The fragment on the clipboard, or None when it holds no Trainbench graph."""
    mime = QGuiApplication.clipboard().mimeData()
    if mime is None:
        return None
    if mime.hasFormat(MIME):
        text = bytes(mime.data(MIME)).decode("utf-8")
    elif mime.hasText():
        text = mime.text()
    else:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != "trainbench.graph":
            return None
        return Graph.from_dict(data)
    except (ValueError, GraphError):
        return None
