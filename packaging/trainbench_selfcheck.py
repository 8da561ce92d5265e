"""Checks of the bundle itself, run by the frozen app when TRAINBENCH_SELFCHECK is set.

A frozen app runs no script but its own entry point, so what the smoke test needs to look at
from the inside ships in the bundle, behind an environment variable no user sets:

- `gui`: start the desktop app as usual; after TRAINBENCH_SELFCHECK_MS (default 1500 ms) print
  the visible main window's title and quit with 0, or quit with 3 if no main window is showing.
- `ddp`: start two CPU processes through torch.distributed's elastic launcher, join a gloo
  process group and all-reduce a tensor; once with the worker started as a command (this
  executable again), once as a Python function (multiprocessing spawn). That is every way an
  engine run can start its workers, and what a frozen app can get wrong (a child that cannot
  find its entry point, gloo missing from the bundle).

Both run from a source checkout too: `TRAINBENCH_SELFCHECK=ddp python packaging/entry.py`.
"""

from __future__ import annotations

import os
import sys
import uuid

GUI_NO_WINDOW = 3
DDP_PROCESSES = 2


def arm_gui_check() -> None:
    """Create the QApplication first (the app's `create_app` reuses it) and queue the check on its
    event loop: it runs once the loop has shown the window and processed events for a while."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    delay_ms = int(os.environ.get("TRAINBENCH_SELFCHECK_MS", "1500"))

    def check() -> None:
        shown = [w for w in app.topLevelWidgets() if isinstance(w, QMainWindow) and w.isVisible()]
        if not shown:
            print("selfcheck gui: no main window is showing", file=sys.stderr, flush=True)
            app.exit(GUI_NO_WINDOW)
            return
        w = shown[0]
        title = w.windowTitle().replace("[*]", "")  # Qt's modified-marker placeholder
        print(
            f"selfcheck gui: main window {title!r} shown at {w.width()}x{w.height()} "
            f"on the {app.platformName()!r} platform",
            flush=True,
        )
        app.exit(0)

    QTimer.singleShot(delay_ms, check)


def ddp() -> int:
    if "LOCAL_RANK" in os.environ:  # a worker the launcher started as a command
        return 0 if _all_reduce() == _expected() else 1

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    def config() -> LaunchConfig:
        # What `torchrun --standalone` does: a c10d rendezvous on a free local port.
        return LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=DDP_PROCESSES,
            run_id=f"selfcheck-{uuid.uuid4().hex[:8]}",
            rdzv_backend="c10d",
            rdzv_endpoint="localhost:0",
            max_restarts=0,
        )

    # As a command: the executable itself (frozen) or this entry script (source checkout).
    command = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, sys.argv[0]]
    elastic_launch(config(), entrypoint=command[0])(*command[1:])  # raises ChildFailedError on failure
    print(f"selfcheck ddp: {DDP_PROCESSES} workers started as a command joined a gloo group", flush=True)

    # As a function: multiprocessing spawn re-enters the entry point (freeze_support).
    results = elastic_launch(config(), entrypoint=_all_reduce)()
    if sorted(results.values()) != [_expected()] * DDP_PROCESSES:
        print(f"selfcheck ddp: spawned workers reduced to {results}, expected {_expected()}", file=sys.stderr)
        return 1
    print(f"selfcheck ddp: {DDP_PROCESSES} spawned workers all-reduced {_expected()}", flush=True)
    return 0


def _expected() -> float:
    return float(sum(range(1, DDP_PROCESSES + 1)))


def _all_reduce() -> float:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")  # rank, world size and address come from the launcher's env
    try:
        value = torch.tensor([dist.get_rank() + 1.0])
        dist.all_reduce(value)
        return float(value.item())
    finally:
        dist.destroy_process_group()
