"""The `trainbench` command line: everything the engine does, without a screen.

With no arguments it opens the desktop app. User mistakes print one line on stderr and exit
non-zero (2 for an invalid spec or graph); only bugs print tracebacks.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from engine import capsule, run_table
from engine import format as fmt
from engine.compare import compare_table, headline
from engine.errors import GraphError, SpecError, TrainbenchError
from engine.export import FORMATS as EXPORT_FORMATS
from engine.fields import Field
from engine.spec import SECTIONS, load_spec
from engine.store import KINDS, STATUSES
from engine.textable import Col, print_table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        return cmd_gui(None)
    argv, script_args = _script_args(argv)
    args = _parser().parse_args(argv)
    args.script_args = script_args
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
        prog="trainbench",
        description="Design, train, prune, distill and compare models.",
        formatter_class=_Paragraphs,
    )
    p.add_argument("--db", help="run database (default: $TRAINBENCH_DB or the user data folder)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = _command(sub, "run", cmd_run)
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
    _add_script_options(r)

    sw = _command(sub, "sweep", cmd_sweep)
    sw.add_argument("spec", nargs="?", help="spec JSON file with a sweep section")
    sw.add_argument("--resume", type=int, metavar="SWEEP", help="continue a stopped or crashed sweep")
    sw.add_argument("--trials", type=int, metavar="N", help="the budget (sweep.trials)")
    sw.add_argument("--parallel", type=int, metavar="K", help="trials at once (sweep.parallel)")
    sw.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="as for `run`")
    sw.add_argument("--quiet", action="store_true", help="no live table")

    v = _command(sub, "validate", cmd_validate)
    v.add_argument("spec")
    v.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="as for `run`")
    v.add_argument("--force", action="store_true", help=FORCE_HELP)
    v.add_argument(
        "--measure",
        action="store_true",
        help="load the data set and ask torch for the devices' free memory (exact, but takes seconds)",
    )
    v.add_argument("--json", action="store_true", help=JSON_HELP)

    ls = _command(sub, "runs", cmd_runs)
    ls.add_argument("--status", choices=STATUSES, help="only runs with this status")
    ls.add_argument("--kind", choices=KINDS, help="only runs of this kind (the spec's task.kind, or lr_find)")
    ls.add_argument("--limit", type=int, metavar="N", help="the newest N runs only")
    ls.add_argument("--json", action="store_true", help=JSON_HELP)

    s = _command(sub, "show", cmd_show)
    s.add_argument("run", type=int, help="the run's id (as `trainbench runs` lists it)")
    s.add_argument("--json", action="store_true", help=JSON_HELP)

    c = _command(sub, "compare", cmd_compare)
    c.add_argument("runs", type=int, nargs="+", metavar="RUN", help="two or more run ids")
    c.add_argument("--all", action="store_true", help="show equal fields too")
    c.add_argument("--json", action="store_true", help=JSON_HELP)

    e = _command(sub, "export", cmd_export)
    e.add_argument("run", type=int, help="the run's id")
    e.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="what to write")
    e.add_argument("--out", help="output file (default: run-N.<suffix> in the current folder)")

    d = _command(sub, "devices", cmd_devices)
    d.add_argument("--json", action="store_true", help=JSON_HELP)

    j = _command(sub, "join", cmd_join)
    j.add_argument("spec", help="the same spec file as the launching machine's")
    for option, path, note in (
        ("--rdzv-endpoint", "hardware.rdzv_endpoint", ""),
        ("--rdzv-id", "hardware.rdzv_id", "the one the launching machine printed; "),
        ("--nnodes", "hardware.nnodes", ""),
        ("--nproc-per-node", "hardware.nproc_per_node", ""),
    ):
        field = _spec_field(path)
        j.add_argument(
            option,
            type=int if field.kind == "int" else None,
            help=f"{field.help}; {note}without it, the spec's",
        )
    j.add_argument(
        "--node-rank",
        type=int,
        default=1,
        help=f"{_spec_field('hardware.node_rank').help}; a joining machine is 1, 2, … (default: 1)",
    )
    j.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="as for `run`")
    j.add_argument(
        "--print", action="store_true", help="print the equivalent torchrun line instead of joining"
    )

    _command(sub, "sweep-worker", cmd_sweep_worker, listed=False)  # started by `sweep`, one per slot
    w = _command(sub, "worker", cmd_worker, listed=False)  # started by the elastic launcher, not by people
    w.add_argument("--run", type=int)
    w.add_argument("--spec")
    w.add_argument("--node-rank", type=int, default=0)
    w.add_argument("--set", action="append", default=[])
    w.add_argument("--events")
    w.add_argument("--echo", action="store_true")
    w.add_argument("--progress", action="store_true")

    _add_tracking_commands(sub)

    o = _command(sub, "ops", cmd_ops)
    o.add_argument("--json", action="store_true", help=JSON_HELP)

    _diagnostics_commands(sub)

    _command(sub, "gui", cmd_gui)
    return p


def _add_import_parser(sources) -> None:
    """`trainbench import model SOURCE -o graph.json`: the `import` command's entry for models
    (`sources` is its subcommands, beside tensorboard and mlflow)."""
    m = _command(sources, "model", cmd_import_model)
    m.add_argument(
        "source", help="file.py:factory, package.module:factory (an installed library), or model.onnx"
    )
    m.add_argument(
        "-o", "--out", required=True, help="the graph JSON to write; weights go beside it (.safetensors)"
    )
    m.add_argument(
        "--kwargs", default="{}", metavar="JSON", help="the factory's keyword arguments, a JSON object"
    )
    m.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one keyword argument (VALUE as JSON)",
    )
    m.add_argument("--input", metavar="SHAPE", help="one sample's shape without the batch, e.g. 3,224,224")
    m.add_argument(
        "--dtype", choices=("float", "long"), default="float", help="the input's type (long: token ids)"
    )
    m.add_argument("--json", action="store_true", help="print the import report as JSON")


JSON_HELP = "print JSON instead of a table, for scripts"


def _command(sub, name: str, func, listed: bool = True) -> argparse.ArgumentParser:
    """A subcommand described once, by `func`'s docstring: its first line is the help in
    `trainbench --help`, the whole of it the description in `trainbench NAME --help`."""
    doc = inspect.getdoc(func) or ""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ")
    if not listed:
        parser = sub.add_parser(name)
    else:
        parser = sub.add_parser(name, help=summary, description=doc, formatter_class=_Paragraphs)
    parser.set_defaults(func=func)
    return parser


class _Paragraphs(argparse.HelpFormatter):
    """Wraps a description paragraph by paragraph, so a docstring's summary line stays a line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(super(_Paragraphs, self)._fill_text(p, width, indent) for p in text.split("\n\n"))


