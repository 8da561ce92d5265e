"""The run spec: one versioned JSON document that describes a run completely.

Sections are declared with `Field`s, like op parameters, so validation, defaults, the GUI's
run form and the README's table come from one place. `load_spec`/`validate_spec` return a
normalised document: every default filled in, the model graph inline, file paths absolute,
so the copy stored with a run reproduces it without the files it came from.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from engine.errors import DataError, GraphError, SpecError
from engine.fields import (
    MAX_PROBLEMS,
    REQUIRED,
    Field,
    cap_problems,
    check_fields,
    join,
    listed,
    number_text,
    shorten,
    shown,
)
from engine.jsonfile import MAX_DEPTH, read_json, too_deep

SCHEMA_VERSION = 1

# Ceilings for counts that only ever grow a run's time or memory: far beyond what trains on
# one machine, low enough that no value passes validation to exhaust memory first (a seed of
# 1e308, 10^8 synthetic samples). The memory-fit check does the rest.
MAX_STEPS = 10**9
MAX_SEED = 2**32 - 1
MAX_RUN_ID = 2**63 - 1  # SQLite's largest integer
MAX_BATCH = 1 << 20
MAX_NODES = 1024  # machines of one run

HEALTH_EVERY = 50  # health.every's default: measured by tests/benchmarks/bench_health.py (README)

DATA_SOURCES = (
    "digits",
    "wine",
    "breast_cancer",
    "synthetic_classification",
    "synthetic_regression",
    "csv",
    "images",
    "cifar",
    "idx",
    "numpy",
    "parquet",
    "hf_disk",
    "text",
)
FILE_SOURCES = {"csv", "images", "cifar", "idx", "numpy", "parquet", "hf_disk", "text"}
SYNTHETIC = ("synthetic_classification", "synthetic_regression")
# Sources whose samples are images: the image fields (size, resize, normalization, augmentation)
# apply to them. Parquet tables and `datasets` folders hold images, text or features.
IMAGE_SOURCES = ("images", "cifar", "idx", "numpy", "parquet", "hf_disk")
TABLE_SOURCES = ("csv", "parquet", "hf_disk")
TEXT_SOURCES = ("text", "parquet", "hf_disk")  # text for a language model


def _parent_checkpoint() -> Field:
    return Field(
        "checkpoint",
        "str",
        None,
        "the parent's checkpoint file this run starts from; filled in when the run is created",
        optional=True,
    )


SECTIONS: dict[str, tuple[Field, ...]] = {
    "data": (
        Field("source", "choice", REQUIRED, "built-in data set or a kind of user file", choices=DATA_SOURCES),
        Field(
            "path",
            "str",
            None,
            "the file or folder; relative to the spec file. images: a folder with one sub-folder per "
            "class; cifar: the folder of the binary batches (*.bin); idx: the folder or the images file; "
            "numpy: an .npz, or an .npy file or folder of x/y .npy files; parquet: a .parquet file; "
            "hf_disk: a `datasets` save_to_disk folder; text: a file, a folder of text files, a .jsonl "
            "or a .parquet file",
            optional=True,
            when={"source": tuple(sorted(FILE_SOURCES))},
            traits={"path"},
        ),
        Field(
            "target",
            "str",
            None,
            "the target column (default: csv the last column, parquet and hf_disk 'label')",
            optional=True,
            when={"source": TABLE_SOURCES},
        ),
        Field(
            "val_fraction",
            "float",
            0.2,
            "share of samples held out for validation (cifar, idx and hf_disk use their own test split "
            "when they have one; text holds out the tail)",
            min=0,
            max=0.9,
            min_exclusive=True,
            label="Validation share",
        ),
        Field(
            "split_seed",
            "int",
            0,
            "seed of the train/validation split",
            min=0,
            max=MAX_SEED,
            label="Split seed",
        ),
        Field(
            "num_workers",
            "int",
            None,
            "processes that decode and augment samples beside training (default: half the cores, up to 8; "
            "0: in the training process); sets held in memory need none",
            min=0,
            max=64,
            optional=True,
            label="Workers",
        ),
        Field(
            "cache",
            "choice",
            "none",
            "images: decode every epoch (none), once into memory, or once into a file in the cache folder "
            "(disk; 8-bit, before augmentation)",
            choices=("none", "memory", "disk"),
            when={"source": IMAGE_SOURCES},
        ),
        Field(
            "on_bad_file",
            "choice",
            "fail",
            "images that cannot be decoded: fail (one error listing them) or skip them (the run log says "
            "which)",
            choices=("fail", "skip"),
            label="Bad files",
            when={"source": IMAGE_SOURCES},
        ),
        Field(
            "image_size",
            "ints",
            None,
            "images: resize to height, width (one number: square; default: the data's own size — for "
            "image files, the first image's)",
            min=1,
            max=4096,
            max_items=2,
            optional=True,
            when={"source": IMAGE_SOURCES},
        ),
        Field(
            "resize",
            "choice",
            "stretch",
            "images: stretch to image_size, crop (scale the shorter side, cut the centre) or pad "
            "(scale the longer side, pad with black)",
            choices=("stretch", "crop", "pad"),
            when={"source": IMAGE_SOURCES},
        ),
        Field("grayscale", "bool", False, "images: read as one channel", when={"source": IMAGE_SOURCES}),
        Field(
            "normalize",
            "bool",
            True,
            "images: subtract the mean and divide by the std per channel (data.mean / data.std, or "
            "computed on a sample of the training split and stored with the run)",
            when={"source": IMAGE_SOURCES},
        ),
        Field(
            "mean",
            "floats",
            None,
            "images: per-channel mean of pixels in [0, 1] (default: computed)",
            min=-1e6,
            max=1e6,
            max_items=4,
            optional=True,
            when={"source": IMAGE_SOURCES},
        ),
        Field(
            "std",
            "floats",
            None,
            "images: per-channel standard deviation (default: computed)",
            min=0,
            max=1e6,
            min_exclusive=True,
            max_items=4,
            optional=True,
            when={"source": IMAGE_SOURCES},
        ),
        Field(
            "augment",
            "any",
            {},
            "images, training split only: an object of transforms, each true (defaults) or its "
            "parameters — random_resized_crop {scale, ratio}, horizontal_flip {p}, color_jitter "
            "{brightness, contrast, saturation, hue}, random_erasing {p, scale, ratio, value}",
            when={"source": IMAGE_SOURCES},
        ),
        Field(
            "encoding",
            "str",
            "utf-8",
            "csv: the text encoding (utf-8, latin-1, cp1252, …)",
            when={"source": ("csv",)},
        ),
        Field(
            "delimiter",
            "choice",
            "auto",
            "csv: the field separator (auto: detected)",
            choices=("auto", ",", ";", "tab", "space", "|"),
            when={"source": ("csv",)},
        ),
        Field(
            "missing",
            "choice",
            "error",
            "tables: empty or NA cells are an error (naming each), drop their rows, or take the training "
            "split's mean (the most frequent value of a categorical column)",
            choices=("error", "drop", "mean"),
            when={"source": TABLE_SOURCES},
        ),
        Field(
            "categorical",
            "any",
            None,
            "tables: feature columns to one-hot encode (default: detected, a non-numeric column with few "
            "distinct values)",
            optional=True,
            when={"source": TABLE_SOURCES},
        ),
        Field(
            "x_key",
            "str",
            "x",
            "numpy: the inputs' key in the .npz (or the .npy file's name)",
            when={"source": ("numpy",)},
        ),
        Field(
            "y_key",
            "str",
            "y",
            "numpy: the targets' key in the .npz (or the .npy file's name)",
            when={"source": ("numpy",)},
        ),
        Field(
            "text_field",
            "str",
            "text",
            "text from .jsonl or Parquet: the field or column holding the text",
            when={"source": TEXT_SOURCES},
        ),
        Field(
            "tokenizer",
            "str",
            "byte",
            "text: byte (256 byte values), bpe (trained on the training split) or the path of a "
            "tokenizer.json",
            when={"source": TEXT_SOURCES},
        ),
        Field(
            "vocab_size",
            "int",
            4096,
            "bpe: the vocabulary, and the width the model's head must have",
            min=258,
            max=1 << 20,
            when={"tokenizer": ("bpe",)},
            label="Vocabulary size",
        ),
        Field(
            "context",
            "int",
            64,
            "text: tokens per training sample",
            min=2,
            max=1 << 16,
            when={"source": TEXT_SOURCES},
        ),
        Field(
            "samples",
            "int",
            2000,
            "synthetic: number of samples",
            min=10,
            max=1_000_000,
            when={"source": SYNTHETIC},
        ),
        Field(
            "features",
            "int",
            20,
            "synthetic: number of features",
            min=1,
            max=10_000,
            when={"source": SYNTHETIC},
        ),
        Field(
            "classes",
            "int",
            3,
            "synthetic classification: number of classes",
            min=2,
            max=1000,
            when={"source": ("synthetic_classification",)},
        ),
        Field(
            "noise",
            "float",
            0.1,
            "synthetic: the share of labels flipped (classification, at most 1) or the output noise's "
            "standard deviation (regression)",
            min=0,
            max=1000,
            when={"source": SYNTHETIC},
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
        Field(
            "lr",
            "float",
            1e-3,
            "peak learning rate",
            min=0,
            max=10,
            min_exclusive=True,
            label="Learning rate",
        ),
        Field("weight_decay", "float", 0.0, "decoupled for adamw, L2 for sgd and adam", min=0, max=1),
        Field("momentum", "float", 0.9, "sgd momentum", min=0, max=0.999, when={"name": ("sgd",)}),
        Field(
            "betas",
            "floats",
            [0.9, 0.999],
            "adam/adamw betas",
            min=0,
            max=0.9999,
            when={"name": ("adam", "adamw")},
        ),
        Field(
            "grad_clip",
            "float",
            None,
            "clip the global gradient norm to this value",
            min=0,
            max=1e6,
            min_exclusive=True,
            optional=True,
            label="Gradient clip",
        ),
        Field(
            "lr_mult",
            "any",
            {},
            'learning-rate factors by node id, e.g. {"backbone": 0.1} for a slower backbone',
            label="LR multipliers",
        ),
    ),
    "schedule": (
        Field("name", "choice", "constant", "learning-rate schedule", choices=("constant", "step", "cosine")),
        Field(
            "warmup_steps",
            "int",
            0,
            "linear warm-up from 0 over this many steps",
            min=0,
            max=MAX_STEPS,
            label="Warm-up steps",
        ),
        Field(
            "step_size",
            "int",
            1000,
            "step: multiply by gamma every this many steps",
            min=1,
            max=MAX_STEPS,
            when={"name": ("step",)},
        ),
        Field(
            "gamma",
            "float",
            0.1,
            "step: the factor",
            min=0,
            max=1,
            min_exclusive=True,
            when={"name": ("step",)},
        ),
        Field(
            "min_lr_ratio",
            "float",
            0.0,
            "cosine: final lr as a fraction of the peak",
            min=0,
            max=1,
            label="Min LR ratio",
            when={"name": ("cosine",)},
        ),
    ),
    "train": (
        Field("epochs", "int", 10, "passes over the training data", min=1, max=100000),
        Field(
            "max_steps",
            "int",
            None,
            "stop after this many optimizer steps (overrides epochs)",
            min=1,
            max=MAX_STEPS,
            optional=True,
            label="Max steps",
        ),
        Field("batch_size", "int", 64, "samples per device per micro-batch", min=1, max=MAX_BATCH),
        Field(
            "grad_accum", "int", 1, "micro-batches per optimizer step", min=1, max=1024, label="Accumulation"
        ),
        Field(
            "precision",
            "choice",
            "fp32",
            "bf16 autocast (CPU, CUDA) or fp16 with a grad scaler (CUDA)",
            choices=("fp32", "bf16", "fp16"),
        ),
        Field(
            "eval_every",
            "int",
            0,
            "evaluate every N steps (0: at the end of every epoch)",
            min=0,
            max=MAX_STEPS,
            label="Evaluate every",
        ),
        Field(
            "eval_batch_size",
            "int",
            512,
            "samples per evaluation batch",
            min=1,
            max=MAX_BATCH,
            label="Eval batch size",
        ),
        Field(
            "eval_batches",
            "int",
            0,
            "evaluate on this many batches spread over the validation split (0: the whole split); "
            "like nanoGPT's eval_iters, for large validation splits",
            min=0,
            max=MAX_STEPS,
            label="Eval batches",
        ),
        Field("seed", "int", 0, "seeds weights, shuffling and dropout", min=0, max=MAX_SEED),
        Field("deterministic", "bool", False, "use deterministic kernels (slower)"),
        Field(
            "freeze",
            "any",
            [],
            "node ids whose parameters get no gradient; a Repeat's first k copies as node[:k]",
        ),
        Field(
            "compile",
            "choice",
            "off",
            "torch.compile the model (each Repeat copy and TransformerBlock under fsdp): default, "
            "reduce-overhead (CUDA graphs) or max-autotune (tries kernels; slow to start); a compile that "
            "fails is logged and the run trains uncompiled",
            choices=("off", "default", "reduce-overhead", "max-autotune"),
        ),
    ),
    "checkpoint": (
        Field(
            "every",
            "int",
            0,
            "save every N steps (0: at the end of every epoch)",
            min=0,
            max=MAX_STEPS,
            label="Save every",
        ),
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
            "gpus",
            "ints",
            None,
            "CUDA device indices to use (default: all visible)",
            min=0,
            max=1023,
            max_items=1024,
            optional=True,
            label="GPUs",
            when={"device": ("auto", "cuda")},
        ),
        Field(
            "strategy",
            "choice",
            "auto",
            "auto: single on one device, DDP on several",
            choices=("auto", "single", "ddp", "fsdp"),
        ),
        Field(
            "nproc_per_node",
            "int",
            None,
            "processes per machine (default: one per selected GPU, or 1 on CPU)",
            min=1,
            max=1024,
            optional=True,
            label="Processes/machine",
        ),
        Field("nnodes", "any", "1", "machines: N, or MIN:MAX for an elastic run", label="Machines"),
        Field(
            "node_rank",
            "int",
            0,
            "this machine's place (0: the launching machine, which holds the run store)",
            min=0,
            max=MAX_NODES - 1,
            label="Node rank",
        ),
        Field(
            "rdzv_endpoint",
            "str",
            "",
            "HOST:PORT of the launching machine, where the others meet (needed for several machines)",
            label="Rendezvous",
        ),
        Field(
            "rdzv_id",
            "str",
            "",
            "rendezvous id shared by the machines (default: trainbench-run-<id>)",
            label="Rendezvous id",
        ),
        Field(
            "fsdp_sharding",
            "choice",
            "full_shard",
            "fsdp: shard parameters, gradients and optimizer state (full_shard), keep parameters "
            "gathered between forward and backward (shard_grad_op), or replicate (no_shard)",
            choices=("full_shard", "shard_grad_op", "no_shard"),
            label="FSDP sharding",
            when={"strategy": ("fsdp",)},
        ),
        Field(
            "cpu_offload",
            "bool",
            False,
            "fsdp on CUDA: keep the shards in CPU memory between uses",
            label="CPU offload",
            when={"strategy": ("fsdp",)},
        ),
        Field(
            "threads",
            "int",
            None,
            "CPU threads per engine process (default: the machine's cores shared among the runs live on it)",
            min=1,
            max=4096,
            optional=True,
            label="CPU threads",
        ),
        Field(
            "activation_checkpointing",
            "bool",
            False,
            "recompute Repeat / TransformerBlock activations in backward: less memory, ~30% more compute",
            label="Act. checkpointing",
        ),
        Field(
            "matmul_precision",
            "choice",
            "highest",
            "fp32 matrix products: highest (full fp32), high (TF32 on Ampere and newer GPUs), medium "
            "(bf16 inside)",
            choices=("highest", "high", "medium"),
            label="Matmul precision",
        ),
        Field(
            "peak_tflops",
            "float",
            None,
            "the device's peak TFLOP/s at the run's precision, for perf/mfu (default: NVIDIA's figure "
            "for known GPUs, a measured matmul peak on a CPU)",
            min=0,
            max=1e6,
            min_exclusive=True,
            optional=True,
            label="Peak TFLOP/s",
        ),
    ),
    "prune": (
        Field(
            "parent",
            "int",
            None,
            "id of the completed run to prune (required for a prune run)",
            min=1,
            max=MAX_RUN_ID,
            optional=True,
            traits={"run"},
        ),
        Field(
            "method",
            "choice",
            "l1",
            "structured (removes whole channels, so the model gets smaller and faster): channels ranked by "
            "l1 or l2 weight norm, taylor (|weight × gradient|) or random (a baseline); unstructured: "
            "zeroes the smallest individual weights (sparse, same dense size and speed)",
            choices=("l1", "l2", "taylor", "random", "unstructured"),
        ),
        Field(
            "scope",
            "choice",
            "per_layer",
            "per_layer: every layer loses the same share; global: rank across layers (uneven widths)",
            choices=("per_layer", "global"),
        ),
        Field(
            "target",
            "choice",
            "ratio",
            "ratio: remove prune.ratio of the channels (or of the weights, unstructured); params / flops: "
            "search the ratio that meets prune.max_params / prune.max_flops",
            choices=("ratio", "params", "flops"),
        ),
        Field(
            "ratio",
            "float",
            0.5,
            "share of channels (structured) or weights (unstructured) to remove",
            min=0,
            max=1,
            min_exclusive=True,
            max_exclusive=True,
        ),
        Field(
            "max_params",
            "int",
            None,
            "the parameter budget",
            min=1,
            max=2**63 - 1,
            optional=True,
            label="Max params",
            when={"target": ("params",)},
        ),
        Field(
            "max_flops",
            "int",
            None,
            "the budget of FLOPs per sample",
            min=1,
            max=2**63 - 1,
            optional=True,
            label="Max FLOPs",
            when={"target": ("flops",)},
        ),
        Field(
            "steps",
            "int",
            1,
            "1: one-shot; N: prune in N equal steps, fine-tuning after each",
            min=1,
            max=100,
        ),
        Field(
            "finetune_epochs",
            "int",
            None,
            "fine-tuning epochs after each step (0: none; default: train.epochs); the train, optim and "
            "schedule sections govern the fine-tuning",
            min=0,
            max=100000,
            optional=True,
            label="Fine-tune epochs",
        ),
        Field(
            "keep",
            "any",
            None,
            "node ids never pruned (default: the output head, so the output keeps its size)",
            optional=True,
        ),
        Field(
            "quantize",
            "bool",
            False,
            "also measure dynamic int8 quantization of the Linear/LSTM layers (CPU)",
        ),
        _parent_checkpoint(),
    ),
    "distill": (
        Field(
            "teacher",
            "int",
            None,
            "id of the completed run to learn from (required for a distill run)",
            min=1,
            max=MAX_RUN_ID,
            optional=True,
            traits={"run"},
        ),
        Field(
            "student",
            "choice",
            None,
            "half_width / half_depth shrink the teacher's graph; model: the spec's model is the student "
            "(default: model when one is given, else half_width)",
            choices=("half_width", "half_depth", "model"),
            optional=True,
        ),
        Field(
            "temperature",
            "float",
            4.0,
            "softens both distributions; the soft loss is scaled by T² to keep its gradients comparable",
            min=0,
            max=100,
            min_exclusive=True,
        ),
        Field(
            "alpha",
            "float",
            0.9,
            "weight of the soft (teacher) loss; 1 − alpha weighs the task loss",
            min=0,
            max=1,
        ),
        Field(
            "feature_teacher",
            "str",
            None,
            "feature matching: a teacher node whose output the student learns to reproduce",
            optional=True,
            label="Teacher feature",
        ),
        Field(
            "feature_student",
            "str",
            None,
            "feature matching: the student node mapped onto it through a learned projection",
            optional=True,
            label="Student feature",
        ),
        Field(
            "feature_weight",
            "float",
            1.0,
            "weight of the feature-matching (mean squared error) loss",
            min=0,
            max=1000,
            label="Feature weight",
        ),
        _parent_checkpoint(),
    ),
    "health": (
        Field(
            "enabled",
            "bool",
            True,
            "measure per-node training health: gradient and weight norms, update ratios, activation "
            "statistics; warns of exploding or vanishing gradients and dead units",
            label="Health checks",
        ),
        Field(
            "every",
            "int",
            HEALTH_EVERY,
            "measure every N steps, on that step's first micro-batch (the default keeps the cost under 3% "
            "of training time on the examples)",
            min=1,
            max=MAX_STEPS,
            label="Measure every",
            when={"enabled": (True,)},
        ),
        Field(
            "nodes",
            "any",
            None,
            "node ids to measure (default: every node)",
            optional=True,
            when={"enabled": (True,)},
        ),
        Field(
            "histograms",
            "bool",
            False,
            "also store histograms of each node's weights and gradients",
            when={"enabled": (True,)},
        ),
        Field(
            "histogram_every",
            "int",
            0,
            "histograms every N steps, a multiple of health.every (0: ten times health.every)",
            min=0,
            max=MAX_STEPS,
            label="Histograms every",
            when={"enabled": (True,), "histograms": (True,)},
        ),
    ),
}

# Prune and distill runs take what they omit of these from their parent run (engine.lineage).
INHERITED = {"model": "", "source": "data"}

TOP_LEVEL = (
    Field("schema", "int", SCHEMA_VERSION, "spec format version", min=1),
    Field("name", "str", "run", "a short name shown in run lists"),
    Field("description", "str", "", "free text", traits={"multiline"}),
    Field("tags", "any", [], "labels for filtering"),
    Field("model", "any", REQUIRED, "the model graph, inline or a path to a graph JSON file"),
)

# ------------------------------------------------------------------ the sweep section
# A spec with a `sweep` section is a sweep: the rest of it is every trial's base spec, and
# `params` maps spec fields to the values trials try (engine.sweep runs it).

DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice", "grid")
MAX_CHOICES = 1000
# The sweep's device pool places each trial (engine.sweep.pool): these are not the trials' to vary.
PLACED_BY_SWEEP = frozenset(
    f"hardware.{n}" for n in ("device", "gpus", "nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint")
)

SWEEP: tuple[Field, ...] = (
    Field(
        "params",
        "any",
        REQUIRED,
        'spec field → values to try: {"uniform" | "log_uniform" | "int": [low, high]} or '
        '{"choice" | "grid": [values]}, e.g. {"optim.lr": {"log_uniform": [1e-5, 1]}}',
        label="Parameters",
    ),
    Field("objective", "any", REQUIRED, "the metric a trial is judged by: {metric, direction, value}"),
    Field(
        "trials",
        "int",
        None,
        "trials to run (default: every grid point for the grid sampler, else 20)",
        min=1,
        max=100_000,
        optional=True,
    ),
    Field(
        "timeout",
        "float",
        None,
        "seconds after which no new trial starts (running trials finish)",
        min=0,
        max=10**8,
        min_exclusive=True,
        optional=True,
    ),
    Field(
        "parallel",
        "int",
        1,
        "trials at once; on a CPU they share the cores (hardware.threads = cores / parallel)",
        min=1,
        max=1024,
    ),
    Field("per_gpu", "int", 1, "trials sharing one GPU at a time", min=1, max=64, label="Trials per GPU"),
    Field(
        "sampler",
        "choice",
        "tpe",
        "how trials pick values (Optuna): every grid point, random, or TPE (Bayesian)",
        choices=("grid", "random", "tpe"),
    ),
    Field(
        "pruner",
        "choice",
        "none",
        "stop hopeless trials early on their evaluations: median (below the median of earlier trials at "
        "the same step) or asha (asynchronous successive halving)",
        choices=("none", "median", "asha"),
    ),
    Field("seed", "int", 0, "the sampler's seed", min=0, max=MAX_SEED),
)

OBJECTIVE: tuple[Field, ...] = (
    Field("metric", "str", REQUIRED, "a logged metric, e.g. val/accuracy or val/loss"),
    Field("direction", "choice", "maximize", "whether larger is better", choices=("maximize", "minimize")),
    Field(
        "value",
        "choice",
        "final",
        "final: the metric's last value; best: its best value over the trial",
        choices=("final", "best"),
    ),
)


def spec_field(path: str) -> Field | None:
    """The declaration of `section.name` (None: no such field)."""
    section, _, name = path.partition(".")
    return next((f for f in SECTIONS.get(section, ()) if f.name == name), None)


def check_sweep(sweep, problems: list[tuple[str, str]]) -> dict:
    """Validate a `sweep` section: its own fields, the objective, and every parameter's values
    against the field it sets (its kind and range), so no trial is refused for its values."""
    out = check_fields(SWEEP, sweep, "sweep", problems)
    if not isinstance(sweep, dict):
        return out
    if isinstance(out.get("objective"), dict):
        out["objective"] = check_fields(OBJECTIVE, out["objective"], "sweep.objective", problems)
    elif "objective" in sweep:
        problems.append(
            (
                "sweep.objective",
                f'must be an object like {{"metric": "val/loss"}}, got {shown(out["objective"])}',
            )
        )
    params = out.get("params")
    if params is None:
        return out
    if not isinstance(params, dict) or not params:
        problems.append(("sweep.params", f"must be an object of spec field → values, got {shown(params)}"))
        return out
    out["params"] = {}
    for path, dist in list(params.items())[:MAX_PROBLEMS]:
        where = join("sweep.params", path)
        checked = _check_param(str(path), dist, where, problems)
        if checked is not None:
            out["params"][path] = checked
    if out["sampler"] == "grid":
        for path, dist in out["params"].items():
            if next(iter(dist)) not in ("grid", "choice"):
                problems.append((join("sweep.params", path), "the grid sampler needs a grid or choice list"))
    return out


def _check_param(path: str, dist, where: str, problems: list) -> dict | None:
    field = spec_field(path)
    if field is None:
        problems.append((where, "is not a spec field (section.field, as for --set)"))
        return None
    if path in PLACED_BY_SWEEP:
        problems.append((where, "is set for each trial by the sweep's device pool"))
        return None
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        problems.append((where, f"must be one of {{{', '.join(DISTRIBUTIONS)}: ...}}, got {shown(dist)}"))
        return None
    ((name, values),) = dist.items()
    if name in ("choice", "grid"):
        if not isinstance(values, list) or not values or len(values) > MAX_CHOICES:
            problems.append((where, f"{name} needs a list of 1 to {MAX_CHOICES} values, got {shown(values)}"))
            return None
        checked = []
        for i, v in enumerate(values):
            if not isinstance(v, str | int | float | bool) and v is not None:
                problems.append(
                    (f"{where}.{name}[{i}]", "values must be numbers, strings, true, false or null")
                )
                return None
            value, err = field.check(v)
            if err:
                problems.append((f"{where}.{name}[{i}]", f"{field.name} {err}"))
                return None
            checked.append(value)
        if len(set(map(repr, checked))) != len(checked):
            problems.append((where, f"{name} lists a value twice"))
            return None
        return {name: checked}
    wanted = "int" if name == "int" else "float"
    if field.kind != wanted:
        hint = "int" if field.kind == "int" else "choice"
        problems.append((where, f"{name} needs a {wanted} field; {path} is {field.kind} (use {hint})"))
        return None
    if not isinstance(values, list) or len(values) != 2:
        problems.append((where, f"{name} needs [low, high], got {shown(values)}"))
        return None
    bounds = []
    for i, v in enumerate(values):
        value, err = field.check(v)
        if err:
            problems.append((f"{where}.{name}[{i}]", f"{field.name} {err}"))
            return None
        bounds.append(value)
    low, high = bounds
    if low is None or not low < high:
        problems.append((where, f"needs low < high, got [{number_text(low)}, {number_text(high)}]"))
        return None
    if name == "log_uniform" and low <= 0:
        problems.append((where, f"log_uniform needs low > 0, got {number_text(low)}"))
        return None
    return {name: bounds}


# Fields the model graph itself carries besides its nodes (engine.graph.model, engine.weights);
# declared here for the docs and the CLI's help, validated by the graph model.
MODEL_FIELDS = (
    Field(
        "init_from",
        "any",
        None,
        "first weights: a completed run's id (its final checkpoint) or a .safetensors file (an import's "
        "weights); matched by node id",
        optional=True,
        label="Initial weights",
    ),
    Field(
        "strict",
        "bool",
        True,
        "every tensor must match init_from; false lets new or replaced layers keep fresh weights",
    ),
    Field(
        "tie",
        "any",
        {},
        "shared weights: {parameter: the parameter it is}, e.g. lm_head.weight: embed.weight",
    ),
)

# Migrations from schema N to N+1, applied in order; each takes and returns a document.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}

# Checks that need more than one field, run after field validation: (sections they read,
# check(doc, problems)). A check runs only when the sections it reads (a top-level field
# counts as its own section) passed validation, so it never sees a value of the wrong type.
CROSS_CHECKS: list[tuple[tuple[str, ...], Callable[[dict, list], None]]] = []


def cross_check(*sections: str):
    """Register a check of several fields that reads `sections` of the validated spec."""

    def register(check: Callable[[dict, list], None]):
        CROSS_CHECKS.append((sections, check))
        return check

    return register


def parse_nnodes(text: str) -> tuple[int, int]:
    """`"2"` → (2, 2); `"1:4"` → (1, 4), an elastic run that starts once one machine is there."""
    lo, sep, hi = str(text).partition(":") if isinstance(text, str | int) else ("", "", "")
    try:
        low, high = int(lo), int(hi if sep else lo)
    except ValueError:
        raise SpecError.at("hardware.nnodes", f"must be N or MIN:MAX machines, got {shown(text)}") from None
    if not 1 <= low <= high:
        raise SpecError.at("hardware.nnodes", f"needs 1 <= MIN <= MAX, got {shown(text)}")
    if high > MAX_NODES:
        raise SpecError.at("hardware.nnodes", f"must be at most {MAX_NODES} machines, got {shown(text)}")
    return low, high


@cross_check("hardware")
def _check_hardware(doc: dict, problems: list) -> None:
    hw = doc["hardware"]
    if isinstance(hw["nnodes"], int) and not isinstance(hw["nnodes"], bool):
        hw["nnodes"] = str(hw["nnodes"])  # `--set hardware.nnodes=2` arrives as a number
    try:
        _, max_nodes = parse_nnodes(hw["nnodes"])
    except SpecError as err:
        problems.extend(err.problems)
        return
    many = max_nodes > 1 or (hw["nproc_per_node"] or 1) > 1
    if hw["strategy"] == "single" and many:
        problems.append(("hardware.strategy", "single runs one process; use auto, ddp or fsdp for several"))
    if max_nodes > 1 and ":" not in hw["rdzv_endpoint"]:
        problems.append(
            ("hardware.rdzv_endpoint", "several machines need HOST:PORT of the launching machine")
        )
    if max_nodes == 1 and hw["node_rank"] > 0:
        problems.append(("hardware.node_rank", f"is {hw['node_rank']} but the run has one machine"))
    elif ":" not in str(hw["nnodes"]) and hw["node_rank"] >= max_nodes:
        problems.append(("hardware.node_rank", f"must be below nnodes ({max_nodes})"))
    if hw["device"] in ("cpu", "mps") and hw["gpus"]:
        problems.append(("hardware.gpus", f"selects CUDA GPUs, but hardware.device is {hw['device']}"))
    if hw["device"] == "mps" and (many or hw["strategy"] in ("ddp", "fsdp")):
        problems.append(("hardware.strategy", "Apple MPS runs one process; use single"))
    if hw["strategy"] != "fsdp":
        if hw["cpu_offload"]:
            problems.append(("hardware.cpu_offload", "is an fsdp option; set hardware.strategy to fsdp"))
        if hw["fsdp_sharding"] != "full_shard":
            problems.append(("hardware.fsdp_sharding", "is an fsdp option; set hardware.strategy to fsdp"))
    elif hw["cpu_offload"] and hw["device"] == "cpu":
        problems.append(
            ("hardware.cpu_offload", "moves FSDP shards from GPU to CPU memory; on a CPU it does nothing")
        )
    if hw["nproc_per_node"] and hw["gpus"] and hw["nproc_per_node"] > len(hw["gpus"]):
        problems.append(
            (
                "hardware.nproc_per_node",
                f"is {hw['nproc_per_node']} but only {len(hw['gpus'])} GPU(s) are selected",
            )
        )


@cross_check("model", "train", "optim")
def _check_finetune(doc: dict, problems: list) -> None:
    from engine.freeze import problems as finetune_problems

    problems.extend(finetune_problems(doc["model"], doc["train"]["freeze"], doc["optim"]["lr_mult"]))


@cross_check("task", "prune", "distill")
def _check_lineage(doc: dict, problems: list) -> None:
    """What a prune/distill spec can get wrong without looking at its parent run."""
    kind = doc["task"]["kind"]
    if kind == "train":
        return
    parent_field = {"prune": "parent", "distill": "teacher"}[kind]
    if doc[kind][parent_field] is None:
        problems.append(
            (f"{kind}.{parent_field}", f"is required for a {kind} run (the id of a completed run)")
        )
    if kind == "prune":
        p = doc["prune"]
        if p["target"] != "ratio" and p[f"max_{p['target']}"] is None:
            problems.append((f"prune.max_{p['target']}", f"is required when prune.target is {p['target']!r}"))
        if p["method"] == "unstructured" and p["target"] != "ratio":
            problems.append(
                (
                    "prune.target",
                    "unstructured pruning takes a ratio (the sparsity); budgets need structured pruning",
                )
            )
        keep = p["keep"]
        if keep is not None and not (isinstance(keep, list) and all(isinstance(k, str) for k in keep)):
            problems.append(("prune.keep", f"must be a list of node ids, got {keep!r}"))
    else:
        d = doc["distill"]
        if d["student"] == "model" and doc["model"] is None:
            problems.append(("model", "is required when distill.student is 'model' (the student graph)"))
        if (d["feature_teacher"] is None) != (d["feature_student"] is None):
            missing = "feature_student" if d["feature_student"] is None else "feature_teacher"
            problems.append(
                (f"distill.{missing}", "feature matching needs both feature_teacher and feature_student")
            )


@cross_check("health", "model")
def _check_health(doc: dict, problems: list) -> None:
    """Health's node ids must be nodes of the model (a prune/distill model comes later)."""
    health, model = doc["health"], doc["model"]
    nodes = health["nodes"]
    if nodes is not None and not (isinstance(nodes, list) and all(isinstance(n, str) for n in nodes)):
        problems.append(("health.nodes", f"must be a list of node ids, got {shown(nodes)}"))
    elif nodes is not None and isinstance(model, dict):
        known = [n.get("id") for n in model.get("nodes", []) if isinstance(n, dict)]
        unknown = [n for n in nodes if n not in known]
        if unknown:
            problems.append(
                ("health.nodes", f"no node {shown(unknown[0])} in the model (its nodes: {listed(known)})")
            )
    every, hist_every = health["every"], health["histogram_every"]
    if health["histograms"] and hist_every and hist_every % every:
        problems.append(("health.histogram_every", f"must be a multiple of health.every ({every})"))


