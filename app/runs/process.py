"""`EngineProcess`: one `trainbench` engine process, started with QProcess, whose JSON-lines
event stream is parsed as it arrives — never a thread in the GUI process, never a blocking read.

The argv comes from `engine.processes.command_line`, which works from a source checkout, a pip
install and a frozen bundle alike. Stop is SIGTERM (`terminate`: the engine finishes the step,
writes a final checkpoint and records `stopped`); kill is SIGKILL (the store then reports the
run `crashed`). `release` lets the process outlive the window: the app closes, the run goes on,
and the next start of the app reattaches to it through the store.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from engine.events import parse_events

STDERR_KEEP = 200  # stderr lines kept for the error message of a process that died early


class _Process(QProcess):
    def release(self) -> None:
        """Forget the child without killing it (QProcess kills a running child when destroyed).

        Our ends of its pipes close, so its writes fail with EPIPE, which the engine's event
        stream absorbs; the store remains the record of the run."""
        for channel in (QProcess.ProcessChannel.StandardOutput, QProcess.ProcessChannel.StandardError):
            self.closeReadChannel(channel)
        self.closeWriteChannel()
        self.setProcessState(QProcess.ProcessState.NotRunning)


class EngineProcess(QObject):
    event = Signal(dict)  # one parsed event of the stream
    stderr_line = Signal(str)
    finished = Signal(int, bool)  # exit code, killed by a signal (or failed to start)

    def __init__(self, argv: list[str], parent: QObject | None = None):
        super().__init__(parent)
        self.argv = list(argv)
        self.stderr_tail: list[str] = []
        self._out = b""
        self._err = b""
        self._released = False
        self._done = False
        self._proc = _Process(self)
        self._proc.setProgram(self.argv[0])
        self._proc.setArguments(self.argv[1:])
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("TQDM_DISABLE", "1")
        self._proc.setProcessEnvironment(env)
        flags = getattr(QProcess, "UnixProcessFlag", None)
        if flags is not None and hasattr(self._proc, "setUnixProcessParameters"):
            # Its own session: a Ctrl+C in the terminal that started the app does not stop runs.
            self._proc.setUnixProcessParameters(flags.CreateNewSession)
        self._proc.readyReadStandardOutput.connect(lambda: self._read_stdout())
        self._proc.readyReadStandardError.connect(lambda: self._read_stderr())
        self._proc.finished.connect(self._on_finished)
        self._proc.errorOccurred.connect(self._on_error)

    @property
    def pid(self) -> int | None:
        pid = self._proc.processId()
        return int(pid) if pid else None

    @property
    def running(self) -> bool:
        return not self._released and self._proc.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        self._proc.start()

    def terminate(self) -> None:
        """Graceful stop (SIGTERM): final checkpoint, status `stopped`."""
        if self.running:
            self._proc.terminate()

    def kill(self) -> None:
        if self.running:
            self._proc.kill()

    def release(self) -> None:
        """Let the process run on after this object (and the app) are gone."""
        if self.running:
            self._released = True
            for signal in (self._proc.readyReadStandardOutput, self._proc.readyReadStandardError):
                signal.disconnect()
            self._proc.finished.disconnect()
            self._proc.errorOccurred.disconnect()
            self._proc.release()

    # ------------------------------------------------------------ reading

    def _read_stdout(self, final: bool = False) -> None:
        self._out += self._proc.readAllStandardOutput().data() + (b"\n" if final else b"")
        *lines, self._out = self._out.split(b"\n")  # keep a partial last line for the next read
        if lines:
            for ev in parse_events(line.decode("utf-8", "replace") for line in lines):
                self.event.emit(ev)

    def _read_stderr(self, final: bool = False) -> None:
        self._err += self._proc.readAllStandardError().data() + (b"\n" if final else b"")
        *lines, self._err = self._err.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.stderr_tail = [*self.stderr_tail[-STDERR_KEEP + 1 :], line]
                self.stderr_line.emit(line)

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read_stdout(final=True)
        self._read_stderr(final=True)
        self._emit_finished(code, status == QProcess.ExitStatus.CrashExit)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            line = f"could not start {self.argv[0]}: {self._proc.errorString()}"
            self.stderr_tail.append(line)
            self.stderr_line.emit(line)
            self._emit_finished(-1, True)

    def _emit_finished(self, code: int, crashed: bool) -> None:
        if not self._done:
            self._done = True
            self.finished.emit(code, crashed)
