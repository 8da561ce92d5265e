"""The reproducibility capsule: what a run was made of and where, recorded as it starts.

A curve that differs from last week's has a reason: another commit, an uncommitted edit, a
newer torch, other data, another seed, more processes. Each attempt of a run (its start and
every resume) records one capsule in the store (`RunStore.add_capsule`): the git commit, branch
and `git diff` of the spec's or script's repository; Python, torch, CUDA, cuDNN and NCCL and
every installed package (`pip freeze`, read from the package metadata, no subprocess); the
host, its devices and the world size; the script's argv; the seeds; and a fingerprint of the
data (size, modification time and a content hash of files up to HASH_LIMIT bytes, or the
built-in set's name and its library's version). The spec itself is the run's normalised spec.

`export` writes one JSON file (`trainbench capsule RUN -o run.tbcapsule`) with the spec, the
capsules, the summary and the SHA-256 of the final checkpoint and of each artifact;
`read` gives the spec back for `trainbench run --from-capsule`. `differences` lists the
environment fields that differ between runs, for the compare views.

Collecting costs tens of milliseconds (measured here: ~40 ms for 260 packages, git and a small
data set); no part of it may fail a run: what cannot be found is recorded as absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from engine.errors import DataError
from engine.jsonfile import read_json

FORMAT = "trainbench.capsule/1"
DIFF_LIMIT = 1 << 20  # bytes of `git diff` kept; a larger diff is cut and marked so
HASH_LIMIT = 64 << 20  # bytes of data read for content hashes per capsule
FILES_LIMIT = 10_000  # files of a data folder listed in its fingerprint
GIT_TIMEOUT_S = 10
ARGV_PATHS = 16  # script arguments that name existing files, fingerprinted as the script's data
BUILTIN_LIBRARY = {"digits": "scikit-learn", "wine": "scikit-learn", "breast_cancer": "scikit-learn"}


def collect(
    spec: dict,
    origin: str | Path | None = None,
    argv: list[str] | None = None,
    world_size: int = 1,
) -> dict:
    """This process's capsule for a run of `spec`. `origin` is the spec file or script (its
    repository is recorded; default: the working directory's); `argv` a script's command line."""
    where = Path(origin).resolve().parent if origin else Path.cwd()
    budget = [HASH_LIMIT]
    return {
        "format": FORMAT,
        "recorded_at": time.time(),
        **(_SETTLED.get(where) or _environment(where)),
        "host": host(),
        "world_size": world_size,
        "cwd": os.getcwd(),
        "argv": argv,
        "seeds": seeds(spec),
        "data": data_fingerprint(spec, argv, budget),
    }


_SETTLED: dict[Path, dict] = {}  # see settle()


def settle(where: Path) -> None:
    """Read the git state of `where` and this process's runtime now, once, for every run this
    process records from then on. For a process that runs run after run of the code it imported
    once (a sweep's trial worker), that describes the code better than a look at each run, and
    saves each run ~20 ms."""
    _SETTLED[where] = _environment(where)


def _environment(where: Path) -> dict:
    return {"git": git_state(where), **runtime()}


def host() -> dict:
    return {
        "name": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def runtime() -> dict:
    """The interpreter, torch (imported only if this process has it already) and the packages:
    the part a script's own process records over its launcher's."""
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "torch": torch_versions(),
        "devices": devices(),
        "packages": installed_packages(),
    }


def torch_versions() -> dict | None:
    """torch, CUDA, cuDNN and NCCL versions: from torch itself when this process imported it,
    else the installed version alone (importing torch here would cost a second)."""
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            return {"version": metadata.version("torch"), "imported": False}
        except metadata.PackageNotFoundError:
            return None
    out = {"version": torch.__version__, "cuda": torch.version.cuda, "cudnn": None, "nccl": None}
    try:
        if torch.backends.cudnn.is_available():
            out["cudnn"] = torch.backends.cudnn.version()
        if torch.cuda.is_available():
            nccl = torch.cuda.nccl.version()
            out["nccl"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else nccl
    except Exception:  # noqa: BLE001 - a broken CUDA install is recorded as unknown, not a failed run
        pass
    return out


def devices() -> list[dict]:
    """The CUDA devices this process sees (by name and memory); [] without torch or CUDA."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available():
            return []
        return [
            {
                "index": i,
                "name": torch.cuda.get_device_name(i),
                "memory": torch.cuda.get_device_properties(i).total_memory,
            }
            for i in range(torch.cuda.device_count())
        ]
    except Exception:  # noqa: BLE001 - as above
        return []


def installed_packages() -> dict[str, str]:
    """{distribution: version} of everything importable here, as `pip freeze` lists it.
    Only the metadata's header is read: parsing whole files (long descriptions included) took
    ~80 ms for 209 packages here, the headers 9 ms."""
    out = {}
    for dist in metadata.distributions():
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        fields = dict(_header_fields(text.partition("\n\n")[0]))
        if fields.get("Name"):
            out.setdefault(fields["Name"].lower().replace("_", "-"), fields.get("Version"))
    return dict(sorted(out.items()))


def _header_fields(header: str):
    for line in header.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version"):
            yield key, value.strip()


def git_state(folder: Path) -> dict | None:
    """Commit, branch, whether the tree is dirty and the uncommitted diff (cut at DIFF_LIMIT) of
    the repository holding `folder`; None outside a repository or without git."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(folder), *args],
                capture_output=True,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.decode("utf-8", "replace") if out.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None:
        return None
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") or ""
    diff = git("diff", "HEAD", "--no-ext-diff", "--no-color") or ""
    return {
        "root": top.strip(),
        "commit": commit.strip() if commit else None,  # None: a repository without commits yet
        "branch": (git("rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None,
        "dirty": bool(status.strip()),
        "diff": diff[:DIFF_LIMIT],
        "diff_cut": len(diff) > DIFF_LIMIT,
    }


def seeds(spec: dict) -> dict:
    """The seeds a designed run uses; a script's are whatever its config says."""
    out = {}
    if isinstance(spec.get("train"), dict):
        out["train.seed"] = spec["train"].get("seed")
    if isinstance(spec.get("data"), dict) and "split_seed" in spec["data"]:
        out["data.split_seed"] = spec["data"]["split_seed"]
    config = spec.get("config")
    if isinstance(config, dict):
        out.update({f"config.{k}": v for k, v in config.items() if "seed" in str(k).lower()})
    return out


def data_fingerprint(spec: dict, argv: list[str] | None, budget: list[int]) -> dict | None:
    """What the run reads: a designed run's data source; a script's arguments that are files."""
    data = spec.get("data")
    if isinstance(data, dict) and data.get("source"):
        source = data["source"]
        if data.get("path"):
            return {"source": source, **fingerprint(Path(data["path"]), budget)}
        library = BUILTIN_LIBRARY.get(source) or ("scikit-learn" if source.startswith("synthetic") else None)
        out = {"source": source, "built_in": True}
        if library:
            out["library"] = f"{library} {_version(library)}"
        if source.startswith("synthetic"):
            out.update({k: data.get(k) for k in ("samples", "features", "classes", "noise", "split_seed")})
        return out
    paths = [Path(a) for a in (argv or []) if _is_path(a)][:ARGV_PATHS]
    if not paths:
        return None
    return {"files": [fingerprint(p.resolve(), budget) for p in paths]}


def _is_path(arg: str) -> bool:
    if arg.startswith("-") or "\0" in arg or len(arg) > 4096:
        return False
    try:
        return Path(arg).exists()
    except OSError:
        return False


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def fingerprint(path: Path, budget: list[int]) -> dict:
    """Size, newest modification time and a SHA-256 of a file or folder. Contents are hashed
    while `budget[0]` bytes last (shared by the capsule's files), so a 100 GB data set costs
    its first bytes and its listing: `hashed` says "all" or "partial"."""
    try:
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())[:FILES_LIMIT]
        else:
            return {"path": str(path), "missing": True}
    except OSError as err:
        return {"path": str(path), "error": err.strerror or str(err)}
    digest, total, newest, complete = hashlib.sha256(), 0, 0.0, True
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        total += st.st_size
        newest = max(newest, st.st_mtime)
        rel = f.name if f == path else str(f.relative_to(path))
        digest.update(f"{rel}\0{st.st_size}\0".encode())
        complete &= _hash_into(digest, f, st.st_size, budget)
    return {
        "path": str(path),
        "files": len(files),
        "bytes": total,
        "mtime": newest,
        "sha256": digest.hexdigest(),
        "hashed": "all" if complete else "partial",
    }


