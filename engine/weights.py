"""A graph's first weights: `model.init_from`, matched by node id, stored as safetensors.

A graph may start from a past run's final checkpoint (`init_from: 3`), a `.safetensors` file
(`init_from: "resnet18.safetensors"`, what `trainbench import model` writes beside the graph),
or random weights (no `init_from`). Tensors are matched by name, which is the node id and the
parameter (`conv1.weight`), so a renamed or replaced node simply no longer matches: with
`strict: false` the unmatched tensors of the model keep their fresh initialisation (a new
head for 5 classes), otherwise every mismatch is listed and the run refused before it starts.

Weights files are safetensors: a JSON header and raw tensors, nothing unpickled. Tied
parameters (`tie`) are stored once, under their source's name, and filled back on load.
The header is read here without torch, so a file's names and shapes can be listed cheaply.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from engine.errors import SpecError

FORMAT = "trainbench.weights/1"
WHERE = "model.init_from"
MAX_HEADER = 100 * 2**20  # a header this large is not a weights file (safetensors' own limit)
SHOWN = 6  # mismatches listed by name, then counted


def describe(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a safetensors file's header, without torch (each
    stored tie under its own name too). Raises SpecError at model.init_from naming the file
    when it is not one."""
    header = _header(Path(path))
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not isinstance(info.get("shape"), list):
            raise SpecError.at(WHERE, f"{path}: not a safetensors file (tensor {name!r} has no shape)")
        out[name] = (str(info.get("dtype")), tuple(info["shape"]))
    try:
        stored = json.loads((header.get("__metadata__") or {}).get("tie", "{}"))
    except (ValueError, AttributeError, TypeError):
        stored = {}
    return with_ties(out, stored if isinstance(stored, dict) else {})


def _header(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("too short")
            (size,) = struct.unpack("<Q", head)
            if size > MAX_HEADER:
                raise ValueError("its header is implausibly large")
            header = json.loads(fh.read(size))
    except FileNotFoundError:
        raise SpecError.at(WHERE, f"{path}: no such file") from None
    except OSError as err:
        raise SpecError.at(WHERE, f"{path}: {err.strerror or err}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise SpecError.at(WHERE, f"{path}: not a safetensors file ({err})") from None
    if not isinstance(header, dict):
        raise SpecError.at(WHERE, f"{path}: not a safetensors file (its header is not an object)")
    return header


def save(state: dict, path: str | Path, tie: dict[str, str] | None = None) -> Path:
    """Write a state dict as safetensors, each tied parameter once (under its source's name);
    the ties are kept in the file's metadata, so `load` restores every name."""
    from safetensors.torch import save_file

    tie = dict(tie or {})
    seen: dict[tuple, str] = {}
    for k, v in state.items():  # any other tensor sharing memory is stored once too
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), tuple(v.stride()))
        if k not in tie and key in seen:
            tie[k] = seen[key]
        seen.setdefault(key, k)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items() if k not in tie}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": FORMAT, "tie": json.dumps(tie)})
    return path


