"""The mouse wheel changes a field only when the field has the focus; elsewhere it scrolls the page.

Spin boxes and combo boxes take every wheel event over them, so scrolling a long form turned
its values (epochs 10 → 8, batch size 64 → 65) without anyone noticing. Editors of the kit
call `wheel_needs_focus` on such widgets; a small plot that would zoom calls `wheel_scrolls_page`.

The page is scrolled by handing the event to the nearest enclosing scroll area's viewport
rather than by ignoring it: Qt propagates an ignored wheel event to the parent only when it
came from the window system, and an explicit hand-over behaves the same for both.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QWidget


def scroll_page(widget: QWidget, event: QWheelEvent) -> None:
    """Scroll the nearest scroll area above `widget` by `event`; ignore it when there is none."""
    area = widget.parentWidget()
    while area is not None and not isinstance(area, QAbstractScrollArea):
        area = area.parentWidget()
    if area is None:
        event.ignore()
        return
    port = area.viewport()
    where = event.globalPosition()
    forwarded = QWheelEvent(
        port.mapFromGlobal(where),
        where,
        event.pixelDelta(),
        event.angleDelta(),
        event.buttons(),
        event.modifiers(),
        event.phase(),
        event.inverted(),
        event.source(),
    )
    QApplication.sendEvent(port, forwarded)
    event.setAccepted(forwarded.isAccepted())


def _owner(obj: QWidget) -> QWidget:
    """The widget a wheel event is about: a scroll area's, for its viewport (wheel events over a
    text box or a plot arrive at the viewport)."""
    parent = obj.parentWidget()
    return parent if isinstance(parent, QAbstractScrollArea) and parent.viewport() is obj else obj


class _Wheel(QObject):
    def __init__(self, focused_keeps: bool):
        super().__init__()
        self.focused_keeps = focused_keeps

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Wheel or not isinstance(obj, QWidget):
            return False
        owner = _owner(obj)
        if self.focused_keeps and owner.hasFocus():
            return False
        scroll_page(owner, event)
        return True


_FOCUS_WHEEL = _Wheel(focused_keeps=True)
_PAGE_WHEEL = _Wheel(focused_keeps=False)


def _install(widget: QWidget, wheel: _Wheel) -> None:
    widget.installEventFilter(wheel)
    if isinstance(widget, QAbstractScrollArea):
        widget.viewport().installEventFilter(wheel)


def wheel_needs_focus(widget: QWidget) -> None:
    """`widget` takes wheel events only while focused; a click or Tab gives it the focus (a
    wheel never does: Qt.StrongFocus)."""
    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    _install(widget, _FOCUS_WHEEL)


def wheel_scrolls_page(widget: QWidget) -> None:
    """Every wheel event over `widget` (a small plot, say) scrolls the page around it instead."""
    _install(widget, _PAGE_WHEEL)