def _spec_field(path: str) -> Field:
    """The spec's declaration of `section.name`, whose help an option that sets it repeats."""
    section, name = path.split(".")
    return next(f for f in SECTIONS[section] if f.name == name)


def _store(args, readonly: bool = False):
    from engine.store import RunStore

    return RunStore(args.db or None, readonly=readonly)


# ------------------------------------------------------------------ run


def cmd_run(args) -> int:
    """train (or prune/distill) from a spec file, run your own script, or resume a run

    Trains in this process (or, for DDP/FSDP, in processes started by torch.distributed's
    elastic launcher) with a progress bar, storing metrics and checkpoints in the run database.
    Ctrl-C stops gracefully with a checkpoint; --resume RUN continues a stopped or crashed run.
    --script train.py -- ARGS runs a script of your own as a run (its `trainbench.init()`
    writes to it; more than one process with --set hardware.nproc_per_node=N); --from-capsule
    FILE runs again what `trainbench capsule` wrote."""
    from engine.devices import resource_samplers
    from engine.events import EventStream
    from engine.runner import execute
    from engine.strategies.launch import launch_run
    from engine.strategies.world import plan_world

    if args.script or _is_script_run(args):
        return cmd_run_script(args)
    if sum(x is not None for x in (args.spec, args.resume, args.from_capsule)) != 1:
        raise SpecError.at("", "give a spec file, or --resume RUN (or --script FILE, --from-capsule FILE)")
    # The one store handle of this command: a damaged database is refused here, before any work.
    store = _store(args)
    spec = load_spec(Path(args.spec), args.set) if args.spec else _capsule_spec(args)
    if spec is not None:  # everything run would refuse, before a run row exists; the parent once
        from engine.preflight import preflight

        spec = preflight(spec, store, force=args.force).spec
    plan = plan_world(spec or store.get_run(args.resume)["spec"])
    stream = EventStream.open(args.events)
    echo = not args.quiet and args.events != "-"
    if plan.launched:  # DDP/FSDP: processes started by torch.distributed's elastic launcher
        run_id, status = launch_run(
            store,
            plan,
            spec=spec,
            resume_run=args.resume,
            parent_id=args.parent,
            resolved=spec is not None,
            events=stream,
            events_target=args.events,
            echo=echo,
            progress=echo,
            spec_path=args.spec,
            sets=args.set,
        )
        return _report_run(store, run_id, status)
    bar = _ProgressBar() if echo else None
    if bar:
        stream.listeners.append(bar)
    try:
        run_id, status = execute(
            store,
            spec,
            resume_run=args.resume,
            parent_id=args.parent,
            resolved=spec is not None,
            events=stream,
            echo=echo,
            samplers=resource_samplers(plan),
            origin=args.spec,
        )
    finally:
        if bar:
            bar.close()
    return _report_run(store, run_id, status)


