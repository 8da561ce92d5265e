"""Trainbench's headless engine: run spec, model graph, data, tasks, strategies, run store.

Nothing in this package imports Qt; the desktop app in `app/` is one client of it and the
`trainbench` command line is another.
"""

from pathlib import Path

__version__ = "0.1.0"

#: templates, examples, icons and styles shipped beside the packages
RESOURCES = Path(__file__).resolve().parent.parent / "resources"
