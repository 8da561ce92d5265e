"""The visual model designer.

`engine.graph` is the model. `document.GraphDocument` holds one graph with its file, undo stack
and latest analysis; `commands` are the only edits; `scene`/`items` mirror the document on a
canvas, `view` zooms and scrolls it, and `interactions` turns mouse and key gestures into
commands; `palette`, `inspector` and `summary` are panels generated from the op registry and the
analysis; `area.DesignerArea` puts them together.
"""