def _report_run(store, run_id: int, status: str) -> int:
    """The one line a finished run leaves on stderr, and the exit code."""
    run = store.get_run(run_id)
    if status == "completed":
        metrics = {k: v for k, v in run["summary"].items() if k.startswith("val/")}
        results = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        print(f"run {run_id} completed" + (f": {results}" if results else ""), file=sys.stderr)
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


# ------------------------------------------------------------------ sweep


def cmd_sweep(args) -> int:
    """run a hyperparameter sweep: trials of a spec's sweep section, as child runs

    Optuna picks each trial's values (grid, random or TPE) and stops hopeless trials early
    (median or ASHA pruning); every trial is a run of its own, whose parent is the sweep, with
    the cores (or GPUs) shared among the trials at once. A live table shows the trials. Ctrl-C
    stops the sweep and its trials with checkpoints; --resume SWEEP finishes its budget."""
    from engine.sweep import resume_sweep, start_sweep
    from engine.sweep.table import LiveTable

    if (args.spec is None) == (args.resume is None):
        raise SpecError.at("", "give a spec file with a sweep section, or --resume SWEEP")
    store = _store(args)
    table = None if args.quiet else LiveTable()
    if args.resume is not None:
        if args.set or args.trials or args.parallel:
            raise SpecError.at(
                "",
                "--resume continues a sweep as it was started; --trials, --parallel and --set start a new one",
            )
        sweep_id, status = resume_sweep(store, args.resume, table)
    else:
        sets = [*args.set, *(f"sweep.{k}={v}" for k in ("trials", "parallel") if (v := getattr(args, k)))]
        spec = load_spec(Path(args.spec), sets)
        if "sweep" not in spec:
            raise SpecError.at("sweep", f"{args.spec} has no sweep section (trainbench run trains it once)")
        sweep_id, status = start_sweep(store, spec, table)
    run = store.get_run(sweep_id)
    summary = run["summary"]
    if status == "stopped":
        print(
            f"sweep {sweep_id} stopped; continue it with: trainbench sweep --resume {sweep_id}",
            file=sys.stderr,
        )
        return 130
    if status != "completed":
        print(f"trainbench: error: sweep {sweep_id} {status}: {run['error']}", file=sys.stderr)
        return 1
    best = summary.get("best_run")
    print(
        f"sweep {sweep_id} completed: {summary['trials_done']} trials, {summary['trials_pruned']} pruned"
        + (
            f"; best run {best} (trial {summary['best_trial']}): objective {summary['objective']:.6g}"
            if best
            else ""
        ),
        file=sys.stderr,
    )
    return 0


# ------------------------------------------------------------------ validate


def cmd_validate(args) -> int:
    """check a spec as a run would: every error, or the model's table, data and memory fit

    Makes every check a run makes before its first step (engine.preflight), without torch: the
    spec's fields, the model's shapes, the data (CSV cells, image headers, text encoding), the
    model against the data, the global batch, and the memory-fit estimate, which is an error
    unless --force. Prints each node's output shape, parameters and FLOPs and the estimate, or
    every problem with its field or node (exit 2). Warnings (a warm-up or an evaluation cadence
    longer than the run) go to stderr and keep exit 0. --measure loads the data set and asks
    torch for the devices' free memory instead."""
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
    print_table(rows, ["node", "op", "output", "params", "flops"])
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


def _duration(run) -> str:
    return fmt.duration(run_table.elapsed(run["started_at"], run["ended_at"]))


def _headline(summary: dict) -> str:
    head = headline(summary)
    return f"{head[0].removeprefix('val/')} {fmt.value(head[1])}" if head else ""


def cmd_runs(args) -> int:
    """list runs, newest first

    One line per run: its id, name, kind, status, parent, when it was created, how long it ran
    and its headline result. --json prints every field, for scripts."""
    store = _store(args, readonly=True)
    store.reap()  # runs whose process died show as crashed
    runs = store.list_runs(args.status, args.kind, args.limit)
    if args.json:
        print(
            json.dumps(
                [{**{k: v for k, v in r.items() if k != "spec"}, **_config_of(r["spec"])} for r in runs],
                indent=2,
            )
        )
        return 0
    rows = [
        {
            "id": r["id"],
            "name": r["name"],
            "kind": r["kind"],
            "status": r["status"],
            "parent": f"#{r['parent_id']}" if r["parent_id"] else "",
            "created": fmt.timestamp(r["created_at"]),
            "duration": _duration(r),
            "result": _headline(r["summary"]),
        }
        for r in runs
    ]
    print_table(
        rows,
        [
            Col("id", "#", right=True),
            Col("name", wrap=True),
            "kind",
            "status",
            "parent",
            "created",
            Col("duration", right=True),
            "result",
        ],
    )
    return 0


