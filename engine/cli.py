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

from engine import format as fmt
from engine.compare import compare_table, headline
from engine.errors import GraphError, SpecError, TrainbenchError
from engine.export import FORMATS as EXPORT_FORMATS
from engine.spec import load_spec


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


FORCE_HELP = "accept a spec whose memory estimate does not fit the device's free memory"


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
    r.add_argument("--force", action="store_true", help=FORCE_HELP)
    r.set_defaults(func=cmd_run)

    v = sub.add_parser(
        "validate", help="check a spec as a run would: every error, or the model's shape table and memory"
    )
    v.add_argument("spec")
    v.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="as for `run`")
    v.add_argument("--force", action="store_true", help=FORCE_HELP)
    v.add_argument(
        "--measure",
        action="store_true",
        help="load the data set and ask torch for the devices' free memory (exact, but takes seconds)",
    )
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
    e.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    e.add_argument("--out", help="output file (default: in the current folder)")
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("devices", help="CPU, GPUs and versions")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_devices)

    j = sub.add_parser("join", help="join a multi-machine run launched on another machine")
    j.add_argument("spec", help="the same spec file as the launching machine's")
    j.add_argument("--rdzv-endpoint", help="HOST:PORT of the launching machine (default: the spec's)")
    j.add_argument("--rdzv-id", help="the rendezvous id the launching machine printed (default: the spec's)")
    j.add_argument("--nnodes", help="machines: N or MIN:MAX (default: the spec's)")
    j.add_argument("--node-rank", type=int, default=1, help="this machine's place, 1 or more (default: 1)")
    j.add_argument("--nproc-per-node", type=int, help="processes on this machine (default: the spec's)")
    j.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="as for `run`")
    j.add_argument(
        "--print", action="store_true", help="print the equivalent torchrun line instead of joining"
    )
    j.set_defaults(func=cmd_join)

    w = sub.add_parser("worker")  # started by the elastic launcher, not by people
    w.add_argument("--run", type=int)
    w.add_argument("--spec")
    w.add_argument("--node-rank", type=int, default=0)
    w.add_argument("--set", action="append", default=[])
    w.add_argument("--events")
    w.add_argument("--echo", action="store_true")
    w.add_argument("--progress", action="store_true")
    w.set_defaults(func=cmd_worker)

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


def cmd_run(args) -> int:
    from engine import lineage
    from engine.devices import resource_samplers
    from engine.events import EventStream
    from engine.runner import execute
    from engine.strategies.launch import launch_run
    from engine.strategies.world import plan_world

    if (args.spec is None) == (args.resume is None):
        raise SpecError.at("", "give a spec file, or --resume RUN")
    spec = None
    store = _store(args)
    if args.spec:
        path = Path(args.spec)
        # With the store, a prune/distill spec's parent is checked and inherited from now.
        spec = load_spec(path, args.set, store=store)
    store_path = store.path
    run_spec = spec or store.get_run(args.resume)["spec"]
    plan = plan_world(run_spec)
    stream = EventStream.open(args.events)
    echo = not args.quiet and args.events != "-"
    if plan.launched:  # DDP/FSDP: processes started by torch.distributed's elastic launcher
        run_id, status = launch_run(
            store_path,
            run_spec,
            plan,
            resume_run=args.resume,
            parent_id=args.parent or lineage.parent_id(run_spec),
            events=stream,
            events_target=args.events,
            echo=echo,
            progress=echo,
            spec_path=args.spec,
            sets=args.set,
        )
        return _report_run(store_path, run_id, status)
    bar = _ProgressBar() if echo else None
    if bar:
        stream.listeners.append(bar)
    run_id, status = execute(
        store_path,
        spec,
        resume_run=args.resume,
        parent_id=args.parent,
        events=stream,
        echo=echo,
        samplers=resource_samplers(plan),
    )
    if bar:
        bar.close()
    return _report_run(store_path, run_id, status)


