"""The hardware part of the run form: the machine's devices as a checklist, the command other
machines run to join a multi-machine run, and the memory-fit estimate.

Devices come from `trainbench devices --json`, run once per app session in a QProcess, and the
estimate from `engine.memory` in a worker thread: both import torch (~2 s), which must not
happen on the UI thread.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QProcess, QSize, Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QSizePolicy, QStyledItemDelegate, QWidget

from app.fields import UNSET, FieldEditor, field_tooltip
from engine import format as fmt
from engine.fields import Field
from engine.processes import command_line
from engine.spec import parse_nnodes


class DeviceDetector(QObject):
    """This machine's device report, fetched once per app in a background process."""

    ready = Signal(object)  # the report dict (see engine.devices.report), or {} when it failed

    _shared: DeviceDetector | None = None

    @classmethod
    def shared(cls) -> DeviceDetector:
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.report: dict | None = None
        self._proc: QProcess | None = None

    def request(self) -> None:
        """Start detecting (once); `ready` follows, at once if the report is known."""
        if self.report is not None:
            self.ready.emit(self.report)
            return
        if self._proc is not None:
            return
        argv = command_line("devices", "--json")
        self._proc = QProcess(self)
        self._proc.setProgram(argv[0])
        self._proc.setArguments(argv[1:])
        self._proc.finished.connect(self._done)
        self._proc.errorOccurred.connect(
            lambda err: err == QProcess.ProcessError.FailedToStart and self._done()
        )
        self._proc.start()

    def _done(self, *_args) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            self.report = json.loads(proc.readAllStandardOutput().data().decode() or "{}")
        except ValueError:
            self.report = {}
        proc.deleteLater()
        self.ready.emit(self.report)

    def shutdown(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.waitForFinished(1000)


class _FullWidthRows(QStyledItemDelegate):
    """Rows as wide as the list, never wider: a long entry is elided (its tooltip has it all)
    instead of widening the list past the form's column and growing a horizontal scroll bar."""

    def sizeHint(self, option, index) -> QSize:
        return QSize(0, super().sizeHint(option, index).height())


class _Checklist(QListWidget):
    """A list as tall as its rows, up to `MAX_ROWS`; beyond that one vertical scroll bar."""

    MAX_ROWS = 6

    def __init__(self):
        super().__init__(objectName="deviceList")
        self.setItemDelegate(_FullWidthRows(self))
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        self.ensurePolished()
        rows = sum(max(self.sizeHintForRow(i), 1) for i in range(min(self.count(), self.MAX_ROWS)))
        margins = self.contentsMargins()  # the frame, the stylesheet's padding
        return QSize(super().sizeHint().width(), rows + margins.top() + margins.bottom())

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self.sizeHint().height())

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.StyleChange, QEvent.Type.FontChange):
            self.updateGeometry()  # the rows' height follows the style's padding and font


