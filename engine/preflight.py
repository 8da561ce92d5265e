"""What a run would refuse, found before it starts: `trainbench validate` gives run's verdict.

`preflight(spec)` takes a validated spec (`engine.spec.load_spec`) and checks, cheaply and
without torch or scikit-learn, everything a run checks before its first step:

  parent    a prune/distill spec's parent run, when a store is given (`engine.lineage`)
  weights   model.init_from's run or file, matched to the model (`engine.weights`; torch)
  data      the data set as `engine.data.describe` sees it: the same readers, with the same
            messages, as the loaders (CSV cells, image headers and a few decodes per class,
            text size and encoding, a synthetic set's parameters)
  model     its input takes one sample and its output matches the target (`check_model_fits`)
  batch     the global batch fits into the training split (`check_global_batch`)
  memory    the estimate fits the free memory of the device (an error unless `force`)

and warns when the schedule's warm-up or the evaluation or checkpoint cadence is longer than
the run. Every problem comes at once in one SpecError, each under its spec path; a run calls
this before it creates its row, so a refused spec leaves no run behind.

With `measure`, the data set is loaded and the devices are asked through torch: exact bytes
and GPU free memory, at the cost of importing both (seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.data import DataInfo, Dataset, as_info
from engine.errors import DataError, SpecError
from engine.fields import cap_problems
from engine.graph.model import Graph
from engine.graph.shapes import Analysis, analyze
from engine.memory import MemoryEstimate, device_plan, estimate_memory


@dataclass
class Report:
    """A spec that passed, with what `trainbench validate` prints about it."""

    spec: dict  # completed: a prune/distill spec has its parent's model and data
    analysis: Analysis | None  # None: a prune/distill spec whose parent was not looked up
    data: DataInfo | None
    memory: MemoryEstimate | None
    total_steps: int | None  # optimizer steps of the run (of each fine-tuning, for a prune run)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (spec path, message)


def preflight(spec: dict, store=None, force: bool = False, measure: bool = False) -> Report:
    """Check a validated spec as a run would; raises SpecError with every problem."""
    if spec["task"]["kind"] != "train" and store is not None:
        from engine.lineage import resolve  # torch: the parent's checkpoint is read

        spec = resolve(spec, store)
    problems: list[tuple[str, str]] = []
    if spec["model"] is not None and spec["model"].get("init_from") is not None:
        spec, init_problems = _first_weights(spec, store)
        problems.extend(init_problems)
    analysis = analyze(Graph.from_dict(spec["model"])) if spec["model"] is not None else None
    data = None
    if spec["data"]["source"] is not None:
        try:
            data = _data(spec, measure)
        except DataError as err:
            problems.append(_data_problem(spec["data"], str(err)))
    if analysis is not None and data is not None:
        problems.extend(model_misfits(analysis, data))
    report = Report(spec, analysis, data, None, None)
    try:
        plan = _plan(spec, measure)
    except SpecError as err:
        problems.extend(err.problems)
        plan = None
    if plan is not None and data is not None:
        problems.extend(_batch_problems(spec, data, plan.world_size))
        report.total_steps = _total_steps(spec, data, plan.world_size)
        report.warnings = cadence_warnings(spec, report.total_steps)
    if plan is not None and analysis is not None and not problems:
        report.memory = estimate_memory(spec, analysis, data, plan)
        misfit = report.memory.misfit()
        if misfit and not force:
            problems.append(misfit)
        elif misfit:
            report.warnings.append((misfit[0], misfit[1].replace(" (--force starts it anyway)", " (forced)")))
    if problems:
        raise SpecError(cap_problems(problems))
    return report


def _first_weights(spec: dict, store) -> tuple[dict, list[tuple[str, str]]]:
    """model.init_from: a run id resolved to its checkpoint (with a store), then the weights
    matched against the model by name and shape (torch, on the meta device)."""
    from engine import weights

    try:
        if store is not None:
            spec = {**spec, "model": weights.resolve(spec["model"], store)}
        weights.check(spec["model"])
    except SpecError as err:
        return spec, err.problems
    return spec, []


def _data(spec: dict, measure: bool) -> DataInfo:
    from engine.data import describe, load_dataset

    objective = spec["task"]["objective"]
    if measure:
        return load_dataset(spec["data"], objective).info()
    return describe(spec["data"], objective)


def _data_problem(data: dict, message: str) -> tuple[str, str]:
    """(spec path, message) of a data error: the generator's field for a synthetic set (its
    messages start with it), task.objective for a mismatch, the file for file sources."""
    head, _, rest = message.partition(": ")
    if head.startswith("data.") and " " not in head:
        return head, rest
    if "task.objective" in message:
        return "task.objective", message
    return ("data.path" if data.get("path") else "data.source"), message


def _plan(spec: dict, measure: bool):
    plan = None if measure else device_plan(spec)
    if plan is None:
        from engine.strategies.world import plan_world  # torch

        plan = plan_world(spec)
    return plan


def check_model_fits(analysis: Analysis, data: Dataset | DataInfo) -> None:
    """The graph's input must take one data sample and its output must match the target;
    raises SpecError at `model`. What a task checks before training, and the preflight too."""
    problems = model_misfits(analysis, as_info(data))
    if problems:
        raise SpecError(problems)


def model_misfits(analysis: Analysis, data: DataInfo) -> list[tuple[str, str]]:
    problems = []
    inp, out = analysis.input_type, analysis.output_type
    sample = f"{'×'.join(map(str, data.input_shape))} {data.input_dtype}"
    if inp is None:
        problems.append(("model", "needs exactly one Input node"))
    elif inp.shape != data.input_shape or inp.dtype != data.input_dtype:
        problems.append(("model", f"the Input takes {inp} but {data.name} samples are {sample}"))
    if out is not None:
        want = {
            "classification": (data.output_size,),
            "regression": (data.output_size,),
            "language_model": (data.tokens_per_sample, data.output_size),
        }[data.objective]
        if out.shape != want:
            what = {
                "classification": f"one score per class ({data.output_size} classes)",
                "regression": f"{data.output_size} target value(s)",
                "language_model": f"{want[0]}×{data.output_size} (a next-byte score for every position)",
            }[data.objective]
            problems.append(("model", f"the output is {out}, but {data.name} needs {what}"))
    return problems


def check_global_batch(samples: int, batch_size: int, grad_accum: int, world_size: int) -> None:
    """Every optimizer step takes `batch × accumulation × processes` distinct training samples."""
    global_batch = batch_size * grad_accum * world_size
    if global_batch > samples:
        raise SpecError.at(
            "train.batch_size",
            f"the global batch ({batch_size} × {grad_accum} accumulation × {world_size} processes = "
            f"{global_batch}) exceeds the {samples} training samples",
        )


def _batch_problems(spec: dict, data: DataInfo, world_size: int) -> list[tuple[str, str]]:
    train = spec["train"]
    try:
        check_global_batch(data.train_samples, train["batch_size"], train["grad_accum"], world_size)
    except SpecError as err:
        return err.problems
    return []


def _epochs(spec: dict) -> int:
    """Epochs of one training phase: a prune run fine-tunes for prune.finetune_epochs."""
    if spec["task"]["kind"] == "prune" and spec["prune"]["finetune_epochs"] is not None:
        return spec["prune"]["finetune_epochs"]
    return spec["train"]["epochs"]


def _total_steps(spec: dict, data: DataInfo, world_size: int) -> int | None:
    train = spec["train"]
    global_batch = train["batch_size"] * train["grad_accum"] * world_size
    per_epoch = data.train_samples // global_batch
    if per_epoch < 1:
        return None  # reported as a batch problem
    return train["max_steps"] or _epochs(spec) * per_epoch


def cadence_warnings(spec: dict, total_steps: int | None) -> list[tuple[str, str]]:
    """Settings that take effect later than the run ends: legal, but rarely what was meant."""
    if not total_steps:
        return []
    out = []
    warmup = spec["schedule"]["warmup_steps"]
    if warmup > total_steps:
        out.append(
            (
                "schedule.warmup_steps",
                f"{warmup} warm-up steps in a run of {total_steps}: the learning rate never reaches "
                f"optim.lr; use at most ~{max(1, total_steps // 10)}",
            )
        )
    every = spec["train"]["eval_every"]
    if every > total_steps:
        out.append(
            (
                "train.eval_every",
                f"evaluates every {every} steps in a run of {total_steps}: only the final evaluation "
                "happens (0 evaluates after every epoch)",
            )
        )
    every = spec["checkpoint"]["every"]
    if every > total_steps:
        out.append(
            (
                "checkpoint.every",
                f"saves every {every} steps in a run of {total_steps}: only the final checkpoint is "
                "written (0 saves after every epoch)",
            )
        )
    schedule = spec["schedule"]
    if schedule["name"] == "step" and schedule["step_size"] > total_steps:
        out.append(
            (
                "schedule.step_size",
                f"the step schedule decays every {schedule['step_size']} steps in a run of {total_steps}: "
                "the learning rate never changes",
            )
        )
    return out
