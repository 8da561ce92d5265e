"""A prune or distill run's parent: found, checked and inherited from before any work starts.

A prune run names its parent (`prune.parent`), a distill run its teacher (`distill.teacher`).
`resolve` checks the parent against the store (it exists, it completed, its last checkpoint
matches its graph) and fills in what the child inherits: the data section, and the model —
the parent's graph for a prune run, the student for a distill run (a preset applied to the
teacher's graph, or the spec's own model). The stored spec is then complete, like a train
run's, and resolving it again changes nothing. Every problem is a `SpecError` naming the
field it concerns, raised before the run exists.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from engine import checkpoint
from engine.errors import GraphError, SpecError, StoreError
from engine.graph.build import GraphModule, build
from engine.graph.model import Graph
from engine.graph.shapes import Analysis, analyze, validate

PARENT_FIELD = {"prune": "parent", "distill": "teacher"}
STUDENT_PRESETS = ("half_width", "half_depth")


def parent_id(spec: dict) -> int | None:
    """The run a prune/distill spec derives from; None for a train spec."""
    kind = spec["task"]["kind"]
    return spec[kind][PARENT_FIELD[kind]] if kind in PARENT_FIELD else None


@dataclass
class ParentRun:
    id: int
    graph: Graph
    analysis: Analysis
    state: dict  # the model's state dict from the checkpoint
    checkpoint_path: str
    run: dict | None = None  # the store's row; None where there is no store (other DDP ranks)

    @classmethod
    def of(cls, spec: dict) -> ParentRun:
        """The parent of a resolved spec, read from the checkpoint file it names: what a task
        starts from, on every process of the run (ranks other than 0 have no store)."""
        kind = spec["task"]["kind"]
        return open_checkpoint(parent_id(spec), spec[kind]["checkpoint"], f"{kind}.{PARENT_FIELD[kind]}")

    def build(self) -> GraphModule:
        """The parent's model with its trained weights (the random numbers stay untouched)."""
        with torch.random.fork_rng():
            model = build(self.graph)
        model.load_state_dict(self.state)
        return model


def load_parent(store, run_id: int, where: str) -> ParentRun:
    """The completed run `run_id` with its last checkpoint, checked against its graph."""
    try:
        run = store.get_run(run_id)
    except StoreError:
        raise SpecError.at(where, f"there is no run {run_id} in {store.path}") from None
    if run["status"] != "completed":
        raise SpecError.at(
            where, f"run {run_id} is {run['status']}; only a completed run can be pruned or distilled"
        )
    row = store.last_checkpoint(run_id)
    if row is None:
        raise SpecError.at(where, f"run {run_id} has no checkpoint file left to start from")
    parent = open_checkpoint(run_id, row["path"], where)
    parent.run = run
    return parent


def open_checkpoint(run_id: int, path: str, where: str) -> ParentRun:
    """Run `run_id`'s checkpoint at `path`, checked: its weights must fit its graph exactly."""
    try:
        state = checkpoint.load(path)
        graph = Graph.from_dict(state.get("graph"))
        analysis = validate(graph)
    except (StoreError, GraphError) as err:
        raise SpecError.at(where, f"run {run_id}'s checkpoint is unusable: {err}") from None
    mismatch = state_mismatch(_shapes_of(graph), state.get("model") or {})
    if mismatch:
        raise SpecError.at(where, f"run {run_id}'s checkpoint {path} does not match its graph: {mismatch}")
    return ParentRun(run_id, graph, analysis, state["model"], str(path))


def _shapes_of(graph: Graph) -> dict:
    """The state dict a model of `graph` has, built without touching the caller's random
    numbers (a run that loads its parent must initialise its own layers as if it had not)."""
    with torch.random.fork_rng():
        return build(graph).state_dict()


def state_mismatch(expected: dict, actual: dict) -> str:
    """'' when every tensor is there with the right shape, else the first few differences."""
    problems = [f"{k} is missing" for k in expected if k not in actual]
    problems += [f"{k} is not in the graph" for k in actual if k not in expected]
    problems += [
        f"{k} is {_dims(actual[k])} in the checkpoint but {_dims(expected[k])} in the graph"
        for k in expected
        if k in actual and tuple(actual[k].shape) != tuple(expected[k].shape)
    ]
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def _dims(t) -> str:
    return "×".join(map(str, t.shape)) or "a scalar"


def resolve(spec: dict, store) -> dict:
    """Check a prune/distill spec against its parent and fill what it inherits (a new dict).
    A train spec comes back unchanged."""
    kind = spec["task"]["kind"]
    if kind not in PARENT_FIELD:
        return spec
    where = f"{kind}.{PARENT_FIELD[kind]}"
    if parent_id(spec) is None:
        raise SpecError.at(where, f"is required for a {kind} run (the id of a completed run)")
    parent = load_parent(store, parent_id(spec), where)
    spec = copy.deepcopy(spec)
    spec[kind]["checkpoint"] = parent.checkpoint_path
    if spec["data"]["source"] is None:
        spec["data"] = copy.deepcopy(parent.run["spec"]["data"])
    problems: list[tuple[str, str]] = []
    if kind == "prune":
        _resolve_prune(spec, parent, problems)
    else:
        _resolve_distill(spec, parent, problems)
    if problems:
        raise SpecError(problems)
    return spec


