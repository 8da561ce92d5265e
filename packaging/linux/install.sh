#!/usr/bin/env bash
# Installs the Trainbench bundle for the current user, like any desktop program:
#   ~/.local/lib/trainbench/           the bundle (a copy)
#   ~/.local/bin/trainbench            a link to its executable (the command line)
#   ~/.local/share/applications/trainbench.desktop and the icon in ~/.local/share/icons/hicolor/
#
#   ./install.sh               from an unpacked bundle (install.sh sits beside `trainbench`)
#   ./install.sh BUNDLE_DIR    from elsewhere, e.g. dist/trainbench in a checkout
#   ./install.sh --uninstall   removes all of the above
#
# XDG_DATA_HOME moves the share/ part; PREFIX (default ~/.local) moves lib/ and bin/.
set -euo pipefail

PREFIX="${PREFIX:-$HOME/.local}"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
LIB="$PREFIX/lib/trainbench"
BIN="$PREFIX/bin/trainbench"
DESKTOP="$DATA/applications/trainbench.desktop"
ICONS="$DATA/icons/hicolor"
SIZES=(16 24 32 48 64 128 256 512)

refresh_caches() {
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA/applications" || true
    # Only refresh an existing cache: a new one would hide icons that others add without updating it.
    if [[ -f "$ICONS/icon-theme.cache" ]] && command -v gtk-update-icon-cache >/dev/null; then
        gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true
    fi
}

if [[ "${1:-}" == "--uninstall" ]]; then
    rm -rf "$LIB"
    rm -f "$BIN" "$DESKTOP" "$ICONS/scalable/apps/trainbench.svg"
    for s in "${SIZES[@]}"; do rm -f "$ICONS/${s}x${s}/apps/trainbench.png"; done
    refresh_caches
    echo "Trainbench uninstalled (your runs database in ${XDG_DATA_HOME:-~/.local/share}/trainbench/ is kept)"
    exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -ge 1 ]]; then
    bundle="$(cd "$1" && pwd)"
elif [[ -x "$here/trainbench" && -d "$here/_internal" ]]; then
    bundle="$here"
else
    bundle="$(cd "$here/../.." && pwd)/dist/trainbench"
fi
[[ -x "$bundle/trainbench" ]] || { echo "install: no Trainbench bundle at $bundle" >&2; exit 1; }
res="$bundle/_internal/resources"

if [[ "$bundle" != "$LIB" ]]; then
    rm -rf "$LIB"
    mkdir -p "$(dirname "$LIB")"
    cp -a "$bundle" "$LIB"
fi
mkdir -p "$(dirname "$BIN")" "$(dirname "$DESKTOP")" "$ICONS/scalable/apps"
ln -sfn "$LIB/trainbench" "$BIN"
for s in "${SIZES[@]}"; do
    install -D -m 644 "$res/icons/app/trainbench-$s.png" "$ICONS/${s}x${s}/apps/trainbench.png"
done
install -m 644 "$res/icons/trainbench.svg" "$ICONS/scalable/apps/trainbench.svg"
# The bundle carries a copy of the entry (build.sh puts it there); a checkout has it beside this.
entry="$bundle/trainbench.desktop"
[[ -f "$entry" ]] || entry="$here/trainbench.desktop"
# Absolute paths: the menu works even where ~/.local/bin is not on the desktop session's PATH.
sed -e "s|^Exec=trainbench|Exec=$LIB/trainbench|" -e "s|^TryExec=trainbench|TryExec=$LIB/trainbench|" \
    "$entry" >"$DESKTOP"
chmod 644 "$DESKTOP"
refresh_caches
echo "Trainbench installed: $LIB"
echo "  menu entry: $DESKTOP"
echo "  command:    $BIN$(case ":$PATH:" in *":$PREFIX/bin:"*) ;; *) echo " (add $PREFIX/bin to PATH)" ;; esac)"