def load_spec(path: str | Path, sets: list[str] = (), store=None) -> dict:
    """Read a spec file, apply `--set PATH=VALUE` overrides, migrate and validate it; raises
    SpecError (or DataError for the file). Paths in it are relative to the file's folder."""
    path = Path(path)
    doc = read_json(path)
    if (
        any(s.startswith("model.") for s in sets)
        and isinstance(doc, dict)
        and isinstance(doc.get("model"), str)
    ):
        doc["model"] = _inline_model(doc["model"], path.parent)  # `--set model.init_from=3` edits the graph
    return validate_spec(apply_overrides(doc, list(sets)), base_dir=path.parent, store=store)


def _inline_model(text: str, base: Path) -> dict | str:
    """A model given as a graph file, read into the spec with its init_from made absolute; the
    path itself when it cannot be read (validation then reports why)."""
    try:
        graph_path = _path(base, text, "model")
        model = read_json(graph_path)
    except (DataError, SpecError):
        return text
    if isinstance(model, dict) and isinstance(model.get("init_from"), str):
        model["init_from"] = str(_path(graph_path.parent, model["init_from"], "model.init_from"))
    return model


def apply_overrides(doc: dict, sets: list[str]) -> dict:
    """`train.epochs=3` → doc["train"]["epochs"] = 3 (values parsed as JSON when they are)."""
    for item in sets:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise SpecError.at(shorten(path or item), "--set needs PATH=VALUE")
        if not isinstance(doc, dict):
            raise SpecError.at("", f"a spec must be a JSON object, got {type(doc).__name__}")
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON: the text itself
            value = raw
        *parents, leaf = path.split(".")
        node = doc
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise SpecError.at(shorten(path), f"{shorten(key)} is not a section")
            node = child
        node[leaf] = value
    return doc


