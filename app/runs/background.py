"""Short jobs off the UI thread (a data set to load, a schedule to compute), with the result
delivered back on the UI thread — and only the newest request's result: a user typing fast
starts many jobs, and a late answer to an old question must not overwrite a new one."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], object], relay: _Relay, ticket: int):
        super().__init__()
        self.fn, self.relay, self.ticket = fn, relay, ticket

    def run(self) -> None:
        try:
            result, error = self.fn(), None
        except Exception as err:  # noqa: BLE001 - delivered to the UI as the job's error
            result, error = None, err
        try:
            self.relay.done.emit(self.ticket, result, error)
        except RuntimeError:  # the receiver is gone (the form closed meanwhile)
            pass


class _Relay(QObject):
    done = Signal(int, object, object)  # ticket, result, error


class LatestJob(QObject):
    """Runs `submit(fn)` in a thread pool; emits `finished(result, error)` for the latest only."""

    finished = Signal(object, object)

    def __init__(self, pool: QThreadPool, parent: QObject | None = None):
        super().__init__(parent)
        self.pool = pool
        self._ticket = 0
        self._relay = _Relay(self)
        self._relay.done.connect(self._done)
        self.busy = False

    def submit(self, fn: Callable[[], object]) -> None:
        self._ticket += 1
        self.busy = True
        self.pool.start(_Job(fn, self._relay, self._ticket))

    def _done(self, ticket: int, result, error) -> None:
        if ticket == self._ticket:
            self.busy = False
            self.finished.emit(result, error)
