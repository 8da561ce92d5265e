"""Reading the JSON documents users open (specs, graphs), with errors that say which file and why."""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import DataError


def read_json(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a JSON file")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not a text file ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{p}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
