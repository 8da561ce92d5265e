#!/usr/bin/env bash
# Smoke test of the desktop app bundle: builds it, then checks that the frozen app
#   1. starts offscreen, shows its main window and exits cleanly,
#   2. lists devices (devices --json),
#   3. trains end to end against a temporary database (a CSV example and a built-in data set),
#      `runs --json` shows the runs completed, and a trained model exports to PyTorch code,
#   4. runs a 2-process DDP run on the CPU (the workers are this executable again), and its
#      self-check starts workers both ways torch's elastic launcher can (command, spawn).
# Not part of the test suite: the build takes minutes.
#
#   packaging/smoke_test.sh              build, then check
#   packaging/smoke_test.sh --no-build   check the bundle already in dist/trainbench
#
# Exits non-zero at the first failure, saying which check failed and showing its output.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
BUNDLE="$ROOT/dist/trainbench"
case "$(uname -s)" in
    MINGW* | MSYS* | CYGWIN*) APP="$BUNDLE/trainbench.exe" ;;
    *) APP="$BUNDLE/trainbench" ;;
esac
EXAMPLES="$BUNDLE/_internal/resources/examples" # the bundle's own copies, not the checkout's

fail() {
    echo "smoke: FAIL: $*" >&2
    exit 1
}

if [[ "${1:-}" != "--no-build" ]]; then
    "$ROOT/packaging/build.sh" || fail "the build failed (output above)"
fi
[[ -x "$APP" ]] || fail "no bundle at $APP; build it first (packaging/build.sh)"

# Everything the app writes goes to a scratch folder: database, settings, caches.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export TRAINBENCH_DB="$tmp/runs.db"
export XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_CACHE_HOME="$tmp/cache"
export QT_QPA_PLATFORM=offscreen
cd "$tmp" # nothing may depend on the checkout being the working directory

TIMEOUT=()
command -v timeout >/dev/null && TIMEOUT=(timeout 300)

# check NAME COMMAND...: run it (stdout to NAME.out, stderr to NAME.err); on failure show its
# output and stop. Then `ok` or `json_ok` prints the check's line.
check() {
    local name="$1"
    shift
    local rc=0
    check_start=$SECONDS
    ${TIMEOUT[@]+"${TIMEOUT[@]}"} "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
    if ((rc != 0)); then
        show "$name" "$*"
        fail "$name: exit status $rc$( ((rc == 124)) && echo ' (timed out)')"
    fi
}

show() {
    echo "---- $2" >&2
    tail -n 40 "$tmp/$1.out" >&2
    echo "---- stderr" >&2
    tail -n 40 "$tmp/$1.err" >&2
    echo "----" >&2
}

# ok NAME [SUMMARY]: the line for a passed check; SUMMARY defaults to its last line of output.
ok() {
    local summary="${2-$(cat "$tmp/$1.out" "$tmp/$1.err" | grep -v '^[[:space:]]*$' | grep -v propagateSizeHints | tail -n 1)}"
    printf 'smoke: ok   %-8s %4ss  %s\n' "$1" "$((SECONDS - check_start))" "${summary:0:100}"
}

# json_ok NAME CONDITION SUMMARY: Python expressions over `doc`, NAME's stdout parsed as JSON;
# CONDITION must hold, SUMMARY is the line to print.
json_ok() {
    local summary
    if ! summary="$("$PYTHON" -c '
import json, sys
doc = json.load(open(sys.argv[1]))
if not eval(sys.argv[2], {"doc": doc}):
    sys.exit(1)
print(eval(sys.argv[3], {"doc": doc}))' "$tmp/$1.out" "$2" "$3")"; then
        show "$1" "$1"
        fail "$1: the output does not satisfy: $2"
    fi
    ok "$1" "$summary"
}

echo "smoke: testing $APP ($(du -sh "$BUNDLE" | cut -f1))"

TRAINBENCH_SELFCHECK=gui check gui "$APP"
grep -q "selfcheck gui: main window" "$tmp/gui.out" || fail "gui: the app exited 0 without showing its main window"
ok gui "$(cat "$tmp/gui.out")"

check devices "$APP" devices --json
json_ok devices 'doc["cpu"]["cores"] >= 1 and doc["torch"].startswith("2.")' \
    '"{} CPU cores, {} CUDA GPUs, torch {}".format(doc["cpu"]["cores"], len(doc["cuda"]), doc["torch"])'

check csv-run "$APP" run "$EXAMPLES/wine_csv.json" --set train.epochs=2 --quiet
ok csv-run
check sk-run "$APP" run "$EXAMPLES/digits_mlp.json" --set train.epochs=1 --quiet
ok sk-run
# Two processes through torch's elastic launcher, each `trainbench worker` (this executable again).
check ddp-run "$APP" run "$EXAMPLES/wine_csv.json" --set train.epochs=2 \
    --set hardware.strategy=ddp --set hardware.nproc_per_node=2 --quiet
ok ddp-run
check runs "$APP" runs --json
json_ok runs 'len(doc) == 3 and all(r["status"] == "completed" for r in doc)' \
    '", ".join("run {} {} {}".format(r["id"], r["name"], r["status"]) for r in reversed(doc))'

check export "$APP" export 1 --format pytorch --out "$tmp/wine_model.py"
[[ -s "$tmp/wine_model.py" && -s "$tmp/wine_model.pt" ]] || fail "export: no wine_model.py and .pt written"
ok export "$(paste -sd ' ' "$tmp/export.out")"

TRAINBENCH_SELFCHECK=ddp check ddp "$APP"
ok ddp "$(grep -h 'selfcheck ddp' "$tmp/ddp.out" | sed 's/^selfcheck ddp: //' | paste -sd ';' | sed 's/;/; /')"

echo "smoke: all checks passed"
