"""Opening the files users name (specs, graphs, data), with errors that say which file and why.

A path may name anything: a FIFO or a device (`/dev/zero`), which would block or never end
a read, a folder, a 2 GB file, or JSON nested 10,000 deep, which overflows Python's stack in
every recursive walk (copy, compare, dump) after the parser. Each is refused here with one line naming
the file, before anything is read into memory.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from engine.errors import DataError
from engine.fields import shorten

MAX_JSON_BYTES = 64 * 2**20  # a 20,000-node graph is ~5 MB
MAX_DEPTH = 100  # nesting levels: a spec with Repeat bodies eight deep needs ~40


def regular_file(path: str | Path, kind: str = "file", missing: str = "") -> Path:
    """`path` when it is a regular file (symlinks followed); a DataError naming it otherwise
    (`missing`: the message when it does not exist, default "<kind> not found").

    Only `stat` is called, so a FIFO, socket or device is refused without being opened."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise DataError(f"{p}: {missing or kind + ' not found'}") from None
    except (OSError, ValueError) as err:  # permission, a symlink loop, a name too long, a NUL byte
        raise DataError(f"{p}: cannot open the {kind} ({_reason(err)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{p}: is a folder, expected a {kind}")
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{p}: not a regular file ({_file_type(st.st_mode)}), expected a {kind}")
    return p


def read_bytes(path: str | Path, kind: str = "file", limit: int | None = None, missing: str = "") -> bytes:
    """The contents of a regular file, refused before reading when larger than `limit`.

    The file is opened non-blocking and checked again, so a path swapped for a FIFO between
    the check and the open cannot block the reader."""
    p = regular_file(path, kind, missing)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise DataError(f"{p}: cannot open the {kind} ({_reason(err)})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{p}: not a regular file ({_file_type(st.st_mode)}), expected a {kind}")
        if limit is not None and st.st_size > limit:
            raise DataError(f"{p}: the {kind} is {_mib(st.st_size)}; at most {_mib(limit)} is read")
        try:
            return fh.read() if limit is None else fh.read(limit + 1)
        except OSError as err:
            raise DataError(f"{p}: cannot read the {kind} ({_reason(err)})") from None


def read_json(path: str | Path) -> dict:
    """A parsed JSON document (a UTF-8 BOM, as Windows editors write, is accepted)."""
    p = Path(path)
    raw = read_bytes(p, "JSON file", MAX_JSON_BYTES, missing="file not found")
    if len(raw) > MAX_JSON_BYTES:  # it grew while being read
        raise DataError(f"{p}: the JSON file is over {_mib(MAX_JSON_BYTES)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{p}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    if not text.strip():
        raise DataError(f"{p}: the file is empty, expected a JSON object")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{p}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:  # the parser guards its own stack
        raise DataError(f"{p}: JSON nested too deeply; at most {MAX_DEPTH} levels are read") from None
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        raise DataError(f"{p}: invalid JSON: {_reason(err)}") from None
    where = too_deep(doc)
    if where:
        raise DataError(f"{p}: JSON nested more than {MAX_DEPTH} levels deep (at {shorten(where)})")
    return doc


def too_deep(doc, limit: int = MAX_DEPTH) -> str | None:
    """The path where `doc` (parsed JSON: dicts, lists, scalars) nests deeper than `limit`, or
    None. Iterative, so it is safe on documents that recursive code would overflow on."""
    stack = [(doc, "", 1)]
    while stack:
        value, path, level = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if level > limit:
            return path or "(the document)"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            if isinstance(child, dict | list):
                where = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
                stack.append((child, where, level + 1))
    return None


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err)[:200] or type(err).__name__