def cmd_show(args) -> int:
    """one run: spec, summary, metrics, checkpoints, lineage

    The run's status, duration and lineage, its results, every metric series it logged (points,
    last, min and max value) and its checkpoints. --json prints the whole record."""
    store = _store(args, readonly=True)
    store.reap()
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
                    "events": store.run_events(args.run),
                    "artifacts": capsule.artifacts(store, args.run),
                    "capsules": store.capsules(args.run),
                    "ancestors": [a["id"] for a in ancestors],
                    "descendants": [d["id"] for d in descendants],
                },
                indent=2,
            )
        )
        return 0
    print(f"run {run['id']}  {run['name']}  ({run['kind']}, {run['status']})")
    print(f"  created {fmt.timestamp(run['created_at'])}   duration {_duration(run) or '-'}")
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
            print(f"  {k}: {fmt.field(k, v)}")
    print()
    print_table(
        [
            {
                "metric": k,
                "points": f"{s['count']:,}",
                "last": fmt.value(s["last"]),
                "min": fmt.value(s["min"]),
                "max": fmt.value(s["max"]),
                "last step": f"{s['last_step']:,}",
            }
            for k, s in series.items()
        ],
        ["metric", *(Col(c, right=True) for c in ("points", "last", "min", "max", "last step"))],
    )
    if checkpoints:
        print()
        print_table(
            [{"step": f"{c['step']:,}", "tag": c["tag"], "path": c["path"]} for c in checkpoints],
            [Col("step", right=True), "tag", "path"],
        )
    _show_tracking(store, run)
    _print_events(store.run_events(args.run))
    return 0


def cmd_compare(args) -> int:
    """hyperparameter differences and final metrics of runs

    The spec fields that differ between the runs (all of them with --all), each metric's final
    and best value with the best run marked *, their results, and for pruned or distilled runs
    their size, speed and accuracy beside their parent's. The Experiments area's compare table
    shows the same."""
    table = compare_table(_store(args, readonly=True), args.runs, args.all)
    if args.json:
        print(json.dumps(table, indent=2, default=str))
        return 0
    cols = ["field"] + [f"run {r['id']}" for r in table["runs"]]

    def rows(section: str) -> list[dict]:
        marks = table["winners"].get(section, {})
        out = []
        for k, vals in table[section].items():
            cells = [_cell(k, v) + ("*" if i in marks.get(k, ()) else "") for i, v in enumerate(vals)]
            out.append({"field": k, **dict(zip(cols[1:], cells, strict=True))})
        return out

    print("hyperparameters" + ("" if args.all else " (differing only)") + ":")
    print_table(rows("params"), cols)
    print("\nfinal metrics (* best):")
    print_table(rows("final_metrics"), cols)
    print("\nbest metrics (min or max over the run; * best):")
    print_table(rows("best_metrics"), cols)
    if table["summary"]:
        print("\nresults:")
        print_table(rows("summary"), cols)
    if table["tradeoff"]:
        _print_tradeoff(table["tradeoff"])
    _print_environment(_store(args, readonly=True), args.runs, cols)
    return 0


def _cell(key: str, v) -> str:
    """A compared value: numbers as the GUI shows them, anything else (lists, paths) as JSON
    would write it."""
    if isinstance(v, list | dict):
        return json.dumps(v)
    return fmt.field(key, v)


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
        text = fmt.size(v) if key == "bytes" else f"{v:,}" if isinstance(v, int) else fmt.value(v)
        if b is not None and values[b] and key not in ("val/loss", "val/accuracy"):
            text += f" ({v / values[b]:.2f}×)"
        elif b is not None and values[b] is not None and key == "val/accuracy":
            text += f" ({(v - values[b]) * 100:+.1f} pt)"
        return text

    print("\nsize, speed and accuracy (a child's parent measured beside it; latency: median, CPU, 1 thread):")
    print_table(
        [
            {"figure": labels[k], **{c: cell(k, vals, i) for i, c in enumerate(t["columns"])}}
            for k, vals in t["rows"].items()
        ],
        ["figure", *(Col(c, right=True) for c in t["columns"])],
    )


# ------------------------------------------------------------------ export, devices, ops


def cmd_export(args) -> int:
    """export a run's model or metrics

    pytorch: a standalone model .py with its trained weights (.pt); torchscript; onnx; csv:
    every metric point (metric, step, value, wall time). A run without a checkpoint exports its
    architecture with random weights, and says so."""
    from engine.export import export_run

    files, trained = export_run(
        _store(args, readonly=True), args.run, args.format, Path(args.out) if args.out else None
    )
    if not trained:
        print(
            f"note: run {args.run} has no checkpoint; exported the architecture with random weights",
            file=sys.stderr,
        )
    for f in files:
        print(f)
    return 0


def cmd_devices(args) -> int:
    """CPU, GPUs and versions

    What a run could use on this machine: CPU cores and memory, CUDA GPUs with their free
    memory (and utilisation with NVML), Apple's MPS, and the torch, Python and SQLite versions."""
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
    print(f"torch {rep['torch']}, python {rep['python']}, SQLite {rep['sqlite']}")
    return 0


