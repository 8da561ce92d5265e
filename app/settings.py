"""Where the app keeps its settings, recent files and recovery files.

Everything goes through `settings()` and `data_dir()`, so one environment variable,
`TRAINBENCH_APP_DIR`, moves all of it into a folder of your choice: the tests point it at a
temporary folder so they never read or write the user's own settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

from app import APP_NAME, ORG_NAME

ENV_DIR = "TRAINBENCH_APP_DIR"
MAX_RECENT = 10


def settings() -> QSettings:
    folder = os.environ.get(ENV_DIR)
    if folder:
        return QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat)
    return QSettings(ORG_NAME, APP_NAME)


def data_dir() -> Path:
    """The app's writable folder (recovery files live here); created on first use."""
    folder = os.environ.get(ENV_DIR)
    if folder:
        path = Path(folder)
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("trainbench", appauthor=False))  # the engine's folder too
    path.mkdir(parents=True, exist_ok=True)
    return path


def recent_files() -> list[str]:
    value = settings().value("recent_files", [])
    # QSettings returns a bare string for a one-item list in INI files.
    items = [value] if isinstance(value, str) else list(value or [])
    return [p for p in items if p]


def add_recent_file(path: str | Path) -> None:
    path = str(Path(path).resolve())
    items = [path] + [p for p in recent_files() if p != path]
    settings().setValue("recent_files", items[:MAX_RECENT])


def remove_recent_file(path: str) -> None:
    settings().setValue("recent_files", [p for p in recent_files() if p != path])
