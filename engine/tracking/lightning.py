"""`TrainbenchLogger`: a PyTorch Lightning `Logger` that writes a Trainbench run.

    from trainbench.lightning import TrainbenchLogger

    trainer = lightning.Trainer(logger=TrainbenchLogger(name="mnist"), max_epochs=3)

Every `self.log(...)` of the module becomes a point of the run at the trainer's global step,
`save_hyperparameters()` the run's config, and the fit's end its status (Lightning's
"success" → completed, else failed). Only rank 0 writes, as with Lightning's own loggers.
Needs `lightning` (or `pytorch_lightning`): pip install "trainbench[lightning]".
"""

from __future__ import annotations

from argparse import Namespace

try:
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:  # the older package name
    from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
    from pytorch_lightning.utilities import rank_zero_only

from .run import Run, init


class TrainbenchLogger(Logger):
    """A Lightning logger for a Trainbench run: a new one from `name`, `config`, `tags`, `db`
    (as `trainbench.init` takes them), or `run`, one the script made itself (then the script
    finishes it)."""

    def __init__(
        self,
        name: str | None = None,
        config: dict | None = None,
        tags: list[str] | None = None,
        db: str | None = None,
        run: Run | None = None,
    ):
        super().__init__()
        self._init = {"name": name, "config": config, "tags": tags, "db": db}
        self._run = run
        self._owns_run = run is None

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        """The run (started on first use, on rank 0)."""
        if self._run is None:
            self._run = init(**self._init)
        return self._run

    @property
    def name(self) -> str:
        return self._init["name"] or "trainbench"

    @property
    def version(self) -> int | str:
        return self._run.id if self._run is not None and self._run.id is not None else ""

    @rank_zero_only
    def log_hyperparams(self, params: dict | Namespace, *args, **kwargs) -> None:
        params = vars(params) if isinstance(params, Namespace) else dict(params or {})
        self.experiment.update_config(params)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.experiment.log(metrics, step=step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._owns_run and self._run is not None:
            self._run.finish("completed" if status in ("success", "finished") else "failed")