def cmd_join(args) -> int:
    """join a multi-machine run launched on another machine

    Run on each other machine with the same spec file and data: this machine's node rank and the
    launching machine's rendezvous, as `trainbench run` printed them there; or, with --print,
    the torchrun line doing the same."""
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


def cmd_sweep_worker(args) -> int:
    """Runs the trials a sweep sends on stdin, one after another (see engine.sweep.worker)."""
    from engine.sweep.worker import serve

    serve(_store(args))  # ends the process
    return 0


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
    """the op registry: every layer and its parameters

    Each op's category, parameters with their defaults, and what it does, as the designer's
    palette and inspector show them. --json adds every parameter's type, range and help."""
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
    print_table(rows, ["op", "category", Col("params", wrap=True), Col("help", wrap=True)])
    return 0


def cmd_import_model(args) -> int:
    """import a PyTorch model or an ONNX file as a graph with its weights

    The model becomes a graph of registry ops with its weights (a .safetensors file beside the
    graph, which the graph's init_from names); what maps to no op becomes an opaque Module node
    that references the original code by import path and constructor arguments. A PyTorch
    source is imported by running it: only import code you trust. The report lists the ops,
    the opaque nodes and why, the parameter counts before and after, and the largest
    difference between the imported graph's output and the original's on a random input."""
    from engine.graph.importers import ModelImportError, run
    from engine.graph.importers.report import text

    try:
        kwargs = json.loads(args.kwargs)
    except ValueError as err:
        raise ModelImportError(f"--kwargs is not JSON: {err}") from None
    if not isinstance(kwargs, dict):
        raise ModelImportError("--kwargs must be a JSON object of keyword arguments")
    for item in args.arg:
        name, sep, raw = item.partition("=")
        if not sep or not name.isidentifier():
            raise ModelImportError(f"--arg {item!r}: give NAME=VALUE")
        try:
            kwargs[name] = json.loads(raw)
        except ValueError:
            kwargs[name] = raw
    shape = None
    if args.input:
        try:
            shape = tuple(int(d) for d in args.input.replace("x", ",").split(",") if d.strip())
        except ValueError:
            raise ModelImportError(f"--input {args.input!r}: give whole numbers, e.g. 3,224,224") from None
        if not shape or min(shape) < 1:
            raise ModelImportError(f"--input {args.input!r}: every dimension must be at least 1")
    report = run(args.source, Path(args.out), kwargs, shape, args.dtype)
    print(json.dumps(report, indent=2) if args.json else text(report))
    return 0


# ------------------------------------------------------------------ diagnostics: lr-find, explain, control


def _diagnostics_commands(sub) -> None:
    from engine import lrfind
    from engine.control import USAGE
    from engine.explain import METHODS

    f = _command(sub, "lr-find", cmd_lr_find)
    f.add_argument("spec", help="spec JSON file (a train spec)")
    f.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="as for `run`")
    f.add_argument(
        "--steps", type=int, default=lrfind.DEFAULTS["steps"], help="sweep length (default %(default)s)"
    )
    f.add_argument("--start-lr", type=float, default=lrfind.DEFAULTS["start_lr"], help="default %(default)g")
    f.add_argument("--end-lr", type=float, default=lrfind.DEFAULTS["end_lr"], help="default %(default)g")
    f.add_argument(
        "--json", action="store_true", help="print the sweep (lr, loss, smoothed) and suggestions as JSON"
    )

    x = _command(sub, "explain", cmd_explain)
    x.add_argument("run", type=int, help="the run's id")
    x.add_argument(
        "--samples", metavar="I,J,…", help="validation sample indices (default: the first --count)"
    )
    x.add_argument(
        "--count", type=int, default=4, help="samples explained without --samples (default %(default)s)"
    )
    x.add_argument("--methods", metavar="M,…", help=f"some of {', '.join(METHODS)} (default: all that apply)")
    x.add_argument(
        "--prompt", help="language models: the text samples start from (default: a validation sample's)"
    )
    x.add_argument("--temperature", type=float, default=0.8, help="language models (default %(default)s)")
    x.add_argument("--top-k", type=int, default=40, help="language models; 0: no cut (default %(default)s)")
    x.add_argument(
        "--length", type=int, default=200, help="language models: bytes per sample (default %(default)s)"
    )
    x.add_argument("--json", action="store_true", help="print what was written as JSON")

    c = _command(sub, "control", cmd_control)
    c.add_argument("run", type=int, help="the id of a running run")
    c.add_argument("command", metavar="COMMAND", help=USAGE)
    c.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the run to apply it (0: don't)"
    )
    c.add_argument("--json", action="store_true", help=JSON_HELP)


