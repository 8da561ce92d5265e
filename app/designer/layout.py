"""Auto-layout: left to right by topological depth, each column ordered to follow its inputs,
and long models wrapped into bands (like lines of text) so that they fit the view at a
readable zoom instead of becoming one thin strip. A model too large to fit whole at the
readable zoom is wrapped to the view's width at that zoom, so it reads down like a page.

Positions only, so this is a view concern and lives in the app; the command that applies it
is an ordinary undoable move.
"""

from __future__ import annotations

import math

from app.designer.items import NODE_W
from app.designer.view import READABLE_ZOOM
from engine.graph import Graph

COLUMN = NODE_W + 92.0  # room between nodes for an edge's shape label
ROW = 100.0
BAND_GAP = 70.0  # between bands; wrapped edges run back through it


def layered_positions(
    graph: Graph, view: tuple[float, float] | None = None
) -> dict[str, tuple[float, float]]:
    """Positions for every node. With `view` (the canvas size in pixels), columns wrap into the
    fewest evenly filled bands that show the model nearly as large as the best wrapping does,
    and never below the readable zoom (the view would not shrink it further, and the last
    columns would be cut off); when even the best would be below that zoom, into bands as wide
    as the view at that zoom."""
    columns = _columns(graph)
    if not columns:
        return {}
    wrap = len(columns)
    if view:
        n = len(columns)
        options = [math.ceil(n / bands) for bands in range(1, n + 1)]
        best = max(_fit_scale(columns, k, view) for k in options)
        if best >= READABLE_ZOOM:
            good = max(0.75 * best, READABLE_ZOOM)
            wrap = next(k for k in options if _fit_scale(columns, k, view) >= good)
        else:
            wrap = next((k for k in options if _width(k, n) * READABLE_ZOOM <= view[0]), 1)
    positions: dict[str, tuple[float, float]] = {}
    top = 0.0
    for start in range(0, len(columns), wrap):
        band = columns[start : start + wrap]
        rows = max(len(c) for c in band)
        for i, nodes in enumerate(band):
            offset = (rows - len(nodes)) / 2  # centre short columns in the band
            for j, n in enumerate(nodes):
                positions[n] = (i * COLUMN, top + (offset + j) * ROW)
        top += rows * ROW + BAND_GAP
    return positions


def _columns(graph: Graph) -> list[list[str]]:
    order, cyclic = graph.topo_order()
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for e in graph.edges:
        preds[e.dst].append(e.src)
    depth: dict[str, int] = {}
    for n in order:
        depth[n] = 1 + max((depth[p] for p in preds[n] if p in depth), default=-1)
    last = max(depth.values(), default=-1)
    for n in cyclic:  # nodes on a cycle have no depth; park them in a column at the end
        depth[n] = last + 1
    by_depth: dict[int, list[str]] = {}
    for n in order + cyclic:
        by_depth.setdefault(depth[n], []).append(n)

    row_of: dict[str, float] = {}
    columns = []
    for d in sorted(by_depth):
        nodes = by_depth[d]
        # Barycentre of each node's inputs keeps edges short and mostly uncrossed.
        nodes.sort(key=lambda n: _mean([row_of[p] for p in preds[n] if p in row_of], len(row_of)))
        for i, n in enumerate(nodes):
            row_of[n] = i - (len(nodes) - 1) / 2
        columns.append(nodes)
    return columns


def _fit_scale(columns: list[list[str]], wrap: int, view: tuple[float, float]) -> float:
    """The zoom at which the layout fits the view (never above 1: the view does not magnify)."""
    bands = [columns[i : i + wrap] for i in range(0, len(columns), wrap)]
    width = _width(wrap, len(columns))
    height = sum(max(len(c) for c in b) * ROW for b in bands) + (len(bands) - 1) * BAND_GAP + 80
    return min(view[0] / width, view[1] / height, 1.0)


def _width(wrap: int, n_columns: int) -> float:
    """The width of a layout of n columns wrapped every `wrap`, with the fit's margins."""
    return (min(wrap, n_columns) - 1) * COLUMN + NODE_W + 80


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def arrange(graph: Graph, view: tuple[float, float]) -> Graph:
    """The same graph with a fresh layout (used when a template is opened)."""
    for n, pos in layered_positions(graph, view).items():
        graph.nodes[n].pos = pos
    return graph
