"""`trainbench` with no arguments: the desktop app.

Start-up imports Qt and the torch-free half of the engine only, so the window appears fast;
torch is imported later, when something needs it (an export, a run). Qt itself is imported
only after `system_libraries` has checked, on X11, that the xcb plugin's system libraries are
there: Qt's own message names the wrong one, and importing QtGui fails without some of them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app import APP_NAME, system_libraries

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from app.window import MainWindow

START_TEMPLATE = "cnn"


def create_app(argv: list[str] | None = None) -> QApplication:
    from PySide6.QtWidgets import QApplication

    from app import ORG_NAME, icons, settings, theme

    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setWindowIcon(icons.app_icon())
    theme.apply(app, settings.settings().value("theme", "light"))
    return app


def create_window(graph_path: str | Path | None = None, db_path: str | Path | None = None) -> MainWindow:
    """The main window showing `graph_path`, or the CNN template so there is a model to look at.
    Without `db_path` the areas that need the run database use the engine's default one."""
    from app.designer.document import GraphDocument
    from app.designer.files import load_template
    from app.window import MainWindow

    db = Path(db_path) if db_path else None
    if graph_path:
        window = MainWindow(GraphDocument(), db)
        window.files.load(graph_path)
    else:
        window = MainWindow(GraphDocument(load_template(START_TEMPLATE)), db)
    return window


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainbench", description=f"{APP_NAME} desktop app")
    parser.add_argument("graph", nargs="?", help="a model graph (JSON) to open")
    parser.add_argument("--db", help="the run database (default: the engine's default database)")
    args, qt_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    problem = system_libraries.xcb_problem(qt_args, os.environ)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from PySide6.QtCore import QTimer

    app = create_app(qt_args)
    window = create_window(args.graph, args.db)
    window.show()
    QTimer.singleShot(0, window.designer.view.fit)
    QTimer.singleShot(0, window.offer_recovery)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