def cmd_lr_find(args) -> int:
    """sweep the learning rate on a throwaway copy of a spec's model and suggest one

    Trains a fresh copy of the spec's model for --steps steps while the learning rate grows
    exponentially from --start-lr to --end-lr, stops when the loss diverges, and prints two
    suggestions read off the smoothed loss: valley (the middle of the stretch where the loss
    falls; the one to use) and steepest (where it falls fastest). The sweep is stored as a run of
    kind lr_find; nothing else changes."""
    from engine.lrfind import lr_find
    from engine.preflight import preflight

    store = _store(args)
    spec = preflight(load_spec(Path(args.spec), args.set), store).spec
    result = lr_find(spec, store, args.steps, args.start_lr, args.end_lr)
    if args.json:
        print(json.dumps(result, allow_nan=True))
        return 0
    if result["valley"] is None:
        print(
            f"run {result['run_id']}: the loss did not fall over the sweep; try a wider --start-lr/--end-lr"
        )
        return 1
    print(f"valley    {result['valley']:.3g}   (suggested optim.lr)")
    print(f"steepest  {result['steepest']:.3g}")
    end = ", stopped when the loss diverged" if result["stopped_early"] else ""
    print(
        f"{result['steps']} steps from {args.start_lr:g} to {result['lr'][-1]:.3g}{end}; stored as run {result['run_id']}"
    )
    return 0


def cmd_explain(args) -> int:
    """evaluate a run and explain its predictions: confusion, errors, saliency, attention

    Loads the run's newest checkpoint and writes, beside the run, the evaluation of its
    validation split (confusion matrix, per-class precision/recall/F1 and the most confused
    samples; predicted vs true values for regression; text sampled from every kept checkpoint
    for language models) and explanations of chosen samples: saliency, integrated gradients and
    Grad-CAM through Captum, attention maps per layer and head. The GUI shows the same files."""
    from engine.evaluation import evaluate_run, load_trained
    from engine.explain import explain_run

    store = _store(args)
    indices = _int_list(args.samples, "--samples") if args.samples else None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    trained = load_trained(store, args.run)
    sample = {
        "prompt": args.prompt,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "length": args.length,
    }
    evaluation = evaluate_run(store, args.run, trained=trained, **sample)
    explained = explain_run(store, args.run, indices, args.count, methods, trained=trained)
    folder = store.artifacts_dir(args.run)
    if args.json:
        print(json.dumps({"folder": str(folder), "evaluation": evaluation, "explain": explained}))
        return 0
    print(f"run {args.run} at step {trained.step:,}: {evaluation['objective']}")
    if "accuracy" in evaluation:
        print(f"  accuracy {evaluation['accuracy']:.4f}; most confused:")
        for c in evaluation["most_confused"][:5]:
            print(f"    #{c['index']}: true {c['true']}, predicted {c['predicted']} ({c['confidence']:.0%})")
    elif "rmse" in evaluation:
        print(
            f"  RMSE {fmt.value(evaluation['rmse'])}, MAE {fmt.value(evaluation['mae'])}, R² {evaluation['r2']:.3f}"
        )
    else:
        for s in evaluation["lm_samples"]["samples"]:
            print(f"  step {s['step']:,}: {s.get('text', s.get('error', ''))[:70]!r}")
    print(
        f"  explained samples {', '.join(str(s['index']) for s in explained['samples'])}: {', '.join(explained['methods'])}"
    )
    print(f"  written to {folder}/evaluation and {folder}/explain")
    return 0


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise SpecError.at(option, f"must be whole numbers separated by commas, got {text!r}") from None


def cmd_control(args) -> int:
    """change a running run: pause, resume, learning rate, length, evaluate or checkpoint now

    COMMAND is pause, resume, lr=VALUE (the next step's learning rate; the schedule keeps its
    shape), lr*=FACTOR, steps=N or epochs=N (the run ends there; the schedule is recomputed),
    eval or checkpoint. The run applies it within a few steps and records it as an event at
    its step (`trainbench show` lists them; a resume replays them). Works for any running run
    on this machine, whoever started it."""
    from engine.control import describe, send

    event = send(_store(args, readonly=True), args.run, args.command, args.wait)
    if args.json:
        print(json.dumps(event))
        return 0
    if event["step"] is None:
        print(f"run {args.run}: sent {args.command!r}; the run applies it at its next check")
        return 0
    print(f"run {args.run}: {describe(event['data'])} at step {event['step']:,}")
    return 0


def _print_events(events: list[dict]) -> None:
    """The changes made to a run while it ran, and what its health checks found."""
    from engine.control import describe

    if not events:
        return
    print()
    rows = [
        {
            "step": f"{e['step']:,}",
            "event": e["kind"],
            "what": describe(e["data"]) if e["kind"] == "control" else e["data"].get("message", ""),
        }
        for e in events
    ]
    print_table(rows, [Col("step", right=True), "event", Col("what", wrap=True)])


# ------------------------------------------------------------------ scripts, capsules, imports


