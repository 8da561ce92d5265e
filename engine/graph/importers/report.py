"""What an import produced and the report that says how faithful it is.

The report is what MATLAB's Deep Network Designer shows after an import: how many nodes
became which registry op, which became opaque and why, the parameter count before and after
(they must be equal) and a numerical check — the imported graph, built by the engine with the
imported weights, against the original on the same random input (max abs difference).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine import weights
from engine.errors import TrainbenchError
from engine.graph.build import build
from engine.graph.model import Graph
from engine.graph.shapes import analyze

REPORT_SUFFIX = ".import.json"


class ModelImportError(TrainbenchError):
    """A model that cannot be imported: the source, its arguments, or what it contains."""


# Values in one sample of the measuring input: a file or an --input that declares a 10¹²-value
# sample gets a line instead of an allocation that fails (or swaps) halfway through.
MAX_SAMPLE = 2**27


def check_sample(shape, what: str) -> None:
    """Refuse a measuring sample too large to allocate (shape without the batch)."""
    size = 1
    for d in shape:
        size *= d
    if size > MAX_SAMPLE:
        raise ModelImportError(
            f"{what}: one sample of {'×'.join(map(str, shape))} is {size:,} values, more than the "
            f"{MAX_SAMPLE:,} an import measures with"
        )


@dataclass
class Imported:
    graph: Graph
    state: dict  # tensors by state-dict name of the graph's model (`conv1.weight`)
    source: str
    method: str  # torch.fx | onnx
    params_before: int
    example: tuple  # the random input the check runs (batch first)
    expected: torch.Tensor  # the original's output on it
    opaque: list[dict] = field(default_factory=list)  # {"node", "target", "why"}
    scopes: dict[str, str] = field(default_factory=dict)  # node id → the original's module path
    warnings: list[str] = field(default_factory=list)
    repeats: list[dict] = field(default_factory=list)  # {"node", "copies"}, filled by collapsing


def check(imported: Imported) -> tuple[int, float]:
    """(parameters of the imported graph, max abs difference of its output from the original's)."""
    analysis = analyze(imported.graph)
    if analysis.problems:
        raise ModelImportError(
            "the imported graph is invalid: " + "; ".join(f"{n}: {m}" for n, m in analysis.problems[:3])
        )
    state = weights.with_ties(dict(imported.state), imported.graph.tie)
    with torch.device("meta"):  # no random initialisation of weights about to be replaced
        model = build(imported.graph)
    model.load_state_dict(state, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):  # a buffer no state holds
        with torch.random.fork_rng():
            model = build(imported.graph)
        model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        out = model(*imported.example)
    if out.shape != imported.expected.shape:
        raise ModelImportError(
            f"the imported graph's output is {tuple(out.shape)}, the original's {tuple(imported.expected.shape)}"
        )
    diff = (out.double() - imported.expected.double()).abs().max().item() if out.numel() else 0.0
    return analysis.total_params, diff


def write(imported: Imported, out: Path) -> dict:
    """Write the graph (`out`), its weights (`.safetensors` beside it, named by the graph's
    init_from) and the report (`.import.json`); returns the report."""
    out = Path(out).resolve()
    weights_path = out.with_suffix(".safetensors")
    imported.graph.init_from = str(weights_path)
    params_after, diff = check(imported)
    out.parent.mkdir(parents=True, exist_ok=True)
    weights.save(imported.state, weights_path, imported.graph.tie)
    imported.graph.save(out)
    report = make_report(imported, params_after, diff, out, weights_path)
    out.with_suffix(REPORT_SUFFIX).write_text(json.dumps(report, indent=2) + "\n")
    return report


def make_report(imported: Imported, params_after: int, diff: float, graph: Path, weights_path: Path) -> dict:
    ops = _op_counts(imported.graph)
    return {
        "source": imported.source,
        "method": imported.method,
        "graph": str(graph),
        "weights": str(weights_path),
        "nodes": len(imported.graph.nodes),
        "mapped": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "opaque": imported.opaque,
        "repeats": imported.repeats,
        "params_before": imported.params_before,
        "params_after": params_after,
        "max_abs_diff": diff,
        "warnings": imported.warnings,
    }


def _op_counts(graph: Graph, times: int = 1, counts: Counter | None = None) -> Counter:
    """Nodes per registry op, a Repeat's body counted once per copy (as the original had them)."""
    counts = Counter() if counts is None else counts
    for node in graph.nodes.values():
        if node.op == "Repeat":
            _op_counts(Graph.from_dict(node.params["body"]), times * node.params["times"], counts)
        elif node.op not in ("Input", "Module"):
            counts[node.op] += times
    return counts


def text(report: dict) -> str:
    """The report as a few lines for a terminal."""
    mapped = ", ".join(f"{op} {n}" for op, n in report["mapped"].items()) or "none"
    lines = [
        f"imported {report['source']} with {report['method']}: {report['nodes']} nodes",
        f"  mapped to registry ops: {mapped}",
    ]
    if report["repeats"]:
        lines.append(
            "  collapsed into Repeat: "
            + ", ".join(f"{r['node']} ({r['copies']} copies)" for r in report["repeats"])
        )
    if report["opaque"]:
        lines.append(f"  opaque ({len(report['opaque'])}): the original module runs as it is")
        lines += [f"    {o['node']}: {o['target']} — {o['why']}" for o in report["opaque"]]
    same = "equal" if report["params_before"] == report["params_after"] else "they differ: see the warnings"
    lines.append(
        f"  parameters: {report['params_before']:,} before, {report['params_after']:,} after ({same})"
    )
    lines.append(f"  numerical check on a random input: max abs difference {report['max_abs_diff']:.3g}")
    lines += [f"  warning: {w}" for w in report["warnings"]]
    lines.append(f"  wrote {report['graph']} and {report['weights']}")
    return "\n".join(lines)