def _resolve_prune(spec: dict, parent: ParentRun, problems: list) -> None:
    p, pid = spec["prune"], parent.id
    if spec["model"] is None:
        spec["model"] = parent.graph.to_dict()
    elif not same_graph(spec["model"], parent.graph.to_dict()):
        problems.append(
            (
                "model",
                f"differs from run {pid}'s graph; a prune run prunes its parent's model: leave model out",
            )
        )
    for i, nid in enumerate(p["keep"] or []):
        if nid not in parent.graph.nodes:
            problems.append(
                (
                    f"prune.keep[{i}]",
                    f"run {pid}'s graph has no node {nid!r} ({', '.join(parent.graph.nodes)})",
                )
            )
    for field, have, what in (
        ("max_params", parent.analysis.total_params, "parameters"),
        ("max_flops", parent.analysis.total_flops, "FLOPs per sample"),
    ):
        if p["target"] == field.removeprefix("max_") and p[field] is not None and p[field] >= have:
            problems.append(
                (f"prune.{field}", f"run {pid} has {have:,} {what}; a budget of {p[field]:,} removes nothing")
            )


def _resolve_distill(spec: dict, teacher: ParentRun, problems: list) -> None:
    d, tid = spec["distill"], teacher.id
    objective = teacher.run["summary"].get("dataset", {}).get("objective")
    if objective == "regression":
        problems.append(
            (
                "distill.teacher",
                f"run {tid} is a regression model; distillation matches class distributions "
                "(classification or language model)",
            )
        )
    if d["student"] is None:
        d["student"] = "model" if spec["model"] is not None else "half_width"
    where = "model" if d["student"] == "model" else "distill.student"
    if d["student"] == "model":
        if spec["model"] is None:
            problems.append(("model", "is required when distill.student is 'model' (the student graph)"))
            return
        student = Graph.from_dict(spec["model"])
    else:
        student = student_preset(teacher.graph, d["student"])
        if spec["model"] is not None and not same_graph(spec["model"], student.to_dict()):
            problems.append(
                (
                    "model",
                    f"is given but distill.student is {d['student']!r}; set distill.student to 'model' "
                    "to train this graph, or leave model out",
                )
            )
            return
        spec["model"] = student.to_dict()
    analysis = analyze(student)
    if analysis.problems:
        problems.extend((where, f"{n}: {m}" if n else m) for n, m in analysis.problems)
        return
    for end in ("input", "output"):
        s, t = getattr(analysis, f"{end}_type"), getattr(teacher.analysis, f"{end}_type")
        if s != t:
            problems.append(
                (where, f"the student's {end} is {s}, the teacher's (run {tid}) is {t}; they must match")
            )
    _check_feature_pair(d, teacher.analysis, analysis, problems)


def student_preset(teacher: Graph, preset: str) -> Graph:
    from engine.graph.shrink import half_depth, half_width

    try:
        return half_width(teacher) if preset == "half_width" else half_depth(teacher)
    except GraphError as err:
        raise SpecError.at(
            "distill.student", f"{preset} does not fit this teacher: {err}; give a student graph instead"
        ) from None


def _check_feature_pair(d: dict, teacher: Analysis, student: Analysis, problems: list) -> None:
    pair = {"teacher": d["feature_teacher"], "student": d["feature_student"]}
    if pair["teacher"] is None:
        return
    types = {}
    for side, analysis in (("teacher", teacher), ("student", student)):
        nid = pair[side]
        node = analysis.nodes.get(nid)
        if node is None or node.op == "Input":
            problems.append((f"distill.feature_{side}", f"the {side} has no layer {nid!r}"))
        else:
            types[side] = node.out
    if len(types) == 2:
        reason = projection_problem(types["student"].shape, types["teacher"].shape)
        if reason:
            problems.append(("distill.feature_student", reason))


def projection_problem(student: tuple, teacher: tuple) -> str | None:
    """Why no learned projection maps a student feature onto a teacher feature, or None.
    Images (C, H, W) go through a 1×1 convolution (same H, W); anything else through a
    linear map of the last axis (the other axes equal)."""
    if len(student) != len(teacher):
        return (
            f"the student feature is {len(student)}-d ({student}), the teacher's {len(teacher)}-d ({teacher})"
        )
    if len(student) == 3 and student[1:] != teacher[1:]:
        return f"image features need the same height and width: student {student}, teacher {teacher}"
    if len(student) < 3 and student[:-1] != teacher[:-1]:
        return f"features must agree on every axis but the last: student {student}, teacher {teacher}"
    return None


def same_graph(a: dict, b: dict) -> bool:
    """Same nodes, params, edges and output; positions and names do not count."""

    def key(doc: dict):
        g = Graph.from_dict(doc)
        return (
            {n.id: (n.op, n.params) for n in g.nodes.values()},
            sorted((e.src, e.dst, e.port) for e in g.edges),
            analyze(g).output,
        )

    return key(a) == key(b)