def _script_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """`trainbench run --script FILE -- ARGS…`: what follows `--` is the script's own."""
    script = next((i for i, a in enumerate(argv) if a == "--script" or a.startswith("--script=")), None)
    if script is None or "--" not in argv[script:]:
        return argv, []
    cut = argv.index("--", script)
    return argv[:cut], argv[cut + 1 :]


def _add_script_options(r: argparse.ArgumentParser) -> None:
    r.add_argument(
        "--script",
        metavar="FILE",
        help="run your own training script (a .py file, or a command) as a run; its arguments follow --",
    )
    r.add_argument(
        "--from-capsule",
        metavar="FILE",
        help="run again the spec a capsule file holds (written by `trainbench capsule`)",
    )


def _add_tracking_commands(sub) -> None:
    imp = _command(sub, "import", cmd_import)
    sources = imp.add_subparsers(dest="source", required=True, metavar="SOURCE")
    _add_import_parser(sources)
    tb = sources.add_parser("tensorboard", help="TensorBoard event files: one run per folder under LOGDIR")
    tb.add_argument("logdir", help="the log directory (SummaryWriter's log_dir or a parent of several)")
    ml = sources.add_parser(
        "mlflow", help="an MLflow tracking store: a folder (./mlruns) or sqlite:///FILE.db"
    )
    ml.add_argument("uri", help="the store's folder, .db file or URI")
    for parser in (tb, ml):
        parser.add_argument("--events", metavar="FILE", help="write progress as JSON lines ('-' for stdout)")
        parser.add_argument("--json", action="store_true", help=JSON_HELP)

    cap = _command(sub, "capsule", cmd_capsule)
    cap.add_argument("run", type=int, help="the run's id")
    cap.add_argument("-o", "--out", metavar="FILE", help="the file to write (default: run-N.tbcapsule)")

    agent = _command(sub, "script-agent", cmd_script_agent, listed=False)  # started by `run --script`
    agent.add_argument("--run", type=int, required=True)


def _is_script_run(args) -> bool:
    """Whether `run` was given a script run: a script spec file, a script run to resume, or the
    capsule of one."""
    from engine.scripts import KIND, is_script_spec

    if args.spec:
        from engine.jsonfile import read_json

        return is_script_spec(read_json(Path(args.spec)))
    if args.resume is not None:
        return _store(args, readonly=True).get_run(args.resume)["kind"] == KIND
    if args.from_capsule:
        return is_script_spec(capsule.read(args.from_capsule)["spec"])
    return False


def cmd_run_script(args) -> int:
    """A script run: `run --script FILE -- ARGS`, a script spec file, its resume or its capsule."""
    from engine.events import EventStream
    from engine.jsonfile import read_json
    from engine.scripts import load_script_spec, run_script, script_doc

    if sum(x is not None for x in (args.script, args.spec, args.resume, args.from_capsule)) != 1:
        raise SpecError.at("", "give one of --script FILE, a spec file, --resume RUN or --from-capsule FILE")
    store = _store(args)
    spec = None
    if args.script:
        spec = load_script_spec(script_doc(args.script, args.script_args), args.set)
    elif args.spec:
        spec = load_script_spec(read_json(Path(args.spec)), args.set, base_dir=Path(args.spec).parent)
    elif args.from_capsule:
        spec = load_script_spec(_capsule_doc(args)["spec"], args.set)
    elif args.script_args:
        raise SpecError.at("script.args", "a resumed script runs with the arguments it had")
    stream = EventStream.open(args.events)
    run_id, status = run_script(
        store,
        spec,
        resume_run=args.resume if spec is None else None,
        events=stream,
        live=args.events is not None,
        echo=not args.quiet and args.events != "-",
    )
    return _report_run(store, run_id, status)


def _capsule_doc(args) -> dict:
    """The capsule file of --from-capsule, after saying how this machine differs from the one
    that recorded it (a different torch is a reason for a different curve)."""
    doc = capsule.read(args.from_capsule)
    recorded = doc["capsules"][0] if doc["capsules"] else None
    now = {**(recorded or {}), **capsule.runtime(), "host": capsule.host()}
    differ = capsule.differences([recorded, now])
    for key, (was, is_now) in list(differ.items())[:12]:
        print(f"trainbench: note: {key} was {was}, is {is_now} here", file=sys.stderr)
    if len(differ) > 12:
        print(f"trainbench: note: and {len(differ) - 12} more environment differences", file=sys.stderr)
    return doc


def _capsule_spec(args) -> dict | None:
    """A designed run's spec from --from-capsule, validated as any spec is."""
    if not args.from_capsule:
        return None
    from engine.spec import apply_overrides, validate_spec

    return validate_spec(apply_overrides(_capsule_doc(args)["spec"], args.set))