def validate_spec(doc: dict, base_dir: str | Path | None = None, store=None) -> dict:
    """Return the normalised spec, or raise SpecError listing every problem with its path.

    A prune/distill spec may leave out `model` and `data`, which its parent run provides.
    Given the run `store`, the parent is checked and the spec completed at once (see
    `engine.lineage.resolve`); without one, that happens when the run starts.
    """
    if not isinstance(doc, dict):
        raise SpecError.at("", f"a spec must be a JSON object, got {type(doc).__name__}")
    deep = too_deep(doc)
    if deep:
        raise SpecError.at(shorten(deep), f"nests more than {MAX_DEPTH} levels deep")
    doc = migrate(copy.deepcopy(doc))
    base = Path(base_dir) if base_dir else Path.cwd()
    problems: list[tuple[str, str]] = []
    task = doc.get("task")
    inherits = isinstance(task, dict) and task.get("kind") in ("prune", "distill")

    top = {k: v for k, v in doc.items() if k not in SECTIONS and k != "sweep"}
    out = check_fields(_inheritable(TOP_LEVEL, "") if inherits else TOP_LEVEL, top, "", problems)
    for name, fields in SECTIONS.items():
        out[name] = check_fields(
            _inheritable(fields, name) if inherits else fields, doc.get(name, {}), name, problems
        )
    if "sweep" in doc:  # a sweep spec: this run spec is every trial's base
        out["sweep"] = check_sweep(doc["sweep"], problems)
    data = doc.get("data")
    if inherits and isinstance(data, dict) and data and "source" not in data:
        problems.append(
            ("data.source", "is needed with the other data fields; leave data out to use the parent's")
        )

    tags = out.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(("tags", f"must be a list of strings, got {shown(tags)}"))
    failed = {_section(path) for path, _ in problems}
    out["model"] = _resolve_model(doc.get("model"), base, problems)
    if "data" not in failed:
        _check_data(out["data"], base, problems)
    for sections, check in CROSS_CHECKS:
        if failed.isdisjoint(sections):
            check(out, problems)
    if problems:
        raise SpecError(cap_problems(problems))
    if inherits and store is not None:
        from engine.lineage import resolve

        out = resolve(out, store)
    return out


