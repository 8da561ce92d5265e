"""Bringing existing models into the designer: PyTorch modules (`fx`) and ONNX files (`onnx`).

Both importers produce an `Imported`: a graph of registry ops (and opaque `Module` nodes for
what maps to none), its weights keyed by node id, and what the import report needs. `run`
then collapses identical consecutive blocks into Repeat nodes (`layout`), lays the graph
out, checks it numerically against the original and writes graph + weights + report.

Importing a PyTorch model runs its code: that is what the user asks for here, and it happens
only in the process that imports (the CLI, which the GUI starts as a subprocess). The graph it
writes references the code by import path; opening that graph runs nothing.
"""

from __future__ import annotations

from pathlib import Path

from engine.graph.importers.report import Imported, ModelImportError, write

__all__ = ["Imported", "ModelImportError", "import_source", "run"]


def import_source(
    source: str, kwargs: dict | None = None, input_shape=None, dtype: str = "float"
) -> Imported:
    """Import `source`: a `.onnx` file, `path/file.py:factory`, or `package.module:factory`."""
    if source.lower().endswith(".onnx"):
        from engine.graph.importers.onnx import import_onnx

        return import_onnx(Path(source))
    from engine.graph.importers.fx import import_pytorch

    return import_pytorch(source, kwargs or {}, input_shape, dtype)


def run(
    source: str, out: str | Path, kwargs: dict | None = None, input_shape=None, dtype: str = "float"
) -> dict:
    """Import `source` and write `out` (the graph), its weights beside it (`.safetensors`) and
    return the import report (also written beside it as `.import.json`)."""
    from engine.graph.importers.layout import collapse_repeats, lay_out

    imported = import_source(source, kwargs, input_shape, dtype)
    collapse_repeats(imported)
    lay_out(imported.graph)
    return write(imported, Path(out))
