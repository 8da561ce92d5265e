"""The `trainbench` command line: everything the engine does, without a screen.

With no arguments it opens the desktop app. User mistakes print one line on stderr and exit
non-zero (2 for an invalid spec or graph); only bugs print tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from engine.errors import GraphError, SpecError, TrainbenchError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        from app.main import main as gui_main

        return gui_main([])
    args = _parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (SpecError, GraphError) as err:
        _error(err)
        return 2
    except TrainbenchError as err:
        _error(err)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _error(err: Exception) -> None:
    problems = getattr(err, "problems", None)
    if problems and len(problems) > 1:
        print(f"trainbench: error: {len(problems)} problems:", file=sys.stderr)
        for where, msg in problems:
            print(f"  {where}: {msg}" if where else f"  {msg}", file=sys.stderr)
    else:
        print(f"trainbench: error: {err}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trainbench", description="Design, train, prune, distill and compare models."
    )
    p.add_argument("--db", help="run database (default: $TRAINBENCH_DB or the user data folder)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="train (or prune/distill) from a spec file, or resume a run")
    r.add_argument("spec", nargs="?", help="spec JSON file")
    r.add_argument("--resume", type=int, metavar="RUN", help="continue RUN from its last checkpoint")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a spec field, e.g. train.epochs=3",
    )
    r.add_argument("--parent", type=int, metavar="RUN", help=argparse.SUPPRESS)
    r.add_argument(
        "--events", metavar="FILE", help="write the live event stream as JSON lines ('-' for stdout)"
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a spec: every error, or the model's shape table")
    v.add_argument("spec")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_validate)

    ls = sub.add_parser("runs", help="list runs")
    ls.add_argument("--status")
    ls.add_argument("--kind")
    ls.add_argument("--limit", type=int)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_runs)

    s = sub.add_parser("show", help="one run: spec, summary, metrics, checkpoints, lineage")
    s.add_argument("run", type=int)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)

    c = sub.add_parser("compare", help="hyperparameter differences and final metrics of runs")
    c.add_argument("runs", type=int, nargs="+")
    c.add_argument("--all", action="store_true", help="show equal fields too")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)

    e = sub.add_parser("export", help="export a run's model or metrics")
    e.add_argument("run", type=int)
    e.add_argument("--format", required=True, choices=("pytorch", "torchscript", "onnx", "csv"))
    e.add_argument("--out", help="output file (default: in the current folder)")
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("devices", help="CPU, GPUs and versions")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_devices)

    o = sub.add_parser("ops", help="the op registry: every layer and its parameters")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=cmd_ops)

    g = sub.add_parser("gui", help="open the desktop app")
    g.set_defaults(func=lambda a: __import__("app.main", fromlist=["main"]).main([]))
    return p


def _store(args):
    from engine.store import RunStore

    return RunStore(args.db) if args.db else RunStore()


# ------------------------------------------------------------------ run


def apply_overrides(doc: dict, sets: list[str]) -> dict:
    """`train.epochs=3` → doc["train"]["epochs"] = 3 (values parsed as JSON when they are)."""
    for item in sets:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise SpecError.at(path or item, "--set needs PATH=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = path.split(".")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise SpecError.at(path, f"{key} is not a section")
        node[leaf] = value
    return doc


def cmd_run(args) -> int:
    from engine.devices import process_rss_mb
    from engine.events import EventStream
    from engine.jsonfile import read_json
    from engine.runner import execute
    from engine.spec import validate_spec

    if (args.spec is None) == (args.resume is None):
        raise SpecError.at("", "give a spec file, or --resume RUN")
    spec = None
    if args.spec:
        path = Path(args.spec)
        spec = validate_spec(apply_overrides(read_json(path), args.set), base_dir=path.parent)
    store_path = _store(args).path
    stream = EventStream.open(args.events)
    bar = None if args.quiet or args.events == "-" else _ProgressBar()
    if bar:
        stream.listeners.append(bar)
    run_id, status = execute(
        store_path,
        spec,
        resume_run=args.resume,
        parent_id=args.parent,
        events=stream,
        echo=not args.quiet and args.events != "-",
        samplers=[process_rss_mb],
    )
    if bar:
        bar.close()
    from engine.store import RunStore

    run = RunStore(store_path).get_run(run_id)
    if status == "completed":
        metrics = {k: v for k, v in run["summary"].items() if k.startswith("val_")}
        print(
            f"run {run_id} completed: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
            file=sys.stderr,
        )
        return 0
    if status == "stopped":
        print(f"run {run_id} stopped; continue it with: trainbench run --resume {run_id}", file=sys.stderr)
        return 130
    print(
        f"trainbench: error: run {run_id} {status}: {(run['error'] or '').strip().splitlines()[-1:] or ''}",
        file=sys.stderr,
    )
    return 1


class _ProgressBar:
    """A tqdm bar fed by progress events (from the recorder thread, at a few Hz)."""

    def __init__(self):
        self.bar = None

    def __call__(self, ev: dict) -> None:
        from tqdm import tqdm

        if ev["event"] == "run_started":
            self.bar = tqdm(
                total=ev["total_steps"],
                initial=ev["resumed_from"],
                unit="step",
                desc=f"run {ev['run_id']}",
                dynamic_ncols=True,
                file=sys.stderr,
            )
        elif ev["event"] == "progress" and self.bar is not None:
            self.bar.update(ev["step"] - self.bar.n)
        elif ev["event"] == "metrics" and self.bar is not None:
            loss = ev["points"].get("train/loss")
            if loss:
                self.bar.set_postfix(loss=f"{loss[1][-1]:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------ validate


def cmd_validate(args) -> int:
    from engine.graph.model import Graph
    from engine.graph.shapes import analyze
    from engine.spec import load_spec

    spec = load_spec(args.spec)
    analysis = analyze(Graph.from_dict(spec["model"]))
    rows = analysis.table()
    if args.json:
        print(
            json.dumps(
                {
                    "valid": True,
                    "nodes": rows,
                    "total_params": analysis.total_params,
                    "total_flops": analysis.total_flops,
                },
                indent=2,
            )
        )
        return 0
    _table(rows, ["node", "op", "output", "params", "flops"])
    print(
        f"\n{spec['name']}: valid; {analysis.total_params:,} parameters, {analysis.total_flops:,} FLOPs per sample (forward)"
    )
    return 0


# ------------------------------------------------------------------ runs, show, compare


def _fmt_time(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""


def _duration(run) -> str:
    if not run["started_at"]:
        return ""
    secs = (run["ended_at"] or time.time()) - run["started_at"]
    return f"{secs:.0f}s" if secs < 120 else f"{secs / 60:.1f}m"


def _headline(summary: dict) -> str:
    for key in ("val_accuracy", "val_perplexity", "val_rmse", "val_loss"):
        if key in summary:
            return f"{key[4:]} {summary[key]:.4g}"
    return ""


def cmd_runs(args) -> int:
    runs = _store(args).list_runs(args.status, args.kind, args.limit)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "spec"} for r in runs], indent=2))
        return 0
    rows = [
        {
            "id": r["id"],
            "name": r["name"],
            "kind": r["kind"],
            "status": r["status"],
            "parent": r["parent_id"] or "",
            "created": _fmt_time(r["created_at"]),
            "duration": _duration(r),
            "result": _headline(r["summary"]),
        }
        for r in runs
    ]
    _table(rows, ["id", "name", "kind", "status", "parent", "created", "duration", "result"])
    return 0


def cmd_show(args) -> int:
    store = _store(args)
    run = store.get_run(args.run)
    series = store.series_summaries(args.run)
    checkpoints = store.checkpoints(args.run)
    ancestors, descendants = store.lineage(args.run)
    if args.json:
        print(
            json.dumps(
                {
                    "run": run,
                    "metrics": series,
                    "checkpoints": checkpoints,
                    "ancestors": [a["id"] for a in ancestors],
                    "descendants": [d["id"] for d in descendants],
                },
                indent=2,
            )
        )
        return 0
    print(f"run {run['id']}  {run['name']}  ({run['kind']}, {run['status']})")
    print(f"  created {_fmt_time(run['created_at'])}   duration {_duration(run)}")
    if run["error"]:
        print(f"  error: {run['error'].strip()}")
    lineage = " → ".join(
        [*(f"{a['id']} {a['kind']}" for a in reversed(ancestors)), f"[{run['id']} {run['kind']}]"]
    )
    print(
        f"  lineage: {lineage}"
        + (f"; children: {', '.join(str(d['id']) for d in descendants)}" if descendants else "")
    )
    for k, v in run["summary"].items():
        if not isinstance(v, dict):
            print(f"  {k}: {v}")
    print()
    _table(
        [
            {
                "metric": k,
                "points": s["count"],
                "last": _num(s["last"]),
                "min": _num(s["min"]),
                "max": _num(s["max"]),
                "last step": s["last_step"],
            }
            for k, s in series.items()
        ],
        ["metric", "points", "last", "min", "max", "last step"],
    )
    if checkpoints:
        print()
        _table(
            [{"step": c["step"], "tag": c["tag"], "path": c["path"]} for c in checkpoints],
            ["step", "tag", "path"],
        )
    return 0


def flatten(doc: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if k == "model" and not prefix:
            continue
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def compare_table(store, run_ids: list[int], show_all: bool = False) -> dict:
    """Hyperparameter differences and final metrics: shared by the CLI and the GUI."""
    runs = [store.get_run(r) for r in run_ids]
    flats = [flatten(r["spec"]) for r in runs]
    for f, r in zip(flats, runs, strict=True):
        f["model.params"] = r["summary"].get("params")
        f["model.flops"] = r["summary"].get("flops")
        f["kind"], f["parent"] = r["kind"], r["parent_id"]
    keys = sorted(set().union(*flats))
    params = {k: [f.get(k) for f in flats] for k in keys}
    differing = {k for k, vals in params.items() if len({json.dumps(v, sort_keys=True) for v in vals}) > 1}
    metrics: dict[str, list] = {}
    series = [store.series_summaries(r) for r in run_ids]
    for key in sorted(set().union(*series)):
        metrics[key] = [s.get(key, {}).get("last") for s in series]
    return {
        "runs": [{"id": r["id"], "name": r["name"], "status": r["status"]} for r in runs],
        "params": {k: v for k, v in params.items() if show_all or k in differing},
        "differing": sorted(differing),
        "final_metrics": metrics,
    }


def cmd_compare(args) -> int:
    table = compare_table(_store(args), args.runs, args.all)
    if args.json:
        print(json.dumps(table, indent=2, default=str))
        return 0
    cols = ["field"] + [f"run {r['id']}" for r in table["runs"]]
    print("hyperparameters" + ("" if args.all else " (differing only)") + ":")
    _table(
        [
            {"field": k, **{c: _num(v) for c, v in zip(cols[1:], vals, strict=True)}}
            for k, vals in table["params"].items()
        ],
        cols,
    )
    print("\nfinal metrics:")
    _table(
        [
            {"field": k, **{c: _num(v) for c, v in zip(cols[1:], vals, strict=True)}}
            for k, vals in table["final_metrics"].items()
        ],
        cols,
    )
    return 0


# ------------------------------------------------------------------ export, devices, ops


def cmd_export(args) -> int:
    store = _store(args)
    run = store.get_run(args.run)
    if args.format == "csv":
        out = Path(args.out or f"run-{args.run}-metrics.csv")
        export_metrics_csv(store, args.run, out)
        print(out)
        return 0
    from engine import checkpoint
    from engine.graph.export import export
    from engine.graph.model import Graph

    row = store.last_checkpoint(args.run)
    state = checkpoint.load(row["path"]) if row else None
    graph = Graph.from_dict(state["graph"] if state else run["spec"]["model"])
    suffix = {"pytorch": ".py", "torchscript": ".ts.pt", "onnx": ".onnx"}[args.format]
    out = Path(args.out or f"run-{args.run}{suffix}")
    files = export(graph, args.format, out, state["model"] if state else None)
    if state is None:
        print(
            f"note: run {args.run} has no checkpoint; exported the architecture with random weights",
            file=sys.stderr,
        )
    for f in files:
        print(f)
    return 0


def export_metrics_csv(store, run_id: int, out: Path) -> None:
    """Long format (metric, step, value, wall_time): one file holds every series."""
    import csv

    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", "step", "value", "wall_time"])
        for key in store.series_summaries(run_id):
            steps, vals, walls = store.series(run_id, key)
            w.writerows(zip([key] * len(steps), steps.tolist(), vals.tolist(), walls.tolist(), strict=True))


def cmd_devices(args) -> int:
    from engine.devices import report

    rep = report()
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    cpu = rep["cpu"]
    mem = f", {cpu['memory_bytes'] / 2**30:.1f} GiB" if cpu["memory_bytes"] else ""
    print(f"cpu    {cpu['name']}: {cpu['cores']} cores{mem}")
    for g in rep["cuda"]:
        print(
            f"cuda:{g['index']} {g['name']}: {g['free_bytes'] / 2**30:.1f} of {g['total_bytes'] / 2**30:.1f} GiB free"
        )
    if not rep["cuda"]:
        print("cuda   none visible")
    print(f"mps    {'available' if rep['mps'] else 'not available'}")
    print(
        f"torch {rep['torch']}, python {rep['python']}, SQLite {rep['sqlite']}"
        + (
            ""
            if rep["sqlite_wal_race_fixed"]
            else " (before 3.51.3: has a rare WAL-reset race under concurrent writers; upgrade when you can)"
        )
    )
    return 0


def cmd_ops(args) -> int:
    from engine.fields import as_dict
    from engine.graph.ops import OPS

    if args.json:
        print(
            json.dumps(
                {
                    n: {
                        "category": o.category,
                        "help": o.help,
                        "inputs": [o.min_inputs, o.max_inputs],
                        "params": [as_dict(f) for f in o.params],
                    }
                    for n, o in OPS.items()
                },
                indent=2,
                default=str,
            )
        )
        return 0
    rows = [
        {
            "op": o.name,
            "category": o.category,
            "params": ", ".join(
                f"{f.name}={f.default!r}" if not f.required else f.name for f in o.params if f.kind != "graph"
            )
            or "-",
            "help": o.help,
        }
        for o in OPS.values()
    ]
    _table(rows, ["op", "category", "params", "help"])
    return 0


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _table(rows: list[dict], cols: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
    print("  ".join("-" * widths[c] for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols).rstrip())


if __name__ == "__main__":
    sys.exit(main())