def _hash_into(digest, path: Path, size: int, budget: list[int]) -> bool:
    """Feed up to the budget's bytes of `path` into `digest`; whether all of it went in."""
    take = min(size, budget[0])
    try:
        with open(path, "rb") as f:
            left = take
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                digest.update(block)
                left -= len(block)
    except OSError:
        return False
    budget[0] -= take
    return take == size


def sha256_file(path: str | Path) -> str | None:
    """The whole file's SHA-256 (a checkpoint, an artifact); None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


# ------------------------------------------------------------------ recording, export, re-run


def record(
    store, claim, origin: str | Path | None = None, argv: list[str] | None = None, world_size: int = 1
) -> str | None:
    """Collect and store this attempt's capsule; a problem is returned as a line for the run
    log instead of failing the run (the capsule documents the run, it is not the run)."""
    try:
        store.add_capsule(claim.run_id, collect(claim.spec, origin, argv, world_size), claim.owner)
    except Exception as err:  # noqa: BLE001 - see above; a lost claim shows at the next write anyway
        return f"the reproducibility capsule could not be recorded: {err}"
    return None


def artifacts(store, run_id: int) -> list[dict]:
    """Files a script logged with `run.log_artifact`: name, size and path."""
    root = store.artifacts_root / f"run-{run_id}" / "artifacts"
    if not root.is_dir():
        return []
    return [
        {"name": str(p.relative_to(root)), "bytes": p.stat().st_size, "path": str(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file()
    ]


def export(store, run_id: int, out: str | Path) -> Path:
    """Write run `run_id`'s capsule file: one JSON document (see the module docstring)."""
    run = store.get_run(run_id)
    last = store.last_checkpoint(run_id)
    doc = {
        "format": FORMAT,
        "run": {k: run[k] for k in ("id", "name", "kind", "status", "created_at", "started_at", "ended_at")},
        "spec": run["spec"],
        "summary": run["summary"],
        "capsules": store.capsules(run_id),
        "checkpoint": None
        if last is None
        else {
            "step": last["step"],
            "file": Path(last["path"]).name,
            "bytes": last["bytes"],
            "sha256": sha256_file(last["path"]),
        },
        "artifacts": [
            {"name": a["name"], "bytes": a["bytes"], "sha256": sha256_file(a["path"])}
            for a in artifacts(store, run_id)
        ],
    }
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def read(path: str | Path) -> dict:
    """A capsule file as written by `export`; DataError naming the file when it is not one.
    Nothing in it is executed: it is JSON, and its spec is validated like any spec."""
    doc = read_json(Path(path))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("spec"), dict):
        raise DataError(f"{path}: not a Trainbench capsule (written by `trainbench capsule RUN -o FILE`)")
    return doc


