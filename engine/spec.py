"""The run spec: one versioned JSON document that describes a run completely.

Sections are declared with `Field`s, like op parameters, so validation, defaults, the GUI's
run form and the README's table come from one place. `load_spec`/`validate_spec` return a
normalised document: every default filled in, the model graph inline, file paths absolute,
so the copy stored with a run reproduces it without the files it came from.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from engine.errors import GraphError, SpecError
from engine.fields import REQUIRED, Field, check_fields, join
from engine.jsonfile import read_json

SCHEMA_VERSION = 1

DATA_SOURCES = (
    "digits",
    "wine",
    "breast_cancer",
    "synthetic_classification",
    "synthetic_regression",
    "csv",
    "images",
    "text",
)
FILE_SOURCES = {"csv", "images", "text"}

SECTIONS: dict[str, tuple[Field, ...]] = {
    "data": (
        Field("source", "choice", REQUIRED, "built-in data set or a kind of user file", choices=DATA_SOURCES),
        Field(
            "path",
            "str",
            None,
            "the file or folder (csv, images, text); relative to the spec file",
            optional=True,
        ),
        Field("target", "str", None, "csv: the target column (default: the last column)", optional=True),
        Field(
            "val_fraction",
            "float",
            0.2,
            "share of samples held out for validation",
            min=0,
            max=0.9,
            min_exclusive=True,
        ),
        Field("split_seed", "int", 0, "seed of the train/validation split", min=0),
        Field("image_size", "ints", [32, 32], "images: resize to height, width", min=1),
        Field("grayscale", "bool", False, "images: read as one channel"),
        Field("context", "int", 64, "text: tokens (bytes) per training sample", min=2),
        Field("samples", "int", 2000, "synthetic: number of samples", min=10),
        Field("features", "int", 20, "synthetic: number of features", min=1),
        Field("classes", "int", 3, "synthetic classification: number of classes", min=2),
        Field(
            "noise",
            "float",
            0.1,
            "synthetic: label noise (classification) or output noise (regression)",
            min=0,
        ),
    ),
    "task": (
        Field("kind", "choice", "train", "what the run does", choices=("train", "prune", "distill")),
        Field(
            "objective",
            "choice",
            "auto",
            "auto picks from the data: classes → classification, text → language model",
            choices=("auto", "classification", "regression", "language_model"),
        ),
    ),
    "optim": (
        Field("name", "choice", "adamw", "optimizer", choices=("sgd", "adam", "adamw")),
        Field("lr", "float", 1e-3, "peak learning rate", min=0, max=10, min_exclusive=True),
        Field("weight_decay", "float", 0.0, "decoupled for adamw, L2 for sgd and adam", min=0, max=1),
        Field("momentum", "float", 0.9, "sgd momentum", min=0, max=0.999),
        Field("betas", "floats", [0.9, 0.999], "adam/adamw betas", min=0, max=0.9999),
        Field(
            "grad_clip",
            "float",
            None,
            "clip the global gradient norm to this value",
            min=0,
            min_exclusive=True,
            optional=True,
        ),
    ),
    "schedule": (
        Field("name", "choice", "constant", "learning-rate schedule", choices=("constant", "step", "cosine")),
        Field("warmup_steps", "int", 0, "linear warm-up from 0 over this many steps", min=0),
        Field("step_size", "int", 1000, "step: multiply by gamma every this many steps", min=1),
        Field("gamma", "float", 0.1, "step: the factor", min=0, max=1, min_exclusive=True),
        Field("min_lr_ratio", "float", 0.0, "cosine: final lr as a fraction of the peak", min=0, max=1),
    ),
    "train": (
        Field("epochs", "int", 10, "passes over the training data", min=1, max=100000),
        Field(
            "max_steps",
            "int",
            None,
            "stop after this many optimizer steps (overrides epochs)",
            min=1,
            optional=True,
        ),
        Field("batch_size", "int", 64, "samples per device per micro-batch", min=1),
        Field("grad_accum", "int", 1, "micro-batches per optimizer step", min=1, max=1024),
        Field(
            "precision",
            "choice",
            "fp32",
            "bf16 autocast (CPU, CUDA) or fp16 with a grad scaler (CUDA)",
            choices=("fp32", "bf16", "fp16"),
        ),
        Field("eval_every", "int", 0, "evaluate every N steps (0: at the end of every epoch)", min=0),
        Field("eval_batch_size", "int", 512, "samples per evaluation batch", min=1),
        Field("seed", "int", 0, "seeds weights, shuffling and dropout", min=0),
        Field("deterministic", "bool", False, "use deterministic kernels (slower)"),
    ),
    "checkpoint": (
        Field("every", "int", 0, "save every N steps (0: at the end of every epoch)", min=0),
        Field("keep", "int", 3, "periodic checkpoints kept besides the last", min=1, max=1000),
    ),
    "hardware": (
        Field(
            "device",
            "choice",
            "auto",
            "auto: CUDA when present, else CPU",
            choices=("auto", "cpu", "cuda", "mps"),
        ),
        Field(
            "gpus", "ints", None, "CUDA device indices to use (default: all visible)", min=0, optional=True
        ),
        Field(
            "strategy",
            "choice",
            "auto",
            "auto: single on one device, DDP on several",
            choices=("auto", "single", "ddp", "fsdp"),
        ),
    ),
}

TOP_LEVEL = (
    Field("schema", "int", SCHEMA_VERSION, "spec format version", min=1),
    Field("name", "str", "run", "a short name shown in run lists"),
    Field("description", "str", "", "free text"),
    Field("tags", "any", [], "labels for filtering"),
    Field("model", "any", REQUIRED, "the model graph, inline or a path to a graph JSON file"),
)

# Migrations from schema N to N+1, applied in order; each takes and returns a document.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}

# Checks that need more than one field, run after field validation: (doc, problems) -> None.
CROSS_CHECKS: list[Callable[[dict, list], None]] = []


def load_spec(path: str | Path) -> dict:
    """Read, migrate and validate a spec file; raises SpecError (or DataError for the file)."""
    path = Path(path)
    return validate_spec(read_json(path), base_dir=path.parent)


def validate_spec(doc: dict, base_dir: str | Path | None = None) -> dict:
    """Return the normalised spec, or raise SpecError listing every problem with its path."""
    if not isinstance(doc, dict):
        raise SpecError.at("", f"a spec must be a JSON object, got {type(doc).__name__}")
    doc = migrate(copy.deepcopy(doc))
    base = Path(base_dir) if base_dir else Path.cwd()
    problems: list[tuple[str, str]] = []

    top = {k: v for k, v in doc.items() if k not in SECTIONS}
    out = check_fields(TOP_LEVEL, top, "", problems)
    for name, fields in SECTIONS.items():
        out[name] = check_fields(fields, doc.get(name, {}), name, problems)

    if not isinstance(out.get("tags"), list) or not all(isinstance(t, str) for t in out.get("tags", [])):
        problems.append(("tags", "must be a list of strings"))
    out["model"] = _resolve_model(doc.get("model"), base, problems)
    _check_data(out["data"], base, problems)
    for check in CROSS_CHECKS:
        check(out, problems)
    if problems:
        raise SpecError(problems)
    return out


def migrate(doc: dict) -> dict:
    version = doc.get("schema", SCHEMA_VERSION)
    if not isinstance(version, int) or version < 1:
        raise SpecError.at("schema", f"must be a whole number >= 1, got {version!r}")
    if version > SCHEMA_VERSION:
        raise SpecError.at(
            "schema",
            f"version {version} is newer than this Trainbench understands ({SCHEMA_VERSION}); upgrade Trainbench",
        )
    while version < SCHEMA_VERSION:
        doc = MIGRATIONS[version](doc)
        version += 1
        doc["schema"] = version
    return doc


def _resolve_model(model, base: Path, problems) -> dict | None:
    from engine.graph.model import Graph
    from engine.graph.shapes import analyze

    if model is None:
        return None  # reported as required already
    if isinstance(model, str):
        path = (base / model).resolve()
        try:
            model = read_json(path)
        except Exception as err:  # noqa: BLE001 - reported as a spec problem with the file's reason
            problems.append(("model", str(err)))
            return None
    try:
        graph = Graph.from_dict(model)
    except GraphError as err:
        problems.extend((join("model", node) if node else "model", msg) for node, msg in err.problems)
        return None
    problems.extend((join("model", node) if node else "model", msg) for node, msg in analyze(graph).problems)
    return graph.to_dict()


def _check_data(data: dict, base: Path, problems) -> None:
    source = data.get("source")
    if source in FILE_SOURCES:
        if not data.get("path"):
            problems.append(("data.path", f"is required for source {source!r}"))
        else:
            data["path"] = str((base / data["path"]).resolve())
    elif data.get("path"):
        problems.append(
            ("data.path", f"is only used by file sources ({', '.join(sorted(FILE_SOURCES))}), not {source!r}")
        )


def dump_fields() -> dict:
    """Every spec field as JSON-friendly dicts, for docs and non-Python clients."""
    from engine.fields import as_dict

    return {"": [as_dict(f) for f in TOP_LEVEL], **{k: [as_dict(f) for f in v] for k, v in SECTIONS.items()}}