def _inheritable(fields: tuple[Field, ...], section: str) -> tuple[Field, ...]:
    """The fields, with those a prune/distill run may inherit from its parent made optional."""
    names = {name for name, sec in INHERITED.items() if sec == section}
    return tuple(replace(f, default=None, optional=True) if f.name in names else f for f in fields)


def _section(path: str) -> str:
    """The section (or top-level field) a problem's path is in: "optim.lr" → "optim"."""
    return path.split(".", 1)[0].split("[", 1)[0]


def migrate(doc: dict) -> dict:
    version, err = TOP_LEVEL[0].check(doc.get("schema", SCHEMA_VERSION))
    if err:
        raise SpecError.at("schema", err)
    if version > SCHEMA_VERSION:
        raise SpecError.at(
            "schema",
            f"version {number_text(version)} is newer than this Trainbench understands ({SCHEMA_VERSION}); "
            "upgrade Trainbench",
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
    graph_base = base
    if isinstance(model, str):
        try:
            graph_base = _path(base, model, "model").parent
            model = read_json(_path(base, model, "model"))
        except (DataError, SpecError) as err:
            problems.append(("model", str(err)))
            return None
    elif not isinstance(model, dict):
        problems.append(
            ("model", f"must be a graph object or the path of a graph JSON file, got {shown(model)}")
        )
        return None
    try:
        graph = Graph.from_dict(model)
    except GraphError as err:
        problems.extend((join("model", node) if node else "model", msg) for node, msg in err.problems)
        return None
    problems.extend((join("model", node) if node else "model", msg) for node, msg in analyze(graph).problems)
    if isinstance(graph.init_from, str):  # a weights file, relative to the graph file that names it
        try:
            graph.init_from = str(_path(graph_base, graph.init_from, "model.init_from"))
        except SpecError as err:
            problems.extend(err.problems)
        else:
            if not Path(graph.init_from).is_file():
                problems.append(("model.init_from", f"{graph.init_from}: no such weights file"))
    return graph.to_dict()


def _path(base: Path, text: str, where: str) -> Path:
    """`text` as an absolute path relative to `base`; a NUL byte (no OS accepts one) is refused."""
    if "\0" in text:
        raise SpecError.at(where, "a path cannot contain a NUL character")
    return (base / text).resolve()


def _check_data(data: dict, base: Path, problems) -> None:
    """Paths made absolute (data.path, a tokenizer file) and the data fields that are objects
    or names checked: augment, categorical, encoding."""
    import codecs

    from engine.data.augment import check_augment

    source = data.get("source")
    if source in FILE_SOURCES:
        if not data.get("path"):
            problems.append(("data.path", f"is required for source {source!r}"))
        else:
            try:
                data["path"] = str(_path(base, data["path"], "data.path"))
            except SpecError as err:
                problems.extend(err.problems)
    elif data.get("path"):
        problems.append(
            ("data.path", f"is only used by file sources ({', '.join(sorted(FILE_SOURCES))}), not {source!r}")
        )
    tokenizer = data.get("tokenizer")
    if isinstance(tokenizer, str) and tokenizer not in ("byte", "bpe"):
        try:
            data["tokenizer"] = str(_path(base, tokenizer, "data.tokenizer"))
        except SpecError as err:
            problems.extend(err.problems)
    data["augment"] = check_augment(data.get("augment"), problems)
    categorical = data.get("categorical")
    if categorical is not None and not (
        isinstance(categorical, list) and all(isinstance(c, str) for c in categorical)
    ):
        problems.append(("data.categorical", f"must be a list of column names, got {shown(categorical)}"))
    try:
        codecs.lookup(data.get("encoding") or "utf-8")
    except (LookupError, TypeError, ValueError):
        problems.append(
            ("data.encoding", f"is not a text encoding Python knows, got {shown(data.get('encoding'))}")
        )


def dump_fields() -> dict:
    """Every spec field as JSON-friendly dicts, for docs and non-Python clients."""
    from engine.fields import as_dict

    return {
        "": [as_dict(f) for f in TOP_LEVEL],
        "model": [as_dict(f) for f in MODEL_FIELDS],
        **{k: [as_dict(f) for f in v] for k, v in SECTIONS.items()},
        "sweep": [as_dict(f) for f in SWEEP],
        "sweep.objective": [as_dict(f) for f in OBJECTIVE],
    }