def _config_of(spec: dict) -> dict:
    """A script's or an import's `config`, which `runs --json` lists with the run."""
    return {"config": spec["config"]} if isinstance(spec.get("config"), dict) else {}


def _show_tracking(store, run: dict) -> None:
    """`show`: where the run was made (its first capsule) and the artifacts a script logged."""
    capsules = store.capsules(run["id"])
    if capsules:
        c = capsules[0]
        git = c.get("git") or {}
        torch = (c.get("torch") or {}).get("version")
        bits = [f"host {c['host']['name']}", f"python {c['python']['version']}"]
        bits += [f"torch {torch}"] if torch else []
        if git.get("commit"):
            bits.append(f"git {git['commit'][:10]}{' (uncommitted changes)' if git.get('dirty') else ''}")
        print(f"\n  capsule: {', '.join(bits)}; `trainbench capsule {run['id']} -o FILE` writes it whole")
    files = capsule.artifacts(store, run["id"])
    if files:
        print()
        print_table(
            [{"artifact": a["name"], "size": fmt.size(a["bytes"]), "path": a["path"]} for a in files],
            ["artifact", Col("size", right=True), "path"],
        )


def _print_environment(store, run_ids: list[int], cols: list[str]) -> None:
    """`compare`: the environment fields that differ between the runs' capsules."""
    differ = capsule.compare_environment(store, run_ids)
    if not differ:
        return
    print("\nenvironment (differing):")
    rows = [
        {"field": k, **{c: "" if v is None else str(v) for c, v in zip(cols[1:], vals, strict=True)}}
        for k, vals in differ.items()
    ]
    print_table(rows, cols)


class _ImportProgress:
    """An import's progress: a bar on stderr, and progress events for the app (--events)."""

    def __init__(self, events_target: str | None):
        from engine.events import EventStream

        self.events = EventStream.open(events_target)
        self.bar = None
        self.show_bar = events_target != "-"

    def __call__(self, done: int, total: int, what: str) -> None:
        from tqdm import tqdm

        if self.bar is None and self.show_bar:
            self.bar = tqdm(total=total, unit="run", desc="import", file=sys.stderr, dynamic_ncols=True)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(what[-40:], refresh=False)
        self.events.emit("progress", step=done, total_steps=total, epoch=None, elapsed_s=None, eta_s=None)
        if done:
            self.events.emit("log", level="info", message=f"imported {what}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_import(args) -> int:
    """import runs from TensorBoard logs or an MLflow tracking store, or a model as a graph

    tensorboard LOGDIR: every folder with event files is a run, every scalar tag a series, with
    its steps and wall times (read with TensorBoard's own reader; TensorFlow is not needed).
    mlflow URI: every run of a folder store (./mlruns) or a database (sqlite:///mlflow.db), with
    its params as the run's config, its tags and its metric histories. Importing again skips
    unchanged runs and rewrites changed ones in place: nothing is duplicated.

    model SOURCE -o graph.json: a PyTorch model or an ONNX file as a graph with its weights
    (see `trainbench import model --help`)."""
    store = _store(args)
    progress = _ImportProgress(args.events)
    try:
        if args.source == "tensorboard":
            from engine.importers.tensorboard import import_logdir

            result, source = import_logdir(store, args.logdir, progress), args.logdir
        else:
            from engine.importers.mlflow import import_store

            result, source = import_store(store, args.uri, progress), args.uri
    finally:
        progress.close()
    progress.events.emit("log", level="info", message=result.line(source))
    print(result.line(source), file=sys.stderr)
    if args.json:
        print(json.dumps(result.__dict__, indent=2))
    return 0


def cmd_capsule(args) -> int:
    """write a run's reproducibility capsule to one file

    One JSON file (run-N.tbcapsule by default): the run's normalised spec (or a script's
    command), what every attempt recorded as it started (git commit, branch and uncommitted
    diff; Python, torch, CUDA, cuDNN, NCCL and every package; host, devices, world size, seeds,
    a data fingerprint), its summary, and the SHA-256 of its final checkpoint and artifacts.
    `trainbench run --from-capsule FILE` runs it again."""
    store = _store(args, readonly=True)
    out = capsule.export(store, args.run, Path(args.out or f"run-{args.run}.tbcapsule"))
    if not store.capsules(args.run):
        print(
            f"note: run {args.run} recorded no capsule (it ran before capsules); the spec is written",
            file=sys.stderr,
        )
    print(out)
    return 0


def cmd_script_agent(args) -> int:
    """The elastic agent of a multi-process script run (see engine.scripts.run_agent)."""
    from engine.scripts import run_agent
    from engine.store import default_db_path

    return run_agent(str(Path(args.db) if args.db else default_db_path()), args.run)


def cmd_gui(args) -> int:
    """open the desktop app (what `trainbench` with no command does)"""
    from app.main import main as gui_main

    return gui_main([])


if __name__ == "__main__":
    sys.exit(main())
