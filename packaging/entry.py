"""The frozen app's entry point: `trainbench` (and `trainbench-gui` on Windows) in the bundle.

It behaves like the pip-installed console script `engine.cli:main`: no arguments open the desktop
app, a subcommand runs headless. The engine processes the GUI starts (`engine.processes.command_line`)
re-enter here with a subcommand, since a frozen app runs no `python -m ...`.

TRAINBENCH_SELFCHECK=gui|ddp runs a check of the bundle itself (see trainbench_selfcheck.py);
packaging/smoke_test.sh uses it.
"""

import multiprocessing
import os
import sys


def main() -> int:
    # First, before anything else runs: a process started by multiprocessing's spawn (a DataLoader
    # worker on Windows/macOS, a torch.multiprocessing child) is this same executable with
    # `--multiprocessing-fork` arguments; freeze_support runs its target and exits.
    multiprocessing.freeze_support()
    _ensure_std_streams()
    # Finder once passed a process serial number (-psn_0_123) to apps it launched; drop it.
    sys.argv[1:] = [a for a in sys.argv[1:] if not a.startswith("-psn_")]

    check = os.environ.get("TRAINBENCH_SELFCHECK")
    if check:
        import trainbench_selfcheck

        if check == "ddp":
            return trainbench_selfcheck.ddp()
        if check != "gui":
            print(f"trainbench: error: unknown TRAINBENCH_SELFCHECK {check!r} (gui, ddp)", file=sys.stderr)
            return 2
        trainbench_selfcheck.arm_gui_check()

    from engine.cli import main as cli_main

    return cli_main()


def _ensure_std_streams() -> None:
    """A windowed executable started without a terminal (Windows' trainbench-gui.exe, a macOS app
    opened from Finder) has no stdout/stderr: Python sets them to None and the first print or
    progress bar would raise. Send them nowhere instead."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 (lives as long as the process)


if __name__ == "__main__":
    sys.exit(main())
