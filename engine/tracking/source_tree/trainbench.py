"""`import trainbench` from a source checkout that was not installed (`pip install -e .` maps
the name itself; see pyproject.toml). `trainbench run --script` puts this folder on a
script's PYTHONPATH only when the name cannot be imported otherwise.

Importing this module replaces it with the package in `engine/tracking/`, loaded under the
name `trainbench` exactly as an install's import finder loads it, so `trainbench.lightning`
and the other submodules resolve from that folder too.
"""

import importlib.util
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
_ROOT = _PACKAGE.parent.parent
if importlib.util.find_spec("engine") is None:  # the package imports the engine beside it
    sys.path.append(str(_ROOT))
_spec = importlib.util.spec_from_file_location(
    "trainbench", _PACKAGE / "__init__.py", submodule_search_locations=[str(_PACKAGE)]
)
_module = importlib.util.module_from_spec(_spec)
sys.modules["trainbench"] = _module
_spec.loader.exec_module(_module)
