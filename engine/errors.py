"""Typed errors that carry where the problem is, so the CLI prints one line and the GUI can
show the message beside the field, node or file it concerns."""

from __future__ import annotations


class TrainbenchError(Exception):
    """Base of every error caused by user input; the CLI prints these without a traceback."""


class SpecError(TrainbenchError):
    """One or more invalid fields of a run spec; each problem names its dotted path."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" if path else msg for path, msg in problems))

    @classmethod
    def at(cls, path: str, msg: str) -> SpecError:
        return cls([(path, msg)])


class GraphError(TrainbenchError):
    """All problems of a model graph at once; `problems` is a list of (node id or '', message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{node}: {msg}" if node else msg for node, msg in problems))


class DataError(TrainbenchError):
    """A dataset that cannot be loaded: a missing, empty, ragged or undecodable file."""


class Diverged(TrainbenchError):
    """The loss became NaN or infinite."""


class StoreError(TrainbenchError):
    """A run or checkpoint that does not exist or cannot be used as asked."""
