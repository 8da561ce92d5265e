"""Before the desktop app starts on X11: are the system libraries Qt's xcb platform plugin
needs installed?

When one is missing, Qt (6.5 and later) says "xcb-cursor0 or libxcb-cursor0 is needed"
whatever the missing one is: measured here with libxcb-icccm4 and libxcb-keysyms1 missing and
libxcb-cursor0 installed. `ldd` on the plugin (`PySide6/Qt/plugins/platforms/libqxcb.so`) and
on the libQt6XcbQpa it links names the real ones; `xcb_problem` turns them into one line with
the `apt-get install` command. This module imports no Qt: importing QtGui itself fails when
libEGL, libGL or libfontconfig is missing, and those are on ldd's list too.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: library file (soname) → the Debian/Ubuntu package that installs it
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
}
#: libraries PySide6 ships itself: when ldd cannot find one (an app bundle lays them out its
#: own way) that is no missing system package, and Qt may still find it
SHIPPED_WITH_PYSIDE6 = ("libQt6", "libicu", "libpyside6", "libshiboken6")
LDD_TIMEOUT_S = 10
_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(.*?)\s*(?:\(0x[0-9a-f]+\))?\s*$")


@dataclass
class LddReport:
    """What `ldd` said: each linked library's path, and those it could not find (in order)."""

    found: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def parse_ldd(text: str) -> LddReport:
    """Read `ldd` output: `libfoo.so.1 => /path (0x…)` lines and `libfoo.so.1 => not found`
    ones (ldd repeats a missing library once per library that needs it: listed once)."""
    report = LddReport()
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name, where = m.groups()
        if where == "not found":
            if name not in report.missing:
                report.missing.append(name)
        elif where:
            report.found[name] = where
    return report


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin, wherever PySide6 is installed (a venv, an app bundle)."""
    spec = importlib.util.find_spec("PySide6")
    for base in spec.submodule_search_locations if spec and spec.submodule_search_locations else ():
        for rel in ("Qt/plugins/platforms/libqxcb.so", "plugins/platforms/libqxcb.so"):
            if (Path(base) / rel).is_file():
                return Path(base) / rel
    return None


def missing_libraries(plugin: Path) -> list[str]:
    """System libraries the plugin, or the libQt6XcbQpa it links, needs and the system lacks
    (PySide6's own libraries are left out: see SHIPPED_WITH_PYSIDE6).

    ldd lists dependencies transitively, so on a healthy start the plugin's list, one ldd of
    ~30 ms, covers libQt6XcbQpa's too. libQt6XcbQpa is read on its own only when that list is
    not clean (something missing, or no list at all), to be sure the line names everything."""
    report = _ldd(plugin)
    missing = list(report.missing)
    if report.found and not missing:
        return []
    qpa = Path(
        report.found.get("libQt6XcbQpa.so.6") or plugin.parent.parent.parent / "lib" / "libQt6XcbQpa.so.6"
    )
    if qpa.is_file():
        missing += [name for name in _ldd(qpa).missing if name not in missing]
    return [name for name in missing if not name.startswith(SHIPPED_WITH_PYSIDE6)]


def uses_xcb(argv: Sequence[str], env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will use its xcb plugin: `-platform NAME`, else $QT_QPA_PLATFORM (the first of
    a `;` list, without `:options`), else xcb on Linux outside a Wayland session."""
    if not platform.startswith("linux"):
        return False
    name = env.get("QT_QPA_PLATFORM", "")
    for i, arg in enumerate(argv):
        if arg == "-platform" and i + 1 < len(argv):
            name = argv[i + 1]
    if name:
        return name.split(";")[0].split(":")[0].strip() == "xcb"
    return env.get("XDG_SESSION_TYPE") != "wayland"


def install_hint(missing: Sequence[str]) -> str:
    """One line naming the missing libraries and the command that installs them."""
    packages = list(dict.fromkeys(DEBIAN_PACKAGES[m] for m in missing if m in DEBIAN_PACKAGES))
    unknown = [m for m in missing if m not in DEBIAN_PACKAGES]
    text = f"trainbench: the desktop app needs system libraries that are missing: {', '.join(missing)}"
    if packages:
        text += f"; install them with: sudo apt-get install {' '.join(packages)}"
    if unknown:
        text += f"; find the package{'s' if len(unknown) > 1 else ''} for {', '.join(unknown)} with your package manager"
    return text


def xcb_problem(argv: Sequence[str], env: Mapping[str, str], plugin: Path | None = None) -> str | None:
    """The line to print instead of starting, when Qt is going to use xcb and its plugin's
    libraries are not all there; None when all is well or nothing can be checked (no ldd, no
    plugin file: a frozen app or another layout)."""
    if not uses_xcb(argv, env) or shutil.which("ldd") is None:
        return None
    plugin = plugin or xcb_plugin()
    if plugin is None or not plugin.is_file():
        return None
    missing = missing_libraries(plugin)
    return install_hint(missing) if missing else None


def _ldd(path: Path) -> LddReport:
    try:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=LDD_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return LddReport()  # no verdict: let Qt try
    return parse_ldd(out.stdout)
