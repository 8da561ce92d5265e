"""`TrainbenchCallback`: a Hugging Face `transformers` `TrainerCallback` that writes a
Trainbench run.

    from trainbench.hf import TrainbenchCallback

    Trainer(model, args, train_dataset=..., callbacks=[TrainbenchCallback(name="bert-tiny")]).train()

The trainer's arguments (and the model's config) become the run's config; each of its logs a
point at the global step — training values as `train/<name>`, evaluation values as
`eval/<name>` (`eval_loss` → `eval/loss`) — and the end of training its final values as the
summary and the status. Only the main process writes (`state.is_world_process_zero`).
Needs `transformers`: pip install "trainbench[transformers]".
"""

from __future__ import annotations

from transformers import TrainerCallback

from .run import Run, init

SKIPPED = ("total_flos",)  # a count of the whole run, not a curve


class TrainbenchCallback(TrainerCallback):
    """A new run from `name`, `config` (added to the trainer's), `tags` and `db`, or `run`, one
    the script made itself (then the script finishes it)."""

    def __init__(self, name=None, config=None, tags=None, db=None, run: Run | None = None):
        self._init = {"name": name, "config": config or {}, "tags": tags, "db": db}
        self.run = run
        self._owns_run = run is None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        config = {"trainer": {k: v for k, v in args.to_dict().items() if not k.startswith("_")}}
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config["model"] = model_config.to_dict()
        config.update(self._init["config"])
        if self.run is None:
            self.run = init(**{**self._init, "config": config})
        else:
            self.run.update_config(config)
        self.run.total_steps = state.max_steps or None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.run is None or not state.is_world_process_zero or not logs:
            return
        if "train_runtime" in logs:  # the end of training's totals: results, not a point of a curve
            return
        points = {}
        for key, value in logs.items():
            if key in SKIPPED or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if key.startswith("eval_"):
                points["eval/" + key.removeprefix("eval_")] = value
            else:
                points["train/" + key.removeprefix("train_")] = value
        self.run.log(points, step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.run is None or not state.is_world_process_zero:
            return
        for entry in state.log_history:
            for key, value in entry.items():
                if key not in SKIPPED and isinstance(value, int | float) and not isinstance(value, bool):
                    self.run.summary[key] = value
        if self._owns_run:
            self.run.finish("completed")