def _report_run(store_path, run_id: int, status: str) -> int:
    """The one line a finished run leaves on stderr, and the exit code."""
    from engine.store import RunStore

    run = RunStore(store_path).get_run(run_id)
    if status == "completed":
        metrics = {k: v for k, v in run["summary"].items() if k.startswith("val/")}
        print(
            f"run {run_id} completed: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
            file=sys.stderr,
        )
        return 0
    if status == "stopped":
        print(f"run {run_id} stopped; continue it with: trainbench run --resume {run_id}", file=sys.stderr)
        return 130
    lines = (run["error"] or "").strip().splitlines() or [""]
    # A worker's failure names its rank on the first line; a traceback ends with the error.
    headline = lines[0] if lines[0].startswith("rank ") else lines[-1]
    print(f"trainbench: error: run {run_id} {status}: {headline}", file=sys.stderr)
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
    """The verdict a run would give (engine.preflight), with the model's table and the memory
    estimate; warnings go to stderr and keep the exit code 0."""
    from engine.preflight import preflight

    spec = load_spec(args.spec, args.set)
    store = _store(args) if spec["task"]["kind"] != "train" else None  # the parent run is checked
    report = preflight(spec, store, force=args.force, measure=args.measure)
    spec, analysis, memory = report.spec, report.analysis, report.memory
    rows = analysis.table()
    for where, msg in report.warnings:
        print(f"trainbench: warning: {where}: {msg}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": True,
                    "nodes": rows,
                    "total_params": analysis.total_params,
                    "total_flops": analysis.total_flops,
                    "total_steps": report.total_steps,
                    "data": report.data.__dict__ if report.data else None,
                    "memory": memory.as_dict() if memory else None,
                    "warnings": [{"path": p, "message": m} for p, m in report.warnings],
                },
                indent=2,
                default=list,
            )
        )
        return 0
    _table(rows, ["node", "op", "output", "params", "flops"])
    print(
        f"\n{spec['name']}: valid; {analysis.total_params:,} parameters, {analysis.total_flops:,} FLOPs per sample (forward)"
    )
    if report.data is not None:
        d = report.data
        steps = f"; {report.total_steps:,} steps" if report.total_steps else ""
        print(f"data: {d.name}, {d.train_samples:,} train / {d.val_samples:,} validation samples{steps}")
    if memory is not None:
        print("\n".join(["", *memory.lines()]))
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
    head = headline(summary)
    return f"{head[0].removeprefix('val/')} {fmt.value(head[1])}" if head else ""


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


def cmd_compare(args) -> int:
    table = compare_table(_store(args), args.runs, args.all)
    if args.json:
        print(json.dumps(table, indent=2, default=str))
        return 0
    cols = ["field"] + [f"run {r['id']}" for r in table["runs"]]

    def rows(section: str) -> list[dict]:
        marks = table["winners"].get(section, {})
        out = []
        for k, vals in table[section].items():
            cells = [_num(v) + ("*" if i in marks.get(k, ()) else "") for i, v in enumerate(vals)]
            out.append({"field": k, **dict(zip(cols[1:], cells, strict=True))})
        return out

    print("hyperparameters" + ("" if args.all else " (differing only)") + ":")
    _table(rows("params"), cols)
    print("\nfinal metrics (* best):")
    _table(rows("final_metrics"), cols)
    print("\nbest metrics (min or max over the run; * best):")
    _table(rows("best_metrics"), cols)
    if table["summary"]:
        print("\nresults:")
        _table(rows("summary"), cols)
    if table["tradeoff"]:
        _print_tradeoff(table["tradeoff"])
    return 0


def _print_tradeoff(t: dict) -> None:
    """Size, speed and accuracy of parents and their pruned or distilled children; a child's
    cells say how many times its parent's figure they are."""
    labels = {
        "params": "parameters",
        "nonzero_params": "non-zero parameters",
        "flops": "FLOPs per sample",
        "bytes": "checkpoint size (weights)",
        "latency_ms": "CPU latency (ms)",
        "val/loss": "val loss",
        "val/accuracy": "val accuracy",
    }

    def cell(key: str, values: list, i: int) -> str:
        v, b = values[i], t["base"][i]
        if v is None:
            return ""
        text = _bytes(v) if key == "bytes" else f"{v:,}" if isinstance(v, int) else _num(v)
        if b is not None and values[b] and key not in ("val/loss", "val/accuracy"):
            text += f" ({v / values[b]:.2f}×)"
        elif b is not None and values[b] is not None and key == "val/accuracy":
            text += f" ({(v - values[b]) * 100:+.1f} pt)"
        return text

    print("\nsize, speed and accuracy (a child's parent measured beside it; latency: median, CPU, 1 thread):")
    _table(
        [
            {"figure": labels[k], **{c: cell(k, vals, i) for i, c in enumerate(t["columns"])}}
            for k, vals in t["rows"].items()
        ],
        ["figure", *t["columns"]],
    )