# ------------------------------------------------------------------ differences between runs

#: the capsule fields that can make two runs' curves differ, compared as text
ENVIRONMENT = (
    ("python", ("python", "version")),
    ("torch", ("torch", "version")),
    ("cuda", ("torch", "cuda")),
    ("cudnn", ("torch", "cudnn")),
    ("nccl", ("torch", "nccl")),
    ("host", ("host", "name")),
    ("platform", ("host", "platform")),
    ("world size", ("world_size",)),
    ("git commit", ("git", "commit")),
    ("git branch", ("git", "branch")),
    ("uncommitted changes", ("git", "dirty")),
    ("data", ("data", "source")),
    ("data hash", ("data", "sha256")),
    ("data library", ("data", "library")),
)


def environment(capsule: dict | None) -> dict:
    """A capsule's environment as flat {field: value}; packages as `package <name>`."""
    if not capsule:
        return {}
    out = {}
    for label, path in ENVIRONMENT:
        node = capsule
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        out[label] = node
    if capsule.get("git") and capsule["git"].get("diff"):
        out["git diff"] = hashlib.sha256(capsule["git"]["diff"].encode()).hexdigest()[:12]
    for name, version in (capsule.get("packages") or {}).items():
        out[f"package {name}"] = version
    return out


def differences(capsules: list[dict | None]) -> dict[str, list]:
    """{field: [value per run]} for the environment fields that differ between the runs with
    a capsule (runs without one show None); {} for fewer than two capsules."""
    envs = [environment(c) for c in capsules]
    if sum(1 for e in envs if e) < 2:
        return {}
    keys = [k for k in dict.fromkeys(k for e in envs for k in e)]
    out = {}
    for key in keys:
        values = [e.get(key) if e else None for e in envs]
        if (
            len({json.dumps(v, sort_keys=True, default=str) for v, e in zip(values, envs, strict=True) if e})
            > 1
        ):
            out[key] = values
    return out


def compare_environment(store, run_ids: list[int]) -> dict[str, list]:
    """`differences` of the runs' first capsules: the compare views' environment section."""
    found = store.first_capsules(run_ids)
    return differences([found.get(r) for r in run_ids])
