"""Export through the engine on a worker thread.

`engine.graph.export` imports torch, which the app must not load at start-up; it is imported
here, on the first export, off the UI thread so the window stays responsive meanwhile.

A PyTorch export is code plus weights: the `.py` loads the `.pt` beside it. The designer has
no trained weights, so it writes the freshly initialised ones (seeded, so the same model
exports the same weights); a trained run's weights come from `trainbench export RUN`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Signal

from engine.errors import TrainbenchError
from engine.graph import Graph

FORMATS = {
    "pytorch": ("PyTorch module", "Python source (*.py)", ".py"),
    "torchscript": ("TorchScript", "TorchScript (*.pt)", ".pt"),
    "onnx": ("ONNX", "ONNX model (*.onnx)", ".onnx"),
}
SEED = 0


class ExportSignals(QObject):
    """Lives on the UI thread (owned by whoever starts jobs), so a result posted by a job that
    has already been deleted still arrives."""

    finished = Signal(str, str, object, object)  # format, path, error message or None, files written


class ExportJob(QRunnable):
    def __init__(self, graph: Graph, fmt: str, path: Path, signals: ExportSignals):
        super().__init__()
        self.graph, self.fmt, self.path, self.signals = graph, fmt, path, signals

    def run(self) -> None:
        error, written = None, []
        try:
            from engine.graph.export import export

            weights = untrained_weights(self.graph) if self.fmt == "pytorch" else None
            written = export(self.graph, self.fmt, self.path, weights) or [self.path]
        except TrainbenchError as err:
            error = str(err)
        except ImportError as err:
            error = f"export is not available in this installation ({err})"
        except OSError as err:
            error = f"{err.filename or self.path}: {err.strerror or err}"
        except Exception as err:  # an exporter bug must not take the window down
            error = f"{type(err).__name__}: {err}"
        self.signals.finished.emit(self.fmt, str(self.path), error, [str(p) for p in written])


def untrained_weights(graph: Graph) -> dict:
    """The model's initial weights, seeded without disturbing anyone else's random state."""
    import torch

    from engine.graph.build import build

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return build(graph).state_dict()
