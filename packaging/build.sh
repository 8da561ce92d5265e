#!/usr/bin/env bash
# Builds the desktop app bundle with PyInstaller: dist/trainbench/ (one folder; run
# dist/trainbench/trainbench), and on macOS dist/Trainbench.app.
#
#   packaging/build.sh              build (installs PyInstaller into this Python if missing)
#   packaging/build.sh --archive    build, then pack dist/trainbench-VERSION-OS-ARCH.tar.gz (.zip on Windows)
#
# Run it from an environment where Trainbench runs (pip install -e .): PyInstaller bundles the
# packages this Python imports. PYTHON picks the interpreter (default: python, else python3).
# Other arguments go to PyInstaller (e.g. --clean). Takes minutes: PyInstaller imports every
# torch submodule to find what to bundle.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"

archive=0
pyinstaller_args=()
for arg in "$@"; do
    case "$arg" in
        --archive) archive=1 ;;
        *) pyinstaller_args+=("$arg") ;;
    esac
done

if ! "$PYTHON" -c "import engine, app, PySide6, torch" 2>/dev/null; then
    echo "build: $PYTHON cannot import trainbench and its dependencies; run 'pip install -e .' first" >&2
    exit 1
fi
if ! "$PYTHON" -m PyInstaller --version >/dev/null 2>&1; then
    echo "build: installing PyInstaller" >&2
    "$PYTHON" -m pip install --quiet "pyinstaller>=6.10"
fi

# Raster icons are generated from the SVG; refresh them when the SVG changed.
svg=resources/icons/trainbench.svg
if [[ ! -f resources/icons/app/trainbench.ico || "$svg" -nt resources/icons/app/trainbench-512.png ]]; then
    "$PYTHON" packaging/make_icons.py >/dev/null
fi

start=$(date +%s)
"$PYTHON" -m PyInstaller packaging/trainbench.spec \
    --noconfirm \
    --distpath dist \
    --workpath build/pyinstaller \
    --log-level WARN \
    ${pyinstaller_args[@]+"${pyinstaller_args[@]}"}
elapsed=$(($(date +%s) - start))

if [[ "$(uname -s)" == Linux ]]; then
    # An unpacked Linux bundle installs itself into the menu: trainbench/install.sh.
    cp packaging/linux/install.sh packaging/linux/trainbench.desktop dist/trainbench/
fi

size=$(du -sh dist/trainbench | cut -f1)
echo "build: dist/trainbench built in ${elapsed}s, ${size}"

if ((archive)); then
    version=$("$PYTHON" -c "import engine; print(engine.__version__)")
    os=$("$PYTHON" -c "import sys; print({'win32': 'windows', 'darwin': 'macos'}.get(sys.platform, sys.platform))")
    arch=$("$PYTHON" -c "import platform; print(platform.machine().lower())")
    name="trainbench-$version-$os-$arch"
    case "$os" in
        windows) (cd dist && "$PYTHON" -m zipfile -c "$name.zip" trainbench) && out="dist/$name.zip" ;;
        macos) ditto -c -k --keepParent dist/Trainbench.app "dist/$name.zip" && out="dist/$name.zip" ;;
        *) tar -C dist -czf "dist/$name.tar.gz" trainbench && out="dist/$name.tar.gz" ;;
    esac
    echo "build: $out ($(du -sh "$out" | cut -f1))"
fi