class DeviceList(FieldEditor):
    """`hardware.device` and `hardware.gpus` as one checklist of the detected devices: automatic,
    the CPU, each CUDA GPU (name, free memory), Apple MPS. GPUs may be checked together; the CPU,
    MPS and automatic exclude the rest.

    An editor of the field kit that edits two fields: `typed`/`finished` carry
    {"device": raw, "gpus": raw} and `show_value` takes {"device": …, "gpus": …}."""

    def __init__(self, device: Field, gpus: Field, parent: QWidget | None = None):
        self.report: dict | None = None
        self._device, self._gpus = "auto", None
        super().__init__(device, parent, section="hardware")
        self.fields = (device, gpus)
        self.widget.setToolTip(f"{field_tooltip(device, 'hardware')}\n\n{field_tooltip(gpus, 'hardware')}")
        self._rebuild()

    def _make_widget(self) -> QWidget:
        lst = _Checklist()
        lst.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        lst.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        lst.itemChanged.connect(self._item_changed)
        return lst

    def set_report(self, report: dict) -> None:
        self.report = report
        self._rebuild()

    def _rebuild(self) -> None:
        lst: QListWidget = self.widget
        lst.blockSignals(True)
        lst.clear()

        def add(text: str, key, tip: str = "") -> None:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            item.setToolTip(f"{text}\n{tip}" if tip else text)
            lst.addItem(item)

        add("Automatic — CUDA when present, else CPU", "auto")
        report = self.report
        if report is None:
            add("Detecting devices…", None)
            lst.item(1).setFlags(Qt.ItemFlag.NoItemFlags)
        else:
            cpu = report.get("cpu") or {}
            mem = f" · {fmt.size(cpu.get('memory_bytes'))} memory" if cpu.get("memory_bytes") else ""
            add(f"CPU — {cpu.get('name') or 'processor'} · {cpu.get('cores') or '?'} cores{mem}", "cpu")
            for g in report.get("cuda") or []:
                add(
                    f"cuda:{g['index']} — {g['name']} · {fmt.size(g.get('free_bytes'))} of {fmt.size(g.get('total_bytes'))} free",
                    ("cuda", g["index"]),
                    f"compute capability {g.get('capability', '?')}",
                )
            if report.get("mps"):
                add("Apple GPU (MPS)", "mps")
            if not report:
                add("Device detection failed: see `trainbench devices`", None)
        self._check_items()
        lst.blockSignals(False)
        lst.updateGeometry()

    def _gpu_indices(self) -> list[int]:
        return [g["index"] for g in (self.report or {}).get("cuda") or []]

    def _check_items(self) -> None:
        lst: QListWidget = self.widget
        device, gpus = self._device, self._gpus
        chosen = set(gpus) if gpus else set(self._gpu_indices())
        for i in range(lst.count()):
            item = lst.item(i)
            key = item.data(Qt.ItemDataRole.UserRole)
            if key is None:
                continue
            on = key == device or (isinstance(key, tuple) and device == "cuda" and key[1] in chosen)
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def show_value(self, value: dict, is_set: bool = True) -> None:
        device, gpus = value.get("device"), value.get("gpus")
        self._device = device if isinstance(device, str) else "auto"
        self._gpus = gpus if isinstance(gpus, list) and all(isinstance(g, int) for g in gpus) else None
        self.widget.blockSignals(True)
        self._check_items()
        self.widget.blockSignals(False)

    def _item_changed(self, item: QListWidgetItem) -> None:
        key = item.data(Qt.ItemDataRole.UserRole)
        on = item.checkState() == Qt.CheckState.Checked
        lst = self.widget
        checked_gpus = [
            lst.item(i).data(Qt.ItemDataRole.UserRole)[1]
            for i in range(lst.count())
            if isinstance(lst.item(i).data(Qt.ItemDataRole.UserRole), tuple)
            and lst.item(i).checkState() == Qt.CheckState.Checked
        ]
        if isinstance(key, tuple):
            if checked_gpus:
                all_gpus = sorted(checked_gpus) == sorted(self._gpu_indices())
                self._choose("cuda", UNSET if all_gpus else sorted(checked_gpus))
            else:
                self._choose("auto", UNSET)
        elif on:
            self._choose(key, UNSET)
        else:  # unchecking the one exclusive choice: back to automatic
            self._choose("auto", UNSET)

    def _choose(self, device: str, gpus) -> None:
        self.show_value({"device": device, "gpus": None if gpus is UNSET else gpus})
        self._emit({"device": UNSET if device == "auto" else device, "gpus": gpus})


def join_command(spec_file: str | Path | None, spec: dict) -> str | None:
    """What each further machine of a multi-machine run runs (None for one machine): the
    engine's own join line, the one `trainbench run` prints at launch."""
    from engine.processes import join_commands

    hardware = spec["hardware"]
    try:
        _, max_nodes = parse_nnodes(hardware.get("nnodes", "1"))
    except Exception:  # noqa: BLE001 - an invalid nnodes is reported beside its field
        return None
    if max_nodes <= 1 or not hardware.get("rdzv_endpoint"):
        return None
    rdzv_id = hardware.get("rdzv_id") or "<the id printed at start>"
    return join_commands(spec, rdzv_id, str(spec_file) if spec_file else None)[0]


def estimate_fit(spec: dict, dataset=None):
    """The engine's memory-fit estimate for `spec` on the devices it selects (`engine.memory`).
    Imports torch (the device plan asks it for free memory): call it off the UI thread."""
    from engine.memory import estimate_memory

    return estimate_memory(spec, data=dataset)


def describe_fit(estimate, colors: dict[str, str]) -> str:
    """Rich text for the form: the verdict (coloured by `colors` ok / error / subtext), then the
    engine's breakdown as a table whose values wrap, so that it never widens a narrow form; its
    last row, the fit, carries the figures."""
    if estimate.fits is None:
        verdict, color = "Fit unknown", "subtext"
    else:
        verdict, color = ("Fits", "ok") if estimate.fits else ("Does not fit", "error")
    rows = "".join(
        f"<tr><td style='padding-right:12px; white-space:nowrap'>{html.escape(name)}</td>"
        f"<td>{html.escape(value)}</td></tr>"
        for name, value in map(_breakdown_row, estimate.lines()[1:])
    )
    return (
        f"<span style='color:{colors[color]}'><b>{verdict}</b></span>"
        f"<table cellspacing='0' cellpadding='1' style='margin-top:4px'>{rows}</table>"
    )


def _breakdown_row(line: str) -> tuple[str, str]:
    """A line of the engine's memory table ("  peak         13.4 MiB", "  note: …") as
    (name, value)."""
    text = line.strip()
    if text.startswith("note:"):
        return "note", text[5:].strip()
    name, _, value = text.partition("  ")
    return name, value.strip()
