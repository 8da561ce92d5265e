"""Live validation: `engine.graph.analyze` after every structural edit, without freezing the UI.

Edits made in one event-loop turn (a paste, a macro, an undo of many nodes) are coalesced into
one run. Small graphs are analysed on the UI thread at once; large ones on a worker thread from
a snapshot, and only the newest result is delivered (latest-result-wins), so a burst of edits
costs one stale run at most.

A graph from a file is untrusted: should the analysis itself fail on it, the failure becomes
the analysis's one problem, shown like any other, instead of an exception in the event loop.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from engine.graph import Analysis, Graph, Node, TensorType, analyze

#: graphs with more nodes than this are analysed off the UI thread...
ASYNC_NODES = 200
#: ...a moment after the last edit, so a burst of edits (a drag of many connections, typing)
#: costs one run, and the worker does not compete with the edit itself for the interpreter
ASYNC_DELAY_MS = 60


def safe_analyze(graph: Graph, input_type: TensorType | None = None) -> Analysis:
    """`analyze`, with a failure of the analysis reported as a problem of the model."""
    try:
        return analyze(graph, input_type)
    except Exception as err:  # noqa: BLE001 - any engine failure on a hostile graph
        message = f"the model could not be analysed ({type(err).__name__}: {str(err)[:300]})"
        return Analysis(graph, {}, [], None, [("", message)])


def snapshot(graph: Graph) -> Graph:
    """A copy the worker can read while the UI keeps editing the original.

    Commands replace param values instead of mutating them, so copying each params dict (not
    deep-copying its values) is enough, and cheap.
    """
    nodes = {k: Node(n.id, n.op, dict(n.params), n.pos) for k, n in graph.nodes.items()}
    return Graph(
        nodes, list(graph.edges), graph.output, graph.name, dict(graph.tie), graph.init_from, graph.strict
    )


class _Relay(QObject):
    done = Signal(int, object)


class _Job(QRunnable):
    def __init__(self, generation: int, graph: Graph, input_type, relay: _Relay):
        super().__init__()
        self.generation, self.graph, self.input_type, self.relay = generation, graph, input_type, relay

    def run(self) -> None:
        self.relay.done.emit(self.generation, safe_analyze(self.graph, self.input_type))


class Validator(QObject):
    """Runs `analyze` for a document; emits `analyzed(Analysis)` with the newest result."""

    analyzed = Signal(object)

    def __init__(self, graph_of, input_type: TensorType | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._graph_of = graph_of  # () -> the current Graph
        self.input_type = input_type
        self._generation = 0
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.run_now)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._relay = _Relay(self)
        self._relay.done.connect(self._deliver)

    def schedule(self) -> None:
        """Ask for a run once control returns to the event loop."""
        self._generation += 1
        self._timer.start(0 if len(self._graph_of().nodes) <= ASYNC_NODES else ASYNC_DELAY_MS)

    def run_now(self, force_sync: bool = False) -> None:
        self._timer.stop()
        self._generation += 1
        graph = self._graph_of()
        if force_sync or len(graph.nodes) <= ASYNC_NODES:
            self.analyzed.emit(safe_analyze(graph, self.input_type))
            return
        self._pool.clear()  # queued jobs are stale now; a running one finishes and is dropped
        self._pool.start(_Job(self._generation, snapshot(graph), self.input_type, self._relay))

    def wait(self) -> None:
        """Start a pending run now and block until the worker is idle (tests, benchmarks, shutdown);
        the result is delivered when the event loop next runs."""
        if self._timer.isActive():
            self.run_now()
        self._pool.waitForDone()

    def stop(self) -> None:
        """Drop pending work and wait for a running job (the document is going away)."""
        self._timer.stop()
        self._pool.clear()
        self._pool.waitForDone()
        self._generation += 1

    def _deliver(self, generation: int, analysis: Analysis) -> None:
        if generation == self._generation:
            self.analyzed.emit(analysis)
