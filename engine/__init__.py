"""Trainbench's headless engine: run spec, model graph, data, tasks, strategies, run store.

Nothing in this package imports Qt; the desktop app in `app/` is one client of it and the
`trainbench` command line is another.
"""

import importlib.util
from pathlib import Path

__version__ = "0.1.0"


def _resources() -> Path:
    """resources/ beside the packages (a checkout, an editable install, the app bundle), else the
    `trainbench_resources` data package a wheel installs."""
    beside = Path(__file__).resolve().parent.parent / "resources"
    if beside.is_dir():
        return beside
    spec = importlib.util.find_spec("trainbench_resources")
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else beside


#: templates, examples, icons and styles
RESOURCES = _resources()