def load(path: str | Path, tie: dict[str, str] | None = None) -> dict:
    """A safetensors file's tensors (on the CPU), with tied parameters filled in (those the file
    recorded and those of `tie`)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    describe(path)  # one clear line for a file that is not safetensors at all
    try:
        state = load_file(str(path))
        with safe_open(str(path), "pt") as fh:
            stored = json.loads((fh.metadata() or {}).get("tie", "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise SpecError.at(WHERE, f"{path}: unreadable weights ({err})") from None
    return with_ties(state, {**(stored if isinstance(stored, dict) else {}), **(tie or {})})


def with_ties(state: dict, tie: dict[str, str]) -> dict:
    """`state` with each tied parameter present under its own name too (a file stores it once)."""
    for target, source in tie.items():
        if target not in state and source in state:
            state[target] = state[source]
    return state


def resolve(graph_doc: dict, store) -> dict:
    """The graph with a run id in init_from resolved to that run's final checkpoint file
    ({"run": id, "checkpoint": path}), so every process of the run reads the same file and
    none needs the store. Raises SpecError at model.init_from."""
    run_id = graph_doc.get("init_from")
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        return graph_doc
    from engine.errors import StoreError

    try:
        run = store.get_run(run_id)
    except StoreError:
        raise SpecError.at(WHERE, f"there is no run {run_id} in {store.path}") from None
    if run["status"] != "completed":
        raise SpecError.at(WHERE, f"run {run_id} is {run['status']}; weights come from a completed run")
    row = store.last_checkpoint(run_id)
    if row is None:
        raise SpecError.at(WHERE, f"run {run_id} has no checkpoint file left to start from")
    return {**graph_doc, "init_from": {"run": run_id, "checkpoint": str(row["path"])}}


def source_state(graph_doc: dict) -> dict | None:
    """The tensors init_from names (None without one). A run id must be resolved first."""
    src = graph_doc.get("init_from")
    tie = graph_doc.get("tie") or {}
    if src is None:
        return None
    if isinstance(src, dict):
        from engine import checkpoint
        from engine.errors import StoreError

        try:
            state = checkpoint.load(src["checkpoint"])
        except StoreError as err:
            raise SpecError.at(WHERE, f"run {src['run']}: {err}") from None
        return with_ties(dict(state["model"]), tie)
    if isinstance(src, int):
        raise SpecError.at(WHERE, f"run {src} must be looked up in the run store first")
    return load(src, tie)


def mismatches(expected: dict, given: dict) -> tuple[list[str], list[str], list[str]]:
    """(tensors the file lacks, tensors the model lacks, tensors of another shape), by name;
    both sides map names to shapes."""
    missing = [k for k in expected if k not in given]
    unused = [k for k in given if k not in expected]
    resized = [
        f"{k} ({_dims(given[k])} in the file, {_dims(expected[k])} in the model)"
        for k in expected
        if k in given and tuple(given[k]) != tuple(expected[k])
    ]
    return missing, unused, resized


def match_report(missing: list[str], unused: list[str], resized: list[str]) -> str:
    parts = []
    for what, names in (
        ("not in the file", missing),
        ("not in the model", unused),
        ("of another shape", resized),
    ):
        if names:
            more = f" … ({len(names) - SHOWN:,} more)" if len(names) > SHOWN else ""
            parts.append(f"{what}: {', '.join(names[:SHOWN])}{more}")
    return "; ".join(parts)


def check(graph_doc: dict) -> None:
    """What `init` would refuse, found before a run exists: the weights must match the graph
    by name and shape unless strict is false. Builds the model on the meta device (no memory,
    no initialisation), so it is cheap for any size."""
    if graph_doc.get("init_from") is None:
        return
    import torch

    from engine.graph.build import build
    from engine.graph.model import Graph

    src = graph_doc["init_from"]
    if isinstance(src, str):  # the header says it all
        tie = graph_doc.get("tie") or {}
        given = with_ties({k: shape for k, (_, shape) in describe(src).items()}, tie)
    else:
        given = _shapes(source_state(graph_doc))
    with torch.device("meta"):
        expected = _shapes(build(Graph.from_dict(graph_doc)).state_dict())
    _refuse(graph_doc, *mismatches(expected, given))


def _refuse(graph_doc: dict, missing, unused, resized) -> None:
    strict = graph_doc.get("strict", True)
    if resized or (strict and (missing or unused)):
        hint = "" if not strict else " (strict: false lets new or replaced layers keep fresh weights)"
        raise SpecError.at(
            WHERE, f"the weights do not match the model: {match_report(missing, unused, resized)}{hint}"
        )


def init(model, graph_doc: dict, log=None) -> dict:
    """Load init_from's tensors into `model` (built from `graph_doc`); returns what matched.
    A tensor of another shape is refused even when not strict: a resized layer must be a
    new node (a new id) for its fresh weights to be meant."""
    state = source_state(graph_doc)
    if state is None:
        return {}
    expected = model.state_dict()
    missing, unused, resized = mismatches(_shapes(expected), _shapes(state))
    _refuse(graph_doc, missing, unused, resized)
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    src = graph_doc["init_from"]
    origin = f"run {src['run']}" if isinstance(src, dict) else str(src)
    report = {"from": origin, "loaded": len(expected) - len(missing), "fresh": missing, "unused": unused}
    if log is not None:
        log(
            f"weights from {origin}: {report['loaded']} of {len(expected)} tensors loaded"
            + (f"; {match_report(missing, unused, [])}" if missing or unused else "")
        )
    return report


def _shapes(state: dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def _dims(shape) -> str:
    return "×".join(map(str, shape)) or "a scalar"