def _bytes(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


# ------------------------------------------------------------------ export, devices, ops


def cmd_export(args) -> int:
    from engine.export import export_run

    files, trained = export_run(_store(args), args.run, args.format, Path(args.out) if args.out else None)
    if not trained:
        print(
            f"note: run {args.run} has no checkpoint; exported the architecture with random weights",
            file=sys.stderr,
        )
    for f in files:
        print(f)
    return 0


def cmd_devices(args) -> int:
    from engine.devices import report

    rep = report()
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    cpu = rep["cpu"]
    mem = f", {cpu['memory_bytes'] / 2**30:.1f} GiB" if cpu["memory_bytes"] else ""
    if cpu.get("available_bytes"):
        mem += f" ({cpu['available_bytes'] / 2**30:.1f} GiB available)"
    print(f"cpu    {cpu['name']}: {cpu['cores']} cores{mem}")
    for g in rep["cuda"]:
        live = f", {g['utilization_pct']:.0f}% busy" if "utilization_pct" in g else ""
        print(
            f"cuda:{g['index']} {g['name']}: {g['free_bytes'] / 2**30:.1f} of {g['total_bytes'] / 2**30:.1f} GiB free{live}"
        )
    if not rep["cuda"]:
        print("cuda   none visible")
    elif not rep["nvml"]:
        print("       (live GPU utilization needs NVML: pip install nvidia-ml-py)")
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


def cmd_join(args) -> int:
    """Join a run launched on another machine: the same spec, this machine's node rank, and the
    launching machine's rendezvous; or, with --print, the torchrun line doing the same."""
    from engine.processes import join_commands, join_sets
    from engine.strategies.launch import join_run
    from engine.strategies.world import plan_world

    path = Path(args.spec)
    hw = load_spec(path, args.set)["hardware"]
    endpoint, rdzv_id = args.rdzv_endpoint or hw["rdzv_endpoint"], args.rdzv_id or hw["rdzv_id"]
    if not endpoint:
        raise SpecError.at(
            "hardware.rdzv_endpoint", "give --rdzv-endpoint HOST:PORT of the launching machine"
        )
    if not rdzv_id:
        raise SpecError.at("hardware.rdzv_id", "give --rdzv-id as printed by the launching machine")
    if args.node_rank < 1:
        raise SpecError.at(
            "hardware.node_rank", "node rank 0 is the launching machine; joining machines are 1, 2, …"
        )
    sets = list(args.set) + join_sets(endpoint, rdzv_id, args.nnodes or hw["nnodes"], args.node_rank)
    if args.nproc_per_node:
        sets.append(f"hardware.nproc_per_node={args.nproc_per_node}")
    spec = load_spec(path, sets)
    if args.print:
        print(join_commands(spec, rdzv_id, args.spec, list(args.set), args.node_rank)[1])
        return 0
    return join_run(spec, plan_world(spec), args.spec, sets)


def cmd_worker(args) -> int:
    """One process of a multi-process run (see engine.worker); its errors reach the launcher
    through torchelastic's error file."""
    from torch.distributed.elastic.multiprocessing.errors import record

    from engine.worker import run_worker

    db = str(_store(args).path) if args.run is not None else None
    return record(run_worker)(
        node_rank=args.node_rank,
        db=db,
        run_id=args.run,
        spec_file=args.spec,
        sets=args.set,
        events_target=args.events,
        echo=args.echo,
        listeners=[_ProgressBar()] if args.progress else [],
    )


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
