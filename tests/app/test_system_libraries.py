"""The start-up check of the xcb platform plugin's system libraries: ldd's real output read
right, the one line it prints, and `trainbench` refusing to start with it on a system that
really lacks libxcb-icccm4 and libxcb-keysyms1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import system_libraries as sl
from tests.conftest import ROOT

# `ldd PySide6/Qt/plugins/platforms/libqxcb.so` on this project's machine with libxcb-icccm.so.4
# and libxcb-keysyms.so.1 hidden (an excerpt, verbatim: tabs, load addresses, the repeats).
LDD_MISSING = """\
	linux-vdso.so.1 (0x00007f87699d7000)
	libQt6XcbQpa.so.6 => /root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f8769909000)
	libQt6Gui.so.6 => /root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/PySide6/Qt/plugins/platforms/../../lib/libQt6Gui.so.6 (0x00007f8768c00000)
	libGL.so.1 => /lib/x86_64-linux-gnu/libGL.so.1 (0x00007f8769879000)
	libxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007f8769826000)
	libxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f876981f000)
	libxcb-icccm.so.4 => not found
	libxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007f8769817000)
	libxcb-image.so.0 => /lib/x86_64-linux-gnu/libxcb-image.so.0 (0x00007f8769811000)
	libxcb-keysyms.so.1 => not found
	libxcb-randr.so.0 => /lib/x86_64-linux-gnu/libxcb-randr.so.0 (0x00007f87697fe000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f8767a1e000)
	libxcb-icccm.so.4 => not found
	libxcb-keysyms.so.1 => not found
	libEGL.so.1 => /lib/x86_64-linux-gnu/libEGL.so.1 (0x00007f8769748000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f87699d9000)
	libdbus-1.so.3 => /lib/x86_64-linux-gnu/libdbus-1.so.3 (0x00007f8767310000)
"""
HIDDEN = ("libxcb-icccm.so.4", "libxcb-keysyms.so.1")
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not shutil.which("ldd"), reason="ldd on Linux"
)


def test_ldd_output_is_read_into_found_and_missing_libraries():
    report = sl.parse_ldd(LDD_MISSING)
    assert report.missing == list(HIDDEN)  # each once, in order
    assert report.found["libxcb-cursor.so.0"] == "/lib/x86_64-linux-gnu/libxcb-cursor.so.0"
    assert report.found["libQt6XcbQpa.so.6"].endswith("/platforms/../../lib/libQt6XcbQpa.so.6")
    assert "linux-vdso.so.1" not in report.found and len(report.found) == 11


def test_the_line_names_the_missing_libraries_and_the_apt_get_command():
    line = sl.install_hint(sl.parse_ldd(LDD_MISSING).missing)
    assert line == (
        "trainbench: the desktop app needs system libraries that are missing: libxcb-icccm.so.4, "
        "libxcb-keysyms.so.1; install them with: sudo apt-get install libxcb-icccm4 libxcb-keysyms1"
    )
    assert "cursor" not in line
    odd = sl.install_hint(["libEGL.so.1", "libGL.so.1", "libfoo.so.3"])  # one without a known package
    assert "apt-get install libegl1 libgl1;" in odd and "libfoo.so.3 with your package manager" in odd
    assert "\n" not in odd


@pytest.mark.parametrize(
    "argv, env, platform, xcb",
    [
        ([], {}, "linux", True),
        ([], {"XDG_SESSION_TYPE": "x11"}, "linux", True),
        ([], {"XDG_SESSION_TYPE": "wayland"}, "linux", False),
        ([], {"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ([], {"QT_QPA_PLATFORM": "wayland;xcb"}, "linux", False),
        ([], {"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        (["-platform", "xcb:nomitshm"], {"QT_QPA_PLATFORM": "offscreen"}, "linux", True),
        (["-platform", "offscreen"], {}, "linux", False),
        ([], {}, "darwin", False),
        ([], {"QT_QPA_PLATFORM": "xcb"}, "win32", False),
    ],
)
def test_the_check_runs_only_where_qt_will_use_xcb(argv, env, platform, xcb):
    assert sl.uses_xcb(argv, env, platform) is xcb


@linux_only
def test_real_ldd_on_the_real_plugin():
    plugin = sl.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30).stdout
    report = sl.parse_ldd(out)
    assert "libQt6XcbQpa.so.6" in report.found
    needed = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0", "libxkbcommon-x11.so.0"}
    assert needed <= set(report.found) | set(report.missing)  # every line understood
    assert sl.missing_libraries(plugin) == report.missing
    assert sl.xcb_problem([], {"QT_QPA_PLATFORM": "offscreen"}) is None


@linux_only
def test_the_plugin_is_checked_wherever_it_lies_and_pyside6s_own_libraries_are_not_judged(tmp_path):
    real = sl.xcb_plugin()
    fake = tmp_path / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    fake.parent.mkdir(parents=True)
    shutil.copy(real, fake)
    xcb = {"QT_QPA_PLATFORM": "xcb"}
    # its $ORIGIN/../../lib holds no Qt: ldd cannot find libQt6XcbQpa, which is no system package
    assert (
        "libQt6XcbQpa.so.6"
        in sl.parse_ldd(subprocess.run(["ldd", fake], capture_output=True, text=True).stdout).missing
    )
    assert sl.missing_libraries(fake) == [] and sl.xcb_problem([], xcb, plugin=fake) is None
    (tmp_path / "PySide6" / "Qt" / "lib").symlink_to(real.parents[2] / "lib")
    assert sl.missing_libraries(fake) == sl.missing_libraries(real)
    assert sl.xcb_problem([], xcb, plugin=tmp_path / "none" / "libqxcb.so") is None


def _library_folder() -> Path | None:
    """The folder holding the libraries the end-to-end test hides, when it can hide them: as
    root, with `unshare`, on the same file system as the temporary folder (hard links)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("unshare"):
        return None
    plugin = sl.xcb_plugin()
    found = sl.parse_ldd(subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout).found
    paths = [Path(found[h]).resolve() for h in HIDDEN if h in found]
    if len(paths) != len(HIDDEN) or len({p.parent for p in paths}) != 1:
        return None
    return paths[0].parent


def test_trainbench_refuses_to_start_naming_the_libraries_really_missing(tmp_path):
    """In a private mount namespace the system library folder is replaced by a hard-linked copy
    without the two libraries, so ldd and Qt really cannot find them (Qt itself would name
    libxcb-cursor0, which is installed)."""
    folder = _library_folder()
    if folder is None or folder.stat().st_dev != tmp_path.stat().st_dev:
        pytest.skip("needs root, unshare, and the system libraries on the temporary folder's file system")
    copy = tmp_path / "lib"
    script = (
        f"cp -al {folder} {copy} && rm -f {copy}/libxcb-icccm.so.4* {copy}/libxcb-keysyms.so.1* && "
        f"mount --bind {copy} {folder} && exec {sys.executable} -m app.main"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(ROOT)}
    env.pop("DISPLAY", None)
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == [
        "trainbench: the desktop app needs system libraries that are missing: libxcb-icccm.so.4, "
        "libxcb-keysyms.so.1; install them with: sudo apt-get install libxcb-icccm4 libxcb-keysyms1"
    ]
